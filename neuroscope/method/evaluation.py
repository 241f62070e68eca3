"""Steps 4-5: the chosen direction's interventions, measured on held-out prompts.

Necessity: directional ablation (the paper's form, projection -> 0, and the mean form,
projection -> harmless mean) on held-out harmful prompts. Sufficiency: activation addition on
held-out harmless prompts. Controls: a random direction of the same norm. Collateral damage:
first-token KL and completion cross-entropy on harmless prompts. Every rate carries a 95 %
bootstrap interval; every counted refusal is also checked for being a clean one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.metrics import (
    Interval,
    bootstrap_ci,
    is_clean_refusal,
    is_refusal,
    is_refusal_broad,
    kl_divergence,
    rate_with_ci,
    refusal_score,
)
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate
from neuroscope.model.interventions import DirectionAblation, DirectionAddition, Intervention
from neuroscope.model.orthogonalize import WeightEdit, completion_loss, orthogonalized_copy
from neuroscope.types import Progress


ZERO_FORM = WeightEdit()  # the paper's orthogonalisation: zero form, lambda = 1
HARMFUL_CONDITIONS = ("baseline", "ablation", "mean_ablation", "random_ablation")
HARMLESS_CONDITIONS = ("baseline", "addition", "random_addition", "ablation")


def random_direction(like: Tensor, seed: int) -> Tensor:
    """A Gaussian random direction with the same norm as ``like`` ([d_model] float32)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(like.shape, generator=gen, dtype=torch.float64)
    return (v / v.norm() * like.double().norm()).float()


