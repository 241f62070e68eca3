"""What the Explorer costs on one prompt: the submit (answer excluded) and each view on demand, as ratios to a
bare Hugging Face forward pass of the same prompt measured in the same run, and what a session holds.

Used by ``bench_scale`` (the 28-layer Llama-3.2-3B stand-in) and ``bench_capture`` (small models).
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.timing import median_times

# The ratios written to --json, each to the bare forward of the same run.
RATIOS = (
    "submit",  # the one traced forward pass and what derives from it (verdict, head grid)
    "lens_one_position",  # the logit lens after every layer at one position
    "lens_shown",  # ... at the positions the lens tab opens on (explorer.LENS_SHOWN)
    "attention_one_layer",  # one layer's attention probabilities (the last layer: earlier ones skipped)
    "gradients",  # gradient x input (a forward and a backward pass)
    "pca",
    "head_lens",  # one head's own logit lens
    "every_view_no_grad",  # a submit, then every view but gradients opened
    "eager_every_view_no_grad",  # the eager full capture the Explorer ran before views were on demand
)


def explorer_costs(lm: Any, prompt: str, rounds: int, settings: Any = None) -> dict[str, Any]:
    """Medians (seconds) and ratios of the submit and each view for ``prompt`` (checked text, chat template on)."""
    from neuroscope.config import Settings
    from neuroscope.services.explorer import LENS_SHOWN, ViewMemo, submit_pass
    from neuroscope.model.capture import capture

    settings = settings or Settings(max_prompt_tokens=4096)
    ids, mask = lm.encode_chat([prompt])
    S, k, last = ids.shape[1], settings.lens_top_k, lm.n_layers - 1
    shown = list(range(max(0, S - LENS_SHOWN), S))
    base = submit_pass(lm, prompt, settings)

    def fresh():  # the same cache, no view memoised yet
        base.views = ViewMemo()
        return base

    def bare():
        with torch.no_grad():
            lm.hf(input_ids=ids, attention_mask=mask)

    def every():
        result = submit_pass(lm, prompt, settings)
        open_every_view(lm, result, shown, k)

    variants = {
        "bare": bare,
        "submit": lambda: submit_pass(lm, prompt, settings),
        "lens_one_position": lambda: fresh().lens(lm, [S - 1], k),
        "lens_shown": lambda: fresh().lens(lm, shown, k),
        "attention_one_layer": lambda: fresh().attention(lm, last),
        "gradients": lambda: fresh().importance(lm),
        "pca": lambda: fresh().pca(),
        "head_lens": lambda: fresh().head_lens(lm, last, 0),
        "every_view_no_grad": every,
        "eager_every_view_no_grad": lambda: capture(
            lm, [prompt], gradients=False, lens_positions=settings.lens_positions, top_k=k
        ),
    }
    for fn in variants.values():  # warm-up
        fn()
    medians = median_times(variants, rounds)
    return {
        "tokens": S,
        "seconds": medians,
        "ratios": {name: medians[name] / medians["bare"] for name in RATIOS},
    }


def open_every_view(lm: Any, result: Any, shown: list[int], k: int, gradients: bool = False) -> None:
    """What a visitor opening every view asks for: the lens tab, one head's attention and logit lens, the PCA,
    the JSON (the lens at the last position) and, with ``gradients``, the importance."""
    last = lm.n_layers - 1
    result.lens(lm, shown, k)
    result.attention(lm, last)
    result.head_lens(lm, last, 0)
    result.pca()
    result.lens_at_last_position(lm, k)  # the JSON view (read from the lens above)
    if gradients:
        result.importance(lm)


def session_bytes(lm: Any, prompt: str, settings: Any = None, gradients: bool = False) -> dict[str, Any]:
    """What one visitor's session holds after a submit with every view opened (the Explorer's ``Shown``:
    the cache, the memoised views and the grid's Δ). Gradient x input adds S floats to it; its backward
    pass is left out by default (on a 3B float32 model at 1,024 tokens it needs more than a 24 GB host)."""
    from neuroscope.config import Settings
    from neuroscope.services.explorer import LENS_SHOWN, submit_pass

    settings = settings or Settings(max_prompt_tokens=4096)
    result = submit_pass(lm, prompt, settings)
    S = result.cache.n_tokens
    open_every_view(lm, result, list(range(max(0, S - LENS_SHOWN), S)), settings.lens_top_k, gradients)
    deltas = lm.n_layers * lm.n_heads * 4
    return {
        "tokens": S,
        "stream_dtype": str(result.cache.stream.dtype).replace("torch.", ""),
        "stream_mb": result.cache.stream.numel() * result.cache.stream.element_size() / 2**20,
        "views_mb": result.views.nbytes / 2**20,
        "session_mb": (result.nbytes + deltas) / 2**20,
    }
