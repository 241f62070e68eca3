"""Attention heads along the current direction: head Δ, the per-prompt callout, attribution, ablation."""

from __future__ import annotations

import dataclasses

from typing import Any, Sequence

from torch import Tensor

from neuroscope.behaviours import get_behaviour
from neuroscope.analysis.directions import unit
from neuroscope.analysis.heads import (
    head_label,
    RANKING_RULE,
    HeadDeparture,
    HeadStats,
    head_departures,
    head_stats,
    head_values,
    rank_heads,
)
from neuroscope.config import Settings
from neuroscope.model.activations import (
    post_instruction_z,
)
from neuroscope.model.capture import capture
from neuroscope.model.interventions import HeadAblation

from neuroscope.types import Progress
from neuroscope.services.state import DirectionResult
from neuroscope.services.checks import ResearchError, as_int, positive_int
from neuroscope.services.generation import Generation, check_new_tokens, check_prompt, run_condition


MAX_HEAD_PROMPTS = 64  # prompts per side behind the head Δ, its baseline and the patching pairs


def describe_heads(
    lm: Any, harmful: Sequence[str], harmless: Sequence[str], direction: Tensor, batch_size: int = 16
) -> HeadStats:
    """Head Δ and the harmless baseline on (at most ``MAX_HEAD_PROMPTS`` of) each set: computed once
    per model and direction and kept in its ``DirectionResult``."""
    r, W_O = unit(direction.double()), lm.o_proj_weights()
    harmful, harmless = list(harmful[:MAX_HEAD_PROMPTS]), list(harmless[:MAX_HEAD_PROMPTS])
    return head_stats(
        head_values(post_instruction_z(lm, harmful, batch_size), W_O, r),
        head_values(post_instruction_z(lm, harmless, batch_size), W_O, r),
    )


