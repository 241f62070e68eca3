"""Step 6: which attention heads carry refusal, and is their role causal?

Three measures per head, shown side by side:

- **Δ** (:class:`~neuroscope.analysis.heads.HeadStats`, the one definition the app and the CLI use
  too): harmful mean − harmless mean of the head's output at the post-instruction positions,
  projected on the refusal direction and as a norm; plus its direct contribution to the direction
  on harmful prompts (DFA). Correlational.
- **Activation patching**: the head's ``z`` at the post-instruction positions of harmful prompt i
  is replaced by its value on harmless prompt i; the change of the refusal log-odds is the head's
  causal effect (negative = the head carries refusal). Every head when ``L·H`` is at most
  ``max_patch_heads``, otherwise the top candidates by the attribution estimate.
- **Attribution patching**: gradient × (harmless − harmful ``z``), one backward pass for all
  heads, the first-order estimate of activation patching; its Spearman correlation with real
  patching is reported.

Then the causal check of a *set*: mean-ablate (never zero-ablate) the top-k heads by the causal
ranking and, for comparison, by Δ, on held-out (validation) prompts the patching never saw, against
k random heads; intervals are 95 % bootstrap intervals over prompts. A label-permutation test
says which heads' projections differ between harmful and harmless prompts beyond chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.directions import unit
from neuroscope.analysis.heads import (
    RANKING_RULE,
    HeadStats,
    attribution_patching,
    head_label,
    head_stats,
    head_values,
    permutation_test,
    permutations_for,
    random_head_sets,
    rank_heads,
    spearman,
)
from neuroscope.analysis.metrics import bootstrap_ci, refusal_score
from neuroscope.model.activations import mean_head_z, post_instruction_z
from neuroscope.model.forward import next_token_logits
from neuroscope.model.interventions import DirectionAblation, HeadAblation
from neuroscope.model.patching import metric_gradients, patch_heads
from neuroscope.types import Progress


CAUSAL_RULE = (
    "activation patching: the change of the refusal log-odds when the head's output at the "
    "post-instruction positions of a harmful prompt is replaced by its value on a harmless prompt, "
    "most negative first"
)


@dataclass
class HeadAnalysis:
    """Head measures, rankings, top-k vs random-k ablation and the permutation test. [L, H] tensors."""

    stats: HeadStats  # Δ projection / Δ norm / DFA and the harmless baseline
    p_values: Tensor  # permutation test of per-prompt projections (two-sided)
    attribution: Tensor  # attribution-patching estimate of the patching effect
    patching: Tensor  # activation-patching effect (NaN where not patched)
    patching_lo: Tensor
    patching_hi: Tensor
    agreement: float  # Spearman(attribution, patching) over the patched heads
    ranking: list[tuple[int, int]]  # causal ranking (patched heads, most negative effect first)
    ranking_delta: list[tuple[int, int]]  # Δ ranking (RANKING_RULE)
    head_means: Tensor  # [L, H, D] mean z over real tokens of harmless prompts (ablation values)
    ks: list[int]
    top_scores: list[float]  # mean refusal score of eval prompts, top-k (causal ranking) ablated
    top_intervals: list[tuple[float, float]]  # 95 % bootstrap interval over prompts of each
    top_scores_delta: list[float]  # same, top-k by Δ
    random_scores: list[list[float]]  # per k, one mean score per random set
    baseline_score: float  # no ablation
    direction_score: float  # the refusal direction ablated (what a full mechanism achieves)
    n_permutations: int
    n_patch_prompts: int
    verdict: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delta_projection(self) -> Tensor:
        return self.stats.delta_projection

    @property
    def delta_norm(self) -> Tensor:
        return self.stats.delta_norm


def _scores(lm: Any, prompts: Sequence[str], ivs, refusal_ids, batch_size: int) -> Tensor:
    return refusal_score(next_token_logits(lm, list(prompts), ivs, batch_size), refusal_ids)


def causal_ranking(patching: Tensor) -> list[tuple[int, int]]:
    """Patched heads by effect, most negative (most refusal removed) first; unpatched heads excluded."""
    filled = torch.where(torch.isnan(patching), torch.full_like(patching, math.inf), patching)
    n_patched = int((~torch.isnan(patching)).sum())
    return rank_heads(filled, n_patched, descending=False)


def _head_values(lm, direction, harmful, harmless, batch_size, n_permutations, seed, tick) -> tuple:
    """Every head's write along the direction per prompt: (Δ statistics, permutation test, harmless ``z`` by
    position [M, L, H, P, D], which is also the patching's source)."""
    r = unit(direction.double())
    W_O = lm.o_proj_weights()
    tick(0.0, "heads: per-prompt head outputs (harmful)")
    values_h = head_values(post_instruction_z(lm, harmful, batch_size), W_O, r)
    tick(0.1, "heads: per-prompt head outputs (harmless)")
    z_b = post_instruction_z(lm, harmless, batch_size, by_position=True)  # [M, L, H, P, D]: Δ and patching sources
    values_b = head_values(z_b.mean(dim=3), W_O, r)
    stats = head_stats(values_h, values_b)
    tick(0.2, "heads: permutation test")
    perm = permutation_test(values_h[0], values_b[0], "abs_mean_diff", n_perm=n_permutations, seed=seed)
    return stats, perm, z_b


