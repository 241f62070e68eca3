"""Necessity and sufficiency of a behaviour's direction, against random directions.

The service behind ``neuroscope behaviour``: compute the behaviour's direction on its training
pairs (the app's own search), then, on held-out pairs, ablate it on the prompts that show the
behaviour (necessity) and add it to the prompts that do not (sufficiency), each beside random
directions treated the same way (random unit directions ablated; random directions of the same
norm added at the same layer). Rates are judged on greedy answers, with bootstrap intervals.
"""

from __future__ import annotations

from typing import Any

import torch

from neuroscope.analysis.metrics import rate_with_ci
from neuroscope.behaviours import REFUSAL, get_behaviour
from neuroscope.model.generate import generate
from neuroscope.model.interventions import DirectionAblation, DirectionAddition
from neuroscope.services import CURATED, behaviour_pairs, find_direction, load_contrastive_set
from neuroscope.types import Progress


def behaviour_study(
    lm: Any,
    name: str,
    n_train: int = 24,
    n_val: int = 8,
    n_test: int = 12,
    n_random: int = 4,
    max_new_tokens: int = 24,
    strength: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Finds the behaviour's direction and measures necessity and sufficiency with random controls.

    Returns:
        A JSON-ready record: the direction (layer, position, reason), and per condition the rate of
        answers showing the behaviour with its 95 % interval and a few example answers.

    Raises:
        ResearchError: The model does not show the behaviour at baseline, or no usable candidate.
    """
    behaviour = get_behaviour(name)
    data = load_contrastive_set(CURATED if behaviour.name == REFUSAL else name, n_train, n_val, seed=seed)
    result = find_direction(lm, data, batch_size=batch_size)
    _, _, _, test = behaviour_pairs(name, seed)
    test = test[:n_test]
    positives, negatives = [p for p, _ in test], [q for _, q in test]
    gen = torch.Generator().manual_seed(seed)
    norm = float(result.direction.norm())
    randoms = [torch.randn(lm.d_model, generator=gen) for _ in range(n_random)]
    conditions = [
        ("positive", "baseline", positives, []),
        ("positive", "direction ablated", positives, [DirectionAblation(result.direction)]),
        *[("positive", "random ablated", positives, [DirectionAblation(r)]) for r in randoms],
        ("negative", "baseline", negatives, []),
        (
            "negative",
            f"direction added (layer {result.layer}, ×{strength:g})",
            negatives,
            [DirectionAddition(result.direction, result.layer, strength)],
        ),
        *[
            ("negative", "random added", negatives, [DirectionAddition(r * norm / r.norm(), result.layer, strength)])
            for r in randoms
        ],
    ]
    flags: dict[tuple[str, str], list[bool]] = {}
    examples: dict[tuple[str, str], list[str]] = {}
    for i, (side, label, prompts, ivs) in enumerate(conditions):
        if progress:
            progress(i / len(conditions), f"{side}: {label}")
        answers = generate(lm, prompts, max_new_tokens=max_new_tokens, interventions=ivs, batch_size=batch_size)
        flags.setdefault((side, label), []).extend(map(behaviour.judge, answers))
        examples.setdefault((side, label), answers[:2])
    rows = []
    for (side, label), f in flags.items():
        ci = rate_with_ci(f, seed=seed)
        rows.append(
            {
                "prompts": behaviour.positive if side == "positive" else behaviour.negative,
                "condition": label,
                "rate": ci.mean,
                "lo": ci.lo,
                "hi": ci.hi,
                "n": ci.n,
                "examples": examples[(side, label)],
            }
        )
    return {
        "model": lm.name,
        "behaviour": behaviour.name,
        "title": behaviour.title,
        "shows": behaviour.shows,
        "direction": {"layer": result.layer, "position": result.position, "norm": norm, "reason": result.reason},
        "n_test_pairs": len(test),
        "n_random": n_random,
        "max_new_tokens": max_new_tokens,
        "rows": rows,
    }