def prompt_head_values(lm: Any, z: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """One prompt's head values from a capture's ``z`` ([L, H, S, D], or its last positions): ``(projection,
    norm)``, float64 [L, H] each, of each head's write averaged over the post-instruction positions."""
    P = lm.n_post_instruction
    writes = lm.head_writes(z[:, :, -P:].double().mean(dim=2)).double()  # [L, H, d]
    return writes @ unit(direction.double()).cpu(), writes.norm(dim=-1)


def head_callout(
    lm: Any, direction: Tensor, stats: HeadStats, z: Tensor, k: int = 3
) -> tuple[list[HeadDeparture], HeadDeparture | None]:
    """This prompt's callout: the (at most) k heads that push it hardest toward the behaviour compared
    with the harmless baseline (largest positive z along the direction), and the strongest suppressor
    (most negative z), or None.

    Args:
        direction: [d_model] the direction ``stats`` was computed along.
        stats: Its head Δ and harmless baseline (``describe_heads``).
        z: [L, H, S, D] the prompt's capture.
    """
    proj, norm = prompt_head_values(lm, z, direction)
    suppressors = head_departures(proj, norm, stats, 1, sign=-1)
    return head_departures(proj, norm, stats, k), (suppressors[0] if suppressors else None)


def head_attribution(
    lm: Any, result: DirectionResult, n_prompts: object = 32, batch_size: int = 16, progress: Progress | None = None
) -> dict[str, Any]:
    """Activation patching, attribution patching and the Δ measures of every head (the experiment's
    step 6 on this direction's prompts). ``result`` is left as it is (it may be the direction every
    visitor shares): keep the record with ``with_causal``.

    Raises:
        ResearchError: Too few prompts.
    """
    from neuroscope.method.heads import analyse_heads, heads_record

    n = positive_int(n_prompts, "prompts per side")
    behaviour = get_behaviour(result.behaviour)
    harmful, harmless = result.head_prompts
    n = min(n, len(harmful), len(harmless))
    if n < 4:
        raise ResearchError("head attribution needs at least 4 prompts per side; compute the direction on a larger set")
    half = n // 2  # patch on one half, test the top-k sets on the other
    h = analyse_heads(
        lm,
        result.direction,
        harmful[:half],
        harmless[:half],
        harmful[half:n],
        behaviour.token_ids(lm.tokenizer),
        ks=(1, 2, 4, 8),
        n_random=4,
        n_permutations=200,
        batch_size=batch_size,
        progress=progress,
        behaviour=behaviour.name,
        groups=(behaviour.positive, behaviour.negative),
    )
    return heads_record(h)


def with_causal(result: DirectionResult, record: dict[str, Any]) -> DirectionResult:
    """A copy of ``result`` that carries a head attribution record (tensors shared, never written)."""
    return dataclasses.replace(result, causal=record)


def parse_heads(labels: object, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """``["L1H2", ...]`` (or one comma-separated string) -> sorted ``(layer, head)`` pairs.

    Raises:
        ResearchError: A label that is not ``L<layer>H<head>`` or names a head that does not exist.
    """
    if labels is None:
        return []
    if isinstance(labels, str):
        labels = [part for part in labels.replace(";", ",").split(",")]
    if not isinstance(labels, (list, tuple, set)):
        raise ResearchError(f"heads must be a list of labels like L2H5, got {type(labels).__name__}")
    heads = set()
    for label in labels:
        raw = str(label).strip().upper()
        if not raw:
            continue
        try:
            l_text, h_text = raw[1:].split("H")
            if not raw.startswith("L"):
                raise ValueError
            layer, head = int(l_text), int(h_text)
        except ValueError:
            raise ResearchError(f"cannot read head {label!r}: write heads as L<layer>H<head>, e.g. L2H5") from None
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ResearchError(
                f"head {head_label(layer, head)} does not exist (layers 0..{n_layers - 1}, heads 0..{n_heads - 1})"
            )
        heads.add((layer, head))
    return sorted(heads)


MEASURES = {
    "Δ along the direction": RANKING_RULE,
    "activation patching": "the change of the refusal log-odds when the head's post-instruction output on a "
    "harmful prompt is patched from a harmless one, most negative first",
}


def top_heads(result: DirectionResult, k: object, measure: str = "Δ along the direction") -> list[tuple[int, int]]:
    """The top k heads by a measure of ``MEASURES`` (signed; the rule is stated there).

    Raises:
        ResearchError: Bad k, unknown measure, or patching not computed yet.
    """
    k = as_int(k, "k")
    total = result.head_delta.numel()
    if not 0 <= k <= total:
        raise ResearchError(f"k must be between 0 and {total}, got {k}")
    if measure == "Δ along the direction":
        return rank_heads(result.heads.delta_projection, k)
    if measure == "activation patching":
        if result.causal is None:
            raise ResearchError("compute the causal head maps first (button 'Compute head attribution')")
        return [tuple(x) for x in result.causal["ranking"][:k]]
    raise ResearchError(f"unknown measure {measure!r}; choose one of: {', '.join(MEASURES)}")


def ablate_heads(
    lm: Any,
    result: DirectionResult,
    prompt: object,
    heads: Sequence[tuple[int, int]],
    settings: Settings,
    max_new_tokens: object,
) -> tuple[Generation, Generation]:
    """Baseline vs the chosen heads mean-ablated (``z`` replaced by its harmless-prompt mean, as the pipeline does)."""
    text = check_prompt(lm, prompt, settings)
    n_new = check_new_tokens(max_new_tokens, settings)
    if not heads:
        raise ResearchError("choose at least one head to ablate (tick it in the grid, or use 'select top-k by Δ')")
    base = run_condition(lm, text, "baseline", [], result.direction, n_new, settings, result.behaviour)
    iv = HeadAblation(tuple(heads), result.head_means)
    ablated = run_condition(
        lm, text, f"{len(heads)} head(s) mean-ablated", [iv], result.direction, n_new, settings, result.behaviour
    )
    return base, ablated


def head_attention(
    lm: Any, prompt: object, layer: object, head: object, settings: Settings
) -> tuple[Tensor, list[str]]:
    """Attention probabilities ``[S, S]`` of one head on the prompt, and the token strings."""
    text = check_prompt(lm, prompt, settings)
    layer, head = lm.check_layer(as_int(layer, "layer")), lm.check_head(as_int(head, "head"))
    cache = capture(
        lm, [text], attention_layers=[layer], top_k=0, gradients=False, max_tokens=settings.max_prompt_tokens
    )[0]
    return cache.attention[layer][head], cache.tokens