def _patching(lm, clean, z_source, refusal_ids, batch_size, max_patch_heads, n_boot, seed, tick) -> dict[str, Any]:
    """Attribution patching for every head, then activation patching for the top candidates, each
    ``z_source[i]`` (a harmless prompt's head outputs) patched into ``clean[i]``; intervals over prompts."""
    metric = lambda logits: refusal_score(logits, refusal_ids)  # noqa: E731
    tick(0.25, "heads: attribution patching (one backward pass per batch)")
    clean_metric, grad, z_clean = metric_gradients(lm, clean, metric, batch_size)
    attribution = attribution_patching(grad, z_clean, z_source)
    L, H = lm.n_layers, lm.n_heads
    candidates = rank_heads(attribution.abs(), min(L * H, max_patch_heads))
    sub = lambda f, m: tick(0.3 + 0.35 * f, m)  # noqa: E731
    effects = patch_heads(lm, clean, z_source, candidates, metric, batch_size, sub) - clean_metric[None]  # [K, N]
    patching = torch.full((L, H), math.nan, dtype=torch.float64)
    lo, hi = patching.clone(), patching.clone()
    for (layer, head), row in zip(candidates, effects):
        iv = bootstrap_ci(row, n_boot=n_boot, seed=seed)
        patching[layer, head], lo[layer, head], hi[layer, head] = iv.mean, iv.lo, iv.hi
    patched = ~torch.isnan(patching)
    agreement = spearman(attribution[patched], patching[patched]) if int(patched.sum()) >= 2 else math.nan
    return {"attribution": attribution, "patching": patching, "lo": lo, "hi": hi, "agreement": agreement}


def _ablate_sets(
    lm, direction, eval_harmful, refusal_ids, means, ranking, ranking_delta, ks, n_random, batch_size, seed, n_boot,
    tick,
) -> dict[str, Any]:  # fmt: skip
    """The refusal score on held-out prompts with the top-k heads (both rankings) and random k-head sets
    mean-ablated, beside the baseline and the whole direction ablated."""
    L, H = lm.n_layers, lm.n_heads
    score = lambda ivs: _scores(lm, eval_harmful, ivs, refusal_ids, batch_size)  # noqa: E731
    out: dict[str, Any] = {
        "baseline": float(score([]).mean()),
        "direction_score": float(score([DirectionAblation(direction)]).mean()),
        "top_scores": [],
        "top_intervals": [],
        "top_delta": [],
        "random_scores": [],
    }
    for i, k in enumerate(ks):
        tick(0.7 + 0.3 * i / len(ks), f"heads: ablating top-{k} (two rankings) and {n_random} random {k}-head sets")
        iv = bootstrap_ci(score([HeadAblation(tuple(ranking[:k]), means)]), n_boot=n_boot, seed=seed)
        out["top_scores"].append(iv.mean)
        out["top_intervals"].append((iv.lo, iv.hi))
        out["top_delta"].append(float(score([HeadAblation(tuple(ranking_delta[:k]), means)]).mean()))
        sets = random_head_sets(L, H, k, n_random, seed=seed + k)
        out["random_scores"].append([float(score([HeadAblation(tuple(s), means)]).mean()) for s in sets])
    return out