def rates(texts: Sequence[str], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Refusal rates of completions under three judges, each with a 95 % interval.

    ``refusal``: Arditi et al.'s substring judge; ``clean_refusal``: those of them that are clean
    refusals; ``refusal_broad``: the second judge (a broad marker list; empty answers count).
    """
    flags = [is_refusal(t) for t in texts]
    clean = [is_clean_refusal(t) for t in texts]
    broad = [is_refusal_broad(t) for t in texts]
    return {
        "refusal": rate_with_ci(flags, n_boot=n_boot, seed=seed),
        "clean_refusal": rate_with_ci(clean, n_boot=n_boot, seed=seed),
        "refusal_broad": rate_with_ci(broad, n_boot=n_boot, seed=seed),
        "n": len(texts),
        "n_refusal": sum(flags),
        "n_clean": sum(clean),
        "n_broad": sum(broad),
        "n_empty": sum(not t.strip() for t in texts),
        "n_broken": sum(f and not c for f, c in zip(flags, clean)),
    }


def interventions_for(
    direction: Tensor, layer: int, strength: float, mean_target: Tensor | None, seed: int
) -> dict[str, list[Intervention]]:
    """Named intervention lists of one evaluation (random controls drawn with ``seed``)."""
    rand = random_direction(direction, seed)
    out: dict[str, list[Intervention]] = {
        "baseline": [],
        "ablation": [DirectionAblation(direction)],
        "random_ablation": [DirectionAblation(rand)],
        "addition": [DirectionAddition(direction, layer, strength)],
        "random_addition": [DirectionAddition(rand, layer, strength)],
    }
    if mean_target is not None:
        out["mean_ablation"] = [DirectionAblation(direction, target=mean_target.float())]
    return out


@dataclass
class EvaluationResult:
    """Refusal rates, logit scores and collateral-damage numbers of one direction."""

    rates: dict[str, dict[str, dict[str, Any]]]  # set -> condition -> rates()
    logit_scores: dict[str, dict[str, float]]  # set -> condition -> mean refusal score
    kl: dict[str, Interval]  # condition -> first-token KL on harmless (mean, 95 % CI)
    cross_entropy: dict[str, Interval]  # condition -> CE of baseline harmless answers
    generations: dict[str, dict[str, list[str]]]  # set -> condition -> answers
    layer: int
    strength: float
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_interventions(
    lm: Any,
    direction: Tensor,
    layer: int,
    harmful: Sequence[str],
    harmless: Sequence[str],
    refusal_ids: Sequence[int],
    mean_target: Tensor | None = None,
    strength: float = 1.0,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    cross_entropy: bool = True,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Generates on both sets under every condition and measures refusal and collateral damage.

    Args:
        lm: A ``LoadedModel``.
        direction: [d_model] unnormalised refusal direction.
        layer: Layer whose input activation addition steers.
        harmful, harmless: Held-out instructions.
        refusal_ids: First-token ids of refusals (logit score).
        mean_target: [n_layers] harmless projection means (mean-ablation form); None skips it.
        strength: Activation-addition multiplier.
        cross_entropy: Also score the baseline harmless answers under ablation (teacher forcing).

    Returns:
        EvaluationResult.
    """
    ivs = interventions_for(direction, layer, strength, mean_target, seed)
    plan = [("harmful", c, list(harmful)) for c in HARMFUL_CONDITIONS if c in ivs]
    plan += [("harmless", c, list(harmless)) for c in HARMLESS_CONDITIONS if c in ivs]
    out_rates: dict[str, dict[str, Any]] = {"harmful": {}, "harmless": {}}
    scores: dict[str, dict[str, float]] = {"harmful": {}, "harmless": {}}
    gens: dict[str, dict[str, list[str]]] = {"harmful": {}, "harmless": {}}
    logits: dict[tuple[str, str], Tensor] = {}
    for i, (name, cond, prompts) in enumerate(plan):
        if progress is not None:
            progress(i / (len(plan) + 1), f"generating: {name} prompts, {cond.replace('_', ' ')}")
        logits[name, cond] = next_token_logits(lm, prompts, ivs[cond], batch_size)
        scores[name][cond] = float(refusal_score(logits[name, cond], refusal_ids).mean())
        gens[name][cond] = generate(lm, prompts, max_new_tokens, ivs[cond], batch_size)
        out_rates[name][cond] = rates(gens[name][cond], n_boot, seed)
    if progress is not None:
        progress(len(plan) / (len(plan) + 1), "collateral damage: KL and cross-entropy on harmless")
    kl_conditions = [c for c in ("ablation", "mean_ablation", "random_ablation") if c in ivs]
    base_b = logits["harmless", "baseline"]
    kl: dict[str, Interval] = {}
    ce: dict[str, Interval] = {}
    for cond in kl_conditions:
        q = logits.get(("harmless", cond))
        if q is None:
            q = next_token_logits(lm, list(harmless), ivs[cond], batch_size)
        kl[cond] = bootstrap_ci(kl_divergence(base_b, q), n_boot=n_boot, seed=seed)
    if cross_entropy:
        answers = gens["harmless"]["baseline"]
        keep = [i for i, a in enumerate(answers) if a]
        prompts_k = [harmless[i] for i in keep]
        answers_k = [answers[i] for i in keep]
        for cond in ["baseline"] + kl_conditions:
            values = completion_loss(lm, prompts_k, answers_k, ivs[cond], batch_size) if keep else torch.empty(0)
            ce[cond] = bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return EvaluationResult(out_rates, scores, kl, ce, gens, layer, strength)


def check_orthogonalization(
    lm: Any,
    direction: Tensor,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    batch_size: int = 16,
    edit: WeightEdit = ZERO_FORM,
    target: Tensor | None = None,
) -> tuple[dict[str, Any], Any]:
    """Hooks vs the same edit baked into the weights: identical greedy generations and logits?

    Args:
        edit: The form and strength (default: the paper's zero form, lambda = 1).
        target: [n_layers] mean-form target (mean form only).

    Returns:
        ``(summary, edited_model)``: summary has the edit, n, identical (count), max_logit_diff
        and the prompts whose generations differ; the edited model can be exported with
        ``save_model``.
    """
    edited = orthogonalized_copy(lm, direction, edit, target)
    hooks = [edit.hooks(direction, target)]
    prompts = list(prompts)
    hook = generate(lm, prompts, max_new_tokens, hooks, batch_size)
    weights = generate(edited, prompts, max_new_tokens, (), batch_size)
    a = next_token_logits(lm, prompts, hooks, batch_size)
    b = next_token_logits(edited, prompts, (), batch_size)
    same = [x == y for x, y in zip(hook, weights)]
    summary = {
        "edit": {"form": edit.form, "strength": float(edit.strength), "label": edit.label},
        "n": len(prompts),
        "identical": sum(same),
        "max_logit_diff": float((a - b).abs().max()) if prompts else 0.0,
        "differing": [
            {"prompt": p, "hook": h, "weights": w} for p, h, w, s in zip(prompts, hook, weights, same) if not s
        ],
    }
    return summary, edited


def evaluate_edited(
    edited: Any,
    original: Any,
    harmful: Sequence[str],
    harmless: Sequence[str],
    max_new_tokens: int = 32,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The edited weights themselves on held-out prompts, no hooks: what a user who exports gets.

    Returns:
        ``{"rates": rates() of the harmful answers, "kl": Interval}``: first-token KL on the
        harmless prompts from ``original`` to ``edited``.
    """
    answers = generate(edited, list(harmful), max_new_tokens, (), batch_size)
    kl = kl_divergence(
        next_token_logits(original, list(harmless), (), batch_size),
        next_token_logits(edited, list(harmless), (), batch_size),
    )
    return {"rates": rates(answers, n_boot, seed), "kl": bootstrap_ci(kl, n_boot=n_boot, seed=seed)}


def evaluate_direction(
    lm: Any,
    direction: Tensor,
    layer: int,
    harmful: Sequence[str],
    harmless: Sequence[str],
    strength: float = 1.0,
    mean_target: Tensor | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Refusal rates (with intervals) for baseline, ablated and added, on both sets, plus KL.

    The quick check behind ``python -m neuroscope evaluate``: no controls, no cross-entropy.

    Returns:
        ``{"harmful": {cond: rates}, "harmless": {cond: rates}, "kl": {set: {cond: Interval}}}``
        with conditions baseline, ablation, addition (and mean_ablation when ``mean_target``).
    """
    ivs = {
        k: v
        for k, v in interventions_for(direction, layer, strength, mean_target, seed).items()
        if k in ("baseline", "ablation", "mean_ablation", "addition")
    }
    sets = {"harmful": list(harmful), "harmless": list(harmless)}
    out: dict[str, Any] = {"harmful": {}, "harmless": {}, "kl": {"harmful": {}, "harmless": {}}}
    steps = [(s, c) for s in sets for c in ivs]
    base: dict[str, Tensor] = {}
    for i, (name, cond) in enumerate(steps):
        if progress is not None:
            progress(i / len(steps), f"{name} prompts, {cond.replace('_', ' ')}")
        logits = next_token_logits(lm, sets[name], ivs[cond], batch_size)
        if cond == "baseline":
            base[name] = logits
        else:
            out["kl"][name][cond] = bootstrap_ci(kl_divergence(base[name], logits), n_boot=n_boot, seed=seed)
        out[name][cond] = rates(generate(lm, sets[name], max_new_tokens, ivs[cond], batch_size), n_boot, seed)
    if progress is not None:
        progress(1.0, "done")
    return out
