"""Selection on hand-made scores: the paper's rule, and the stated KL relaxation."""

from __future__ import annotations

import math

import torch

from neuroscope.analysis.directions import CandidateScores
from neuroscope.method.selection import ScoredCandidates, candidate_table, select

NAN = math.nan


def _scored(bypass, induce, kl):
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    return ScoredCandidates(CandidateScores(t(bypass), t(induce), t(kl)), 2.0, -5.0, layer_cut=2)


def test_paper_rule():
    s = _scored([[1.0, -1.0], [0.5, NAN]], [[1.0, 2.0], [1.0, NAN]], [[0.01, 0.05], [0.02, NAN]])
    sel = select(s, n_layers=3)
    assert (sel.layer, sel.pos_index, sel.fallback) == (0, 1, False)
    rows = candidate_table(s, sel, ["a", "b"])
    assert sum(r["chosen"] for r in rows) == 1 and len(rows) == 4


def test_kl_relaxed_before_induce_is_dropped():
    # Only candidate (0, 1) induces refusal, but its KL is 0.15 > 0.1; (1, 0) passes KL but cannot induce.
    s = _scored([[1.0, -1.0], [0.5, NAN]], [[-1.0, 2.0], [-3.0, NAN]], [[0.01, 0.15], [0.02, NAN]])
    sel = select(s, n_layers=3, kl_threshold=0.1)
    assert (sel.layer, sel.pos_index) == (0, 1)
    assert sel.fallback and "relaxed from 0.1 to 0.2" in sel.reason


def test_falls_back_when_nothing_induces():
    s = _scored([[1.0, -1.0], [0.5, NAN]], [[-1.0, -2.0], [-3.0, NAN]], [[0.01, 0.05], [0.02, NAN]])
    sel = select(s, n_layers=3)
    assert sel.fallback and (sel.layer, sel.pos_index) == (0, 1)


def test_nothing_bypasses_the_app_takes_the_least_bad_and_says_so_in_the_behaviours_words():
    """Every bypass score at or above the baseline (2.0): the experiment refuses; the app takes the
    lowest one and says, naming the behaviour, that it is not a direction of it."""
    import pytest

    s = _scored([[2.5, 2.1], [3.0, NAN]], [[1.0, 2.0], [1.0, NAN]], [[0.01, 0.05], [0.02, NAN]])
    with pytest.raises(ValueError, match="no candidate lowers the refusal score"):
        select(s, n_layers=3)
    sel = select(s, n_layers=3, allow_no_bypass=True)
    assert (sel.layer, sel.pos_index) == (0, 1) and "not a refusal direction" in sel.reason
    french = select(s, n_layers=3, allow_no_bypass=True, behaviour="french")
    assert "NO CANDIDATE LOWERS FRENCH" in french.reason and "refusal" not in french.reason.lower()


def test_generation_check_rejects_candidates_whose_ablation_keeps_refusing(monkeypatch):
    """The logit-chosen candidate (0, 1) still refuses when ablated; the next kept one (1, 0) does not."""
    import neuroscope.model.generate as gen
    from neuroscope.method.direction import Candidates
    from neuroscope.method.selection import verify_by_generation

    s = _scored([[1.0, -1.0], [0.5, NAN]], [[1.0, 2.0], [1.0, NAN]], [[0.01, 0.05], [0.02, NAN]])
    sel = select(s, n_layers=3)
    dirs = torch.zeros(2, 2, 4)
    dirs[0, 1, 0], dirs[1, 0, 1], dirs[0, 0, 2] = 1.0, 1.0, 1.0
    cands = Candidates(dirs, dirs, dirs, ["a", "b"])
    refusing = {0: True, 1: False, 2: True}  # which axis, when ablated, still refuses

    def fake_generate(lm, prompts, max_new_tokens=32, interventions=(), batch_size=16, **kw):
        if not interventions:
            return ["refuse"] * 4 + ["ok"] * 4  # baseline: 50 %
        axis = int(interventions[0].direction.abs().argmax())
        return ["refuse"] * (8 if refusing[axis] else 1) + ["ok"] * (0 if refusing[axis] else 7)

    monkeypatch.setattr(gen, "generate", fake_generate)
    judge = lambda a: a == "refuse"  # noqa: E731
    kept, record = verify_by_generation(None, cands, s, sel, ["p"] * 8, judge, 4)
    assert (kept.layer, kept.pos_index) == (1, 0) and "rejected" in kept.reason
    assert record["baseline_rate"] == 0.5 and record["rejected"] == [{"layer": 0, "position": -1, "ablated_rate": 1.0}]
    refusing[1] = True
    import pytest

    with pytest.raises(ValueError, match="lowers the validation harmful prompts' refusal rate"):
        verify_by_generation(None, cands, s, sel, ["p"] * 8, judge, 4)