def analyse_heads(
    lm: Any,
    direction: Tensor,
    harmful: Sequence[str],
    harmless: Sequence[str],
    eval_harmful: Sequence[str],
    refusal_ids: Sequence[int],
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
    n_random: int = 8,
    n_permutations: int = 1000,
    batch_size: int = 16,
    seed: int = 0,
    max_patch_heads: int = 256,
    n_boot: int = 1000,
    progress: Progress | None = None,
    behaviour: str = "refusal",
    groups: tuple[str, str] = ("harmful", "harmless"),
) -> HeadAnalysis:
    """Measures every head three ways, then tests the top sets causally on held-out prompts.

    Args:
        lm: A ``LoadedModel``.
        direction: [d_model] refusal direction (any norm).
        harmful, harmless: Prompts for Δ, the permutation test and patching (harmless[i] is
            patched into harmful[i]; the shorter list sets the pair count); harmless also gives the
            ablation means.
        eval_harmful: Held-out prompts the head-set ablations are measured on.
        refusal_ids: First-token ids of refusals.
        ks: Numbers of heads to ablate (clipped to the head count).
        n_random: Random head sets per k.
        n_permutations: Permutations of the harmful/harmless labels.
        max_patch_heads: Patch every head up to this many; beyond, the top candidates by |attribution|.
        behaviour, groups: How the verdict names the behaviour and the two prompt groups (``verdict``).

    Returns:
        HeadAnalysis.
    """

    def tick(f: float, msg: str) -> None:
        if progress is not None:
            progress(f, msg)

    L, H = lm.n_layers, lm.n_heads
    stats, perm, z_b = _head_values(lm, direction, harmful, harmless, batch_size, n_permutations, seed, tick)
    n_pairs = min(len(harmful), len(harmless))
    patched = _patching(
        lm, list(harmful[:n_pairs]), z_b[:n_pairs], refusal_ids, batch_size, max_patch_heads, n_boot, seed, tick
    )
    ks = sorted({min(int(k), L * H) for k in ks})
    ranking, ranking_delta = causal_ranking(patched["patching"]), rank_heads(stats.delta_projection)
    tick(0.65, "heads: mean activations for ablation")
    means = mean_head_z(lm, list(harmless), batch_size=batch_size)
    ablated = _ablate_sets(
        lm, direction, eval_harmful, refusal_ids, means, ranking, ranking_delta, ks, n_random, batch_size, seed, n_boot,
        tick,
    )  # fmt: skip
    result = HeadAnalysis(
        stats,
        perm.p_values,
        patched["attribution"],
        patched["patching"],
        patched["lo"],
        patched["hi"],
        patched["agreement"],
        ranking,
        ranking_delta,
        means.float(),
        ks,
        ablated["top_scores"],
        ablated["top_intervals"],
        ablated["top_delta"],
        ablated["random_scores"],
        ablated["baseline"],
        ablated["direction_score"],
        n_permutations,
        n_pairs,
    )
    result.verdict = verdict(result, behaviour=behaviour, groups=groups)
    return result


def _significance(h: HeadAnalysis, pos: str, neg: str) -> str:
    """How many heads the permutation test separates, and whether its permutation count could tell."""
    threshold = 0.05 / h.p_values.numel()
    n_sig = int((h.p_values < threshold).sum())
    sig = f"{n_sig} head(s) differ between {pos} and {neg} beyond chance (permutation test, Bonferroni 0.05)."
    if 1.0 / (1 + h.n_permutations) >= threshold:
        sig += (
            f" With {h.n_permutations} permutations no p-value can fall below the corrected threshold "
            f"{threshold:.1e}: run with at least {permutations_for(h.p_values.numel())} for this test to mean anything."
        )
    return sig


def _single_head(h: HeadAnalysis, b: str, drop_dir: float) -> str:
    """The strongest single head by activation patching, against ablating the whole direction."""
    patched = ~torch.isnan(h.patching)
    n_patched = int(patched.sum())
    if not (n_patched and h.ranking):
        return ""
    layer, head = h.ranking[0]
    excludes_zero = bool(h.patching_hi[layer, head] < 0)
    return (
        f"The strongest single head by activation patching, {head_label(layer, head)}, changes the {b} log-odds by "
        f"{h.patching[layer, head]:+.2f} [{h.patching_lo[layer, head]:+.2f}, {h.patching_hi[layer, head]:+.2f}]"
        f" ({'an interval that excludes 0' if excludes_zero else 'an interval that includes 0'}), against "
        f"{-drop_dir:+.2f} for ablating the whole direction; attribution patching ranks the "
        f"{n_patched} patched heads with Spearman {h.agreement:.2f} against real patching. "
    )


