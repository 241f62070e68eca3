"""Step 7: does the direction generalise? Per-category rates, category directions, XSTest.

Per category: refusal of held-out harmful prompts before / after ablation, with intervals.
Category directions: each category's mean (held-out harmful prompts) minus the training harmless
mean, at the chosen layer and position; their cosine similarities with each other and with the
chosen direction say whether one direction serves every kind of harm. XSTest: over-refusal of
safe prompts that look unsafe (and refusal of its unsafe contrasts) before / after ablation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.directions import cosine_similarity_matrix
from neuroscope.method.evaluation import rates
from neuroscope.model.activations import mean_resid_pre
from neuroscope.model.generate import generate
from neuroscope.model.interventions import DirectionAblation
from neuroscope.prompts import Prompt
from neuroscope.types import Progress


@dataclass
class Generalisation:
    per_category: dict[str, dict[str, Any]]  # category -> {"baseline": rates, "ablation": rates}
    cosine_labels: list[str]
    cosine: Tensor  # [K, K], last row/column is the chosen direction
    xstest: dict[str, dict[str, Any]]  # "safe"/"unsafe" -> condition -> rates
    extra: dict[str, Any] = field(default_factory=dict)


def per_category_rates(
    prompts: Sequence[Prompt], generations: dict[str, list[str]], n_boot: int = 2000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Rates per category of the prompts, for every condition in ``generations`` (aligned lists)."""
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_cat[p.category or "uncategorised"].append(i)
    return {
        cat: {cond: rates([texts[i] for i in idx], n_boot, seed) for cond, texts in generations.items()}
        for cat, idx in sorted(by_cat.items())
    }


def category_directions(
    lm: Any,
    prompts: Sequence[Prompt],
    harmless_mean: Tensor,
    layer: int,
    pos_index: int,
    batch_size: int = 16,
    min_prompts: int = 2,
) -> tuple[list[str], Tensor]:
    """Per-category difference of means at one layer and position.

    Args:
        harmless_mean: [n_layers, n_post, d_model] training harmless mean.

    Returns:
        ``(labels, directions [K, d_model] float64)`` for categories with at least ``min_prompts``.
    """
    by_cat: dict[str, list[str]] = defaultdict(list)
    for p in prompts:
        if p.category:
            by_cat[p.category].append(p.instruction)
    labels, dirs = [], []
    for cat, texts in sorted(by_cat.items()):
        if len(texts) >= min_prompts:
            mu = mean_resid_pre(lm, texts, batch_size=batch_size)
            labels.append(cat)
            dirs.append(mu[layer, pos_index] - harmless_mean[layer, pos_index])
    return labels, (torch.stack(dirs) if dirs else torch.empty(0, lm.d_model, dtype=torch.float64))


def generalisation(
    lm: Any,
    direction: Tensor,
    layer: int,
    pos_index: int,
    test_harmful: Sequence[Prompt],
    harmful_generations: dict[str, list[str]],
    harmless_mean: Tensor,
    xstest_safe: Sequence[Prompt],
    xstest_unsafe: Sequence[Prompt],
    max_new_tokens: int = 32,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
) -> Generalisation:
    """Per-category rates (from the evaluation's generations), category cosines, XSTest before/after."""
    if progress is not None:
        progress(0.0, "generalisation: per-category rates and category directions")
    gens = {c: harmful_generations[c] for c in ("baseline", "ablation", "mean_ablation") if c in harmful_generations}
    per_cat = per_category_rates(test_harmful, gens, n_boot, seed)
    labels, dirs = category_directions(lm, test_harmful, harmless_mean, layer, pos_index, batch_size)
    all_dirs = torch.cat([dirs, direction.double()[None]])
    cos = cosine_similarity_matrix(all_dirs)
    xs: dict[str, dict[str, Any]] = {}
    ablation = [DirectionAblation(direction)]
    sets = [(name, prompts) for name, prompts in (("safe", xstest_safe), ("unsafe", xstest_unsafe)) if prompts]
    for i, (name, prompts) in enumerate(sets):
        if progress is not None:
            progress(0.3 + 0.7 * i / len(sets), f"generalisation: XSTest {name} prompts")
        texts = [p.instruction for p in prompts]
        xs[name] = {
            cond: rates(generate(lm, texts, max_new_tokens, ivs, batch_size), n_boot, seed)
            for cond, ivs in (("baseline", []), ("ablation", ablation))
        }
    return Generalisation(per_cat, labels + ["chosen direction"], cos, xs)
