"""Step 6: which attention heads write the refusal direction, and does ablating them matter?

Per head: the difference (harmful - harmless) of its mean contribution at the post-instruction
positions, as a norm and as a projection on the refusal direction; heads ranked by that projection.
Causal check: mean-ablate (never zero-ablate) the top-k heads for k = 1, 2, 4, ... and compare the
refusal score with k random heads (the control). A label-permutation test says which heads'
projections differ between harmful and harmless prompts beyond chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.directions import unit
from neuroscope.analysis.heads import head_deltas, head_projections, permutation_test, random_head_sets
from neuroscope.analysis.metrics import refusal_score
from neuroscope.model.activations import mean_head_z, post_instruction_z
from neuroscope.model.forward import next_token_logits
from neuroscope.model.interventions import DirectionAblation, HeadAblation

Progress = Callable[[float, str], None]


@dataclass
class HeadAnalysis:
    """Head deltas, ranking, top-k vs random-k ablation and the permutation test."""

    delta_norm: Tensor  # [L, H] ||W_O_h (mean z_harmful - mean z_harmless)||
    delta_projection: Tensor  # [L, H] that difference projected on the unit direction
    p_values: Tensor  # [L, H] permutation test of per-prompt projections (two-sided)
    ranking: list[tuple[int, int]]  # heads by signed Δ projection, largest first
    head_means: Tensor  # [L, H, D] mean z over real tokens of harmless prompts (ablation values)
    ks: list[int]
    top_scores: list[float]  # mean refusal score of harmful prompts, top-k heads ablated
    random_scores: list[list[float]]  # per k, one score per random set
    baseline_score: float  # no ablation
    direction_score: float  # the refusal direction ablated (what a full mechanism achieves)
    n_permutations: int
    verdict: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def rank_by_projection(projection: Tensor) -> list[tuple[int, int]]:
    """Heads by signed Δ projection, largest first (ties by (layer, head)).

    Signed, not |Δ|: a head that writes *less* of the direction on harmful prompts works against
    refusal, and mean-ablating it together with refusal-writing heads would cancel their effects.
    """
    n_heads = projection.shape[1]
    order = torch.argsort(-projection.double().flatten(), stable=True).tolist()
    return [divmod(i, n_heads) for i in order]


def _per_prompt_projections(z: Tensor, W_O: Tensor, r: Tensor) -> Tensor:
    """[N, L, H, D], [L, d, H*D], unit [d] -> [N, L, H] float64."""
    return torch.stack([head_projections(z[:, layer], W_O[layer], r).double() for layer in range(z.shape[1])], dim=1)


def _score(lm: Any, prompts: Sequence[str], ivs, refusal_ids, batch_size: int) -> float:
    return float(refusal_score(next_token_logits(lm, list(prompts), ivs, batch_size), refusal_ids).mean())


def analyse_heads(lm: Any, direction: Tensor, harmful: Sequence[str], harmless: Sequence[str], eval_harmful: Sequence[str],
                  refusal_ids: Sequence[int], ks: Sequence[int] = (1, 2, 4, 8, 16, 32), n_random: int = 8,
                  n_permutations: int = 1000, batch_size: int = 16, seed: int = 0,
                  progress: Progress | None = None) -> HeadAnalysis:
    """Ranks heads by how much more they write the direction on harmful prompts, then tests it.

    Args:
        lm: A ``LoadedModel``.
        direction: [d_model] refusal direction (any norm).
        harmful, harmless: Prompts for the per-head statistics (and harmless for the ablation means).
        eval_harmful: Prompts whose refusal score the head ablations are measured on.
        refusal_ids: First-token ids of refusals.
        ks: Numbers of heads to ablate (clipped to the head count).
        n_random: Random head sets per k.
        n_permutations: Permutations of the harmful/harmless labels.

    Returns:
        HeadAnalysis.
    """
    def tick(f: float, msg: str) -> None:
        if progress is not None:
            progress(f, msg)

    r = unit(direction.double())
    W_O = torch.stack([lm.o_proj_weight(layer).detach().double().cpu() for layer in range(lm.n_layers)])
    tick(0.0, "heads: per-prompt head outputs (harmful)")
    z_h = post_instruction_z(lm, harmful, batch_size)
    tick(0.15, "heads: per-prompt head outputs (harmless)")
    z_b = post_instruction_z(lm, harmless, batch_size)
    deltas = head_deltas(z_h.double().mean(0), z_b.double().mean(0), W_O, r)
    proj_h, proj_b = _per_prompt_projections(z_h, W_O, r), _per_prompt_projections(z_b, W_O, r)
    tick(0.3, "heads: permutation test")
    perm = permutation_test(proj_h, proj_b, "abs_mean_diff", n_perm=n_permutations, seed=seed)
    n_total = lm.n_layers * lm.n_heads
    ks = sorted({min(int(k), n_total) for k in ks})
    ranking = rank_by_projection(deltas.projection)
    tick(0.35, "heads: mean activations for ablation")
    means = mean_head_z(lm, list(harmless), batch_size=batch_size)
    baseline = _score(lm, eval_harmful, [], refusal_ids, batch_size)
    direction_score = _score(lm, eval_harmful, [DirectionAblation(direction)], refusal_ids, batch_size)
    top_scores, random_scores = [], []
    for i, k in enumerate(ks):
        tick(0.4 + 0.6 * i / len(ks), f"heads: ablating top-{k} and {n_random} random {k}-head sets")
        top_scores.append(_score(lm, eval_harmful, [HeadAblation(tuple(ranking[:k]), means)], refusal_ids, batch_size))
        sets = random_head_sets(lm.n_layers, lm.n_heads, k, n_random, seed=seed + k)
        random_scores.append([_score(lm, eval_harmful, [HeadAblation(tuple(s), means)], refusal_ids, batch_size)
                              for s in sets])
    result = HeadAnalysis(deltas.norm, deltas.projection, perm.p_values, ranking, means.float(), ks, top_scores,
                          random_scores, baseline, direction_score, n_permutations)
    result.verdict = verdict(result)
    return result


def verdict(h: HeadAnalysis, share: float = 0.5, min_effect: float = 1.0) -> str:
    """One honest sentence: does a small head set carry refusal, compared with its control?

    Args:
        share: Fraction of the direction-ablation effect the top-k heads must reproduce.
        min_effect: Smallest direction-ablation drop of the refusal score (log-odds) worth
            explaining; below it the comparison would be noise.
    """
    drop_dir = h.baseline_score - h.direction_score
    n_sig = int((h.p_values < 0.05 / h.p_values.numel()).sum())
    sig = f"{n_sig} head(s) differ between harmful and harmless beyond chance (permutation test, Bonferroni 0.05)."
    if drop_dir < min_effect:
        return (f"Ablating the refusal direction lowers the refusal score by only {drop_dir:.2f} (log-odds), so there "
                "is no effect for heads to explain. " + sig)
    for k, top, rand in zip(h.ks, h.top_scores, h.random_scores):
        drop = h.baseline_score - top
        if drop < share * drop_dir:
            continue
        if all(top < x for x in rand):
            return (f"A small head set carries much of refusal: mean-ablating the top {k} head(s) removes "
                    f"{drop / drop_dir:.0%} of the refusal-score drop that direction ablation achieves, more than "
                    f"every one of {len(rand)} random {k}-head sets. " + sig)
        better = sum(x <= top for x in rand)
        return (f"No small head set is singled out: the top {k} heads, mean-ablated, remove {drop / drop_dir:.0%} of "
                f"the refusal-score drop of direction ablation, but {better} of {len(rand)} random {k}-head sets do "
                "at least as well, so the ranking does not identify refusal heads (ablating that many heads "
                "disrupts the model broadly). " + sig)
    k, top = h.ks[-1], h.top_scores[-1]
    rand_best = min(h.random_scores[-1])
    return (f"No small head set carries refusal: even the top {k} heads, mean-ablated, remove only "
            f"{(h.baseline_score - top) / drop_dir:.0%} of the refusal-score drop of direction ablation "
            f"(best random {k}-head set: {(h.baseline_score - rand_best) / drop_dir:.0%}). Refusal looks distributed "
            "(MLPs, many heads). " + sig)
