"""Greedy generation, optionally under interventions applied at every step and position."""

from __future__ import annotations

import queue
import threading
import warnings
from typing import Any, Iterator, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.model.interventions import Intervention, validate_all, walk_layers


def _batches(items: Sequence[str], size: int):
    if size < 1:
        raise ValueError(f"batch_size must be positive, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def generate_ids(
    lm: Any,
    instructions: Sequence[str],
    max_new_tokens: int = 32,
    interventions: Sequence[Intervention] = (),
    max_tokens: int | None = None,
    chat: bool = True,
    streamer: Any = None,
) -> Tensor:
    """Greedy continuation of one left-padded batch.

    Args:
        streamer: A Hugging Face streamer (``put(ids)``, ``end()``) that sees the prompt, then each new token.

    Returns:
        [B, n_new] generated token ids (rows that stopped early are padded with the pad id).
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    validate_all(lm, interventions)
    ids, mask = lm.encode_chat(list(instructions), max_tokens=max_tokens, chat=chat)
    saved: dict[str, Tensor] = {}
    options = dict(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=lm.tokenizer.pad_token_id,
        eos_token_id=lm.eos_token_ids,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    if streamer is not None:
        options["streamer"] = streamer
    tr = lm.tracing
    with lm.lock, warnings.catch_warnings():
        # An open ``tracer.iter[:]`` ends by design when every row has stopped; nnsight warns.
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with lm.nn.generate(**options, **lm.run_options()) as tracer:
            with tracer.invoke({"input_ids": ids, "attention_mask": mask}):
                if interventions:
                    for _step in tracer.iter[:]:
                        walk_layers(tr, interventions)
            with tracer.invoke():
                saved["out"] = tracer.result
                nnsight.save(saved)
    return saved["out"][:, ids.shape[1] :].cpu()


class _QueueStreamer:
    """A Hugging Face streamer that hands each new token id to a queue (the prompt, sent first, is skipped)."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put(int(value.flatten()[0]))

    def end(self) -> None:
        self.queue.put(None)


def stream_ids(
    lm: Any,
    instruction: str,
    max_new_tokens: int = 32,
    interventions: Sequence[Intervention] = (),
    max_tokens: int | None = None,
    chat: bool = True,
) -> Iterator[list[int]]:
    """Greedy generation of one prompt, yielding the ids generated so far after every token.

    The same ``generate_ids`` call as the non-streamed path (one prompt, the model's lock held for the
    whole generation), run in a worker thread that feeds a queue; the last list yielded equals
    ``generate_ids(...)[0]`` up to the padding after an end-of-turn token.

    Raises:
        Whatever ``generate_ids`` raises (re-raised here, in the caller's thread).
    """
    streamer = _QueueStreamer()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            generate_ids(
                lm,
                [instruction],
                max_new_tokens=max_new_tokens,
                interventions=interventions,
                max_tokens=max_tokens,
                chat=chat,
                streamer=streamer,
            )
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)
        finally:
            streamer.end()

    worker = threading.Thread(target=work, name="neuroscope-stream", daemon=True)
    worker.start()
    ids: list[int] = []
    while (token := streamer.queue.get()) is not None:
        ids.append(token)
        yield list(ids)
    worker.join()
    if failure:
        raise failure[0]


def decode_completion(lm: Any, new_ids: Tensor | list[int]) -> str:
    """Text of one row of generated ids, cut at the first end-of-turn token."""
    ids = new_ids.tolist() if isinstance(new_ids, Tensor) else list(new_ids)
    stops = set(lm.eos_token_ids)
    for i, tok in enumerate(ids):
        if tok in stops:
            ids = ids[:i]
            break
    return lm.tokenizer.decode(ids, skip_special_tokens=True).strip()


def generate(
    lm: Any,
    instructions: Sequence[str],
    max_new_tokens: int = 32,
    interventions: Sequence[Intervention] = (),
    batch_size: int = 16,
    max_tokens: int | None = None,
    progress=None,
    chat: bool = True,
) -> list[str]:
    """Greedy chat answers, in batches.

    Args:
        lm: A ``LoadedModel``.
        instructions: User messages.
        max_new_tokens: Generated tokens per answer.
        interventions: Applied at every step, layer and position.
        batch_size: Prompts per batch.
        max_tokens: Reject prompts longer than this (``PromptError``).
        progress: Optional callable ``progress(done, total)``.
        chat: Apply the chat template (``False``: continue the texts as they are).

    Returns:
        One answer per instruction, in order.
    """
    answers: list[str] = []
    for chunk in _batches(list(instructions), batch_size):
        new = generate_ids(
            lm, chunk, max_new_tokens=max_new_tokens, interventions=interventions, max_tokens=max_tokens, chat=chat
        )
        answers.extend(decode_completion(lm, row) for row in new)
        if progress is not None:
            progress(len(answers), len(instructions))
    return answers