def verdict(
    h: HeadAnalysis,
    share: float = 0.5,
    min_effect: float = 1.0,
    behaviour: str = "refusal",
    groups: tuple[str, str] = ("harmful", "harmless"),
) -> str:
    """Plain sentences: what the patching evidence and the top-k vs random-k test do and do not support.

    Args:
        share: Fraction of the direction-ablation effect the top-k heads must reproduce.
        min_effect: Smallest direction-ablation drop of the refusal score (log-odds) worth
            explaining; below it the comparison would be noise.
        behaviour: What the direction is a direction of, as the sentences name it.
        groups: The (positive, negative) prompt groups' names.
    """
    b, (pos, neg) = behaviour, groups
    drop_dir = h.baseline_score - h.direction_score
    sig = _significance(h, pos, neg)
    single = _single_head(h, b, drop_dir)
    if drop_dir < min_effect:
        return (
            single + f"Ablating the {b} direction lowers the {b} score by only {drop_dir:.2f} (log-odds), so "
            "there is no effect for heads to explain. " + sig
        )
    for k, top, (lo, hi), rand in zip(h.ks, h.top_scores, h.top_intervals, h.random_scores):
        drop = h.baseline_score - top
        if drop < share * drop_dir:
            continue
        raised = [kk for kk, t in zip(h.ks, h.top_scores) if kk < k and t > h.baseline_score]
        caveat = (
            f" The top {' and '.join(map(str, raised))} alone, mean-ablated, raise the score instead: mean "
            f"ablation replaces a head's output everywhere by its {neg} average, not by the paired prompt's "
            "output the patching ranked it with, so single-head effects do not simply add up."
            if raised
            else ""
        )
        if all(top < x for x in rand):
            return (
                single + f"A small head set carries much of {b}: mean-ablating the top {k} head(s) by "
                f"activation patching removes {drop / drop_dir:.0%} of the {b}-score drop that direction "
                f"ablation achieves (score {top:.2f} [{lo:.2f}, {hi:.2f}]), more than every one of {len(rand)} "
                f"random {k}-head sets. This supports a causal role for that set on these prompts; it does not "
                f"show that the heads compute {b} alone (MLPs and later layers read what they write)."
                + caveat
                + " "
                + sig
            )
        better = sum(x <= top for x in rand)
        return (
            single + f"No small head set is singled out: the top {k} heads by activation patching, mean-ablated, "
            f"remove {drop / drop_dir:.0%} of the {b}-score drop of direction ablation, but {better} of "
            f"{len(rand)} random {k}-head sets do at least as well, so the evidence does not identify {b} "
            "heads (ablating that many heads disrupts the model broadly). " + sig
        )
    k, top = h.ks[-1], h.top_scores[-1]
    rand_best = min(h.random_scores[-1])
    return (
        single + f"No small head set carries {b}: even the top {k} heads by activation patching, mean-ablated, "
        f"remove only {(h.baseline_score - top) / drop_dir:.0%} of the {b}-score drop of direction ablation "
        f"(best random {k}-head set: {(h.baseline_score - rand_best) / drop_dir:.0%}). The evidence supports a "
        "distributed mechanism (MLPs, many heads), not a head circuit. " + sig
    )


def heads_record(h: HeadAnalysis) -> dict[str, Any]:
    """The JSON-ready record of a head analysis (``heads.json``; NaN = not patched -> null)."""
    nan_none = lambda t: [[None if math.isnan(v) else v for v in row] for row in t.tolist()]  # noqa: E731
    return {
        "delta_norm": h.delta_norm,
        "delta_projection": h.delta_projection,
        "dfa": h.stats.harmful_projection,
        "harmless_projection_mean": h.stats.harmless_projection_mean,
        "harmless_projection_std": h.stats.harmless_projection_std,
        "p_values": h.p_values,
        "attribution": h.attribution,
        "patching": nan_none(h.patching),
        "patching_lo": nan_none(h.patching_lo),
        "patching_hi": nan_none(h.patching_hi),
        "agreement_spearman": None if math.isnan(h.agreement) else h.agreement,
        "ranking": [list(x) for x in h.ranking],
        "ranking_delta": [list(x) for x in h.ranking_delta],
        "ranking_rule": CAUSAL_RULE,
        "delta_rule": RANKING_RULE,
        "ks": h.ks,
        "top_scores": h.top_scores,
        "top_intervals": [list(x) for x in h.top_intervals],
        "top_scores_delta": h.top_scores_delta,
        "random_scores": h.random_scores,
        "baseline_score": h.baseline_score,
        "direction_score": h.direction_score,
        "n_permutations": h.n_permutations,
        "verdict": h.verdict,
        "n_prompts": [h.stats.n_harmful, h.stats.n_harmless],
        "n_patch_prompts": h.n_patch_prompts,
        "ablation_means": "mean z over real (unpadded) tokens of the harmless prompts",
    }


def measure_maps(record: dict[str, Any]) -> dict[str, Any]:
    """Panel title -> [L, H] array of each head measure of a ``heads_record`` (NaN where not measured)."""
    import numpy as np

    grid = lambda key: np.array([[math.nan if v is None else v for v in row] for row in record[key]], dtype=float)  # noqa: E731
    return {
        "Δ along direction": grid("delta_projection"),
        "Δ norm": grid("delta_norm"),
        "DFA (harmful)": grid("dfa"),
        "attribution (est.)": grid("attribution"),
        "activation patching": grid("patching"),
    }


__all__ = [
    "CAUSAL_RULE",
    "RANKING_RULE",
    "HeadAnalysis",
    "analyse_heads",
    "causal_ranking",
    "heads_record",
    "measure_maps",
    "verdict",
]
