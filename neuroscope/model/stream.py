"""Pay for what is looked at: one traced forward pass per prompt, every further view on demand.

``capture_stream`` is the Explorer's submit: ONE traced forward pass that keeps the residual stream
(the input of every layer and the last layer's output), every head's ``z`` at the last few positions
(the head grid, Δ and the callout read those) and the last position's logits. Nothing else is computed.

Each further view reads that cache, for exactly what is shown:

- ``lens_topk``: the logit lens at chosen layers and positions (one unembedding of what is viewed);
- ``layer_attention``: one layer's attention probabilities, from a trace that skips every earlier layer
  (their outputs are the cache) and stops after that layer: the model's own attention code runs, for
  one layer;
- ``gradient_x_input``: gradient x input for the predicted token (its own forward and backward pass).

Each equals what the eager full capture (``capture.capture``) computes for the same prompt when the
stream is kept in the model's precision (``stream_dtype``); the tests hold them equal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import nnsight
import torch
from torch import Tensor

from neuroscope.model.interventions import (
    Intervention,
    chains,
    rewrite_layer_input,
    validate_all,
    walk_layers,
)

# A session keeps its prompt's residual stream in float32 while it fits this many MB, in bfloat16 beyond
# (Settings.session_stream_mb overrides it). On Llama-3.2-3B's shape float32 fits up to ~250 tokens.
STREAM_MB = 96


def stream_dtype(lm: Any, n_values: int, budget_mb: int = STREAM_MB) -> torch.dtype:
    """What a session stores a stream of ``n_values`` in: the model's own dtype when it is half precision
    (nothing is lost), float32 when that fits ``budget_mb``, else bfloat16 (views then read a rounded copy)."""
    if lm.dtype in (torch.bfloat16, torch.float16):
        return lm.dtype
    return torch.float32 if n_values * 4 <= budget_mb * 2**20 else torch.bfloat16


@dataclass
class StreamCache:
    """What the Explorer keeps of one prompt after its submit. CPU tensors; ids long.

    Shapes: ``S`` tokens (chat template included), ``L`` layers, ``H`` heads, ``D`` head dim, ``d`` model
    dim, ``P`` the last positions whose ``z`` is kept, ``V`` vocabulary.
    """

    model_name: str
    tokens: list[str]  # [S] each token decoded on its own
    input_ids: Tensor  # [S]
    stream: Tensor  # [L + 1, S, d]: layer 0's input, then every layer's output (``stream.dtype``, see stream_dtype)
    z_tail: Tensor  # [L, H, P, D] float32: every head's z at the last P positions
    last_logits: Tensor  # [V] float32: the model's logits at the last position
    target_id: int  # the model's top next-token prediction (what gradient x input explains)
    target_token: str
    n_post_instruction: int
    chat: bool
    interventions: tuple[Intervention, ...] = field(default_factory=tuple)  # applied in the pass; views re-apply them

    def __post_init__(self) -> None:
        L1, S, _ = self.stream.shape
        if self.z_tail.shape[0] != L1 - 1 or self.z_tail.shape[2] > S:
            raise ValueError(f"z_tail has shape {tuple(self.z_tail.shape)} for a stream of {L1 - 1} layers, {S} tokens")
        if len(self.tokens) != S or self.input_ids.shape != (S,):
            raise ValueError("tokens and input ids must have one entry per position")
        # Every write is added to the residual stream, so a non-finite value upstream reaches the last output.
        for name, value in (("the last layer's output", self.stream[-1]), ("last_logits", self.last_logits)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or infinite values")

    @property
    def n_layers(self) -> int:
        return self.stream.shape[0] - 1

    @property
    def n_heads(self) -> int:
        return self.z_tail.shape[1]

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        """What this cache holds in memory (its tensors)."""
        return sum(t.numel() * t.element_size() for t in (self.stream, self.z_tail, self.last_logits, self.input_ids))

    def trajectory(self) -> Tensor:
        """The residual stream at every depth, float32: [L + 1, S, d]."""
        return self.stream.float()

    def layer_output(self, layer: int) -> Tensor:
        """[S, d] float32: what layer ``layer`` writes out (the logit lens reads it)."""
        return self.stream[layer + 1].float()


def capture_stream(
    lm: Any,
    instruction: str,
    *,
    interventions: Sequence[Intervention] = (),
    max_tokens: int | None = None,
    chat: bool = True,
    budget_mb: int = STREAM_MB,
) -> StreamCache:
    """The submit's ONE traced forward pass over one prompt (no padding, no gradients).

    Raises:
        PromptError: The prompt is longer than ``max_tokens``.
    """
    validate_all(lm, interventions)
    ids, mask = lm.encode_chat([instruction], max_tokens=max_tokens, chat=chat)
    S = ids.shape[1]
    P = max(1, min(S, lm.n_post_instruction))
    chain = chains(interventions, lm.n_layers)
    record = frozenset({"resid_pre", "z", "resid_post"})
    sink: dict[str, list] = defaultdict(list)
    saved: dict[str, Tensor] = {}
    tr = lm.tracing
    with lm.lock, torch.no_grad():
        # logits_to_keep=1: the unembedding of the last position only (on a 128k vocabulary, every other
        # position's logits cost about a tenth of the forward pass, and nothing here reads them)
        with lm.nn.trace({"input_ids": ids, "attention_mask": mask}, logits_to_keep=1, **lm.run_options()):
            walk_layers(tr, interventions, record=record, sink=sink, chain=chain, z_tail=P)
            saved["last"] = tr.access.lm_head(tr.nn).output[:, -1].detach().float()
            nnsight.save(saved)
            nnsight.save(sink)
    kept = stream_dtype(lm, (lm.n_layers + 1) * S * lm.d_model, budget_mb)
    stream = torch.stack([sink["resid_pre"][0][0]] + [out[0] for out in sink["resid_post"]]).to("cpu", kept)
    z_tail = torch.stack([z[0] for z in sink["z"]]).float().cpu().permute(0, 2, 1, 3).contiguous()  # [L, H, P, D]
    last = saved["last"][0].cpu()
    target = int(last.argmax())
    row_ids = ids[0].cpu()
    return StreamCache(
        model_name=lm.name,
        tokens=lm.token_strings(row_ids),
        input_ids=row_ids,
        stream=stream,
        z_tail=z_tail,
        last_logits=last,
        target_id=target,
        target_token=lm.tokenizer.decode([target]),
        n_post_instruction=lm.n_post_instruction if chat and lm.has_chat_template else 1,
        chat=chat,
        interventions=tuple(interventions),
    )


LENS_CHUNK_MB = 64  # the logits one unembedding step holds at once (rows x vocabulary floats)


@torch.no_grad()
def unembed_topk(lm: Any, resid: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The logit lens: top-k of ``softmax(lm_head(final_norm(resid)))``, ``resid`` [..., d] (any dtype, any
    device). Returns ``(probs [..., k] float32, ids [..., k] long)`` on the CPU.

    Rows go through the unembedding together, ``LENS_CHUNK_MB`` of logits at a time: for a few rows it is a
    memory-bound read of the whole ``[V, d]`` matrix, so one read for many rows, not one per row."""
    lm.require_weights("the logit lens (final norm and unembedding)")
    norm, head = lm.access.final_norm(lm.hf), lm.access.lm_head(lm.hf)
    rows = resid.reshape(-1, resid.shape[-1])
    k = min(int(k), lm.vocab_size)
    step = max(1, (LENS_CHUNK_MB * 2**20) // (4 * lm.vocab_size))
    probs, ids = [], []
    for start in range(0, rows.shape[0], step):
        p = head(norm(rows[start : start + step].to(lm.device, lm.dtype))).float().softmax(-1)
        top = p.topk(k, dim=-1)
        probs.append(top.values.cpu())
        ids.append(top.indices.cpu())
    shape = (*resid.shape[:-1], k)
    return torch.cat(probs).reshape(shape), torch.cat(ids).reshape(shape)


def lens_topk(
    lm: Any, cache: StreamCache, layers: Sequence[int], positions: Sequence[int], k: int
) -> tuple[Tensor, Tensor]:
    """The logit lens after each of ``layers`` at ``positions`` (0-based, from the start): one unembedding of
    ``len(layers) x len(positions)`` rows. The last layer's lens is the model's own next-token distribution.

    Returns:
        ``(probs [len(layers), len(positions), k], ids [...])`` on the CPU.
    """
    layers = [lm.check_layer(layer) for layer in layers]
    pos = torch.as_tensor([_position(p, cache.n_tokens) for p in positions], dtype=torch.long)
    return unembed_topk(lm, cache.stream[torch.as_tensor(layers, dtype=torch.long) + 1][:, pos], k)


def _position(p: object, S: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int) or not -S <= p < S:
        raise ValueError(f"position must be an integer in [{-S}, {S - 1}], got {p!r}")
    return p % S


def layer_attention(lm: Any, cache: StreamCache, layer: int) -> Tensor:
    """[H, S, S] float32 on the CPU: layer ``layer``'s attention probabilities on the cached prompt.

    One trace: every earlier layer is skipped (its output is the cache), the interventions that rewrite
    this layer's input are applied, the model's own attention module runs, and the trace stops there.
    """
    layer = lm.check_layer(layer)
    ids = cache.input_ids.to(lm.device)[None]
    before = cache.stream[layer][None].to(lm.device, lm.dtype) if layer else None  # layer - 1's output
    saved: dict[str, Tensor] = {}
    tr = lm.tracing
    with lm.lock, torch.no_grad():
        with lm.nn.trace({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, **lm.run_options()) as tracer:
            for earlier in range(layer):
                tr.access.layer(tr.nn, earlier).skip(before)
            rewrite_layer_input(tr, cache.interventions, layer)
            saved["attention"] = tr.access.attn(tr.nn, layer).output[1].detach()
            nnsight.save(saved)
            tracer.stop()
    return saved["attention"][0].float().cpu()


def gradient_x_input(lm: Any, cache: StreamCache, target_id: int | None = None) -> Tensor:
    """[S] float32: how much each token's input embedding pushes the logit of ``target_id`` (default: the
    predicted next token) at the last position, first order (gradient x input summed over the embedding's
    dimensions), with the cache's interventions applied. One forward and one backward pass."""
    lm.require_weights("gradient x input (a backward pass through the model)")
    target = cache.target_id if target_id is None else int(target_id)
    ids = cache.input_ids.to(lm.device)[None]
    saved: dict[str, Tensor] = {}
    tr = lm.tracing
    with lm.lock, torch.enable_grad():
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with lm.nn.trace(inputs, logits_to_keep=1, **lm.run_options()):  # the last position's logits only
            emb = tr.access.embed(tr.nn).output
            emb.requires_grad_(True)
            walk_layers(tr, cache.interventions)
            chosen = tr.access.lm_head(tr.nn).output[0, -1, target]
            with chosen.backward():
                saved["grad"] = emb.grad.detach()
            saved["emb"] = emb.detach()
            nnsight.save(saved)
    return (saved["grad"].float() * saved["emb"].float()).sum(-1)[0].cpu()
