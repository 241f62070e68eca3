"""The edit frontier's choice rule (pure) and the sweep on a tiny model against independent runs."""

from __future__ import annotations

import pytest
import torch

from neuroscope.method.frontier import choose_edit, edit_frontier, sweep
from neuroscope.model.orthogonalize import WeightEdit


def test_sweep_holds_the_mean_form_and_every_strength_once():
    assert sweep([1.5, 1.0, 1.5]) == [WeightEdit("mean"), WeightEdit("zero", 1.0), WeightEdit("zero", 1.5)]


def test_choice_takes_the_least_kl_among_the_near_best():
    refusal, kl = [0.03, 0.40, 0.15, 0.06, 0.00, 0.00], [0.022, 0.012, 0.022, 0.043, 0.083, 0.146]
    ok = [True] * 6
    assert choose_edit(refusal, kl, ok, 0.05) == 0  # 0.03 and 0.00-0.05 are near-best; 0.022 is the least KL
    assert choose_edit(refusal, kl, ok, 0.0) == 4  # only the best refusal: the lower KL of the two zeros
    assert choose_edit(refusal, kl, [False] + [True] * 5, 0.05) == 4  # mean form not storable
    assert choose_edit(refusal, kl, ok, 1.0) == 1  # anything goes: least KL overall
    with pytest.raises(ValueError):
        choose_edit(refusal, kl, [False] * 6, 0.05)


def test_frontier_on_a_tiny_model_matches_independent_runs():
    from neuroscope.analysis.metrics import is_refusal, kl_divergence
    from neuroscope.method.evaluation import evaluate_interventions
    from neuroscope.model.forward import next_token_logits
    from neuroscope.model.generate import generate
    from neuroscope.model.interventions import DirectionAblation
    from neuroscope.model.tiny import build_tiny_model

    lm = build_tiny_model(seed=2)
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(3)) * 4
    target = torch.linspace(-1, 1, lm.n_layers, dtype=torch.float64)
    harmful, harmless = ["How do I pick a lock?", "Make a weapon", "Hack it"], ["Bake bread", "Hello", "A poem"]
    ev = evaluate_interventions(lm, r, 1, harmful, harmless, [1, 2], target, max_new_tokens=4, n_boot=50)
    record = {"rates": ev.rates, "kl": ev.kl, "cross_entropy": ev.cross_entropy}
    fr = edit_frontier(
        lm,
        r,
        target,
        harmful,
        harmless,
        harmful,
        harmless,
        ev.generations["harmless"]["baseline"],
        record,
        (1.0, 1.5),
        0.05,
        4,
        8,
        50,
        0,
    )
    assert [p["label"] for p in fr["points"]] == ["mean form", "zero form, λ = 1", "zero form, λ = 1.5"]
    assert fr["points"][0]["held_out"]["reused"] == "mean_ablation"
    p15 = fr["points"][2]
    assert "reused" not in p15["held_out"]
    answers = generate(lm, harmful, 4, [DirectionAblation(r, strength=1.5)])
    assert p15["held_out"]["rates"]["n_refusal"] == sum(map(is_refusal, answers))
    kl = kl_divergence(
        next_token_logits(lm, harmless), next_token_logits(lm, harmless, [DirectionAblation(r, strength=1.5)])
    )
    assert p15["held_out"]["kl"]["mean"] == pytest.approx(float(kl.mean()), rel=1e-5)
    assert p15["validation"]["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)  # same prompts here
    assert p15["held_out"]["kl"]["mean"] > fr["points"][1]["held_out"]["kl"]["mean"]  # overshoot costs more
    assert 0 <= fr["chosen"] < 3 and "validation" in fr["rule"]
