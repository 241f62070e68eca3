"""Step 4b: the weight edit's refusal-vs-damage frontier, and the edit it chooses to export.

One point of a direction's edit is rarely the whole story: the paper's zero form (lambda = 1) can
leave refusal that the mean form removes, and overshooting (``W <- W - lambda r r^T W``, lambda > 1)
trades more removal for more damage. This step measures each point of a sweep — the exact mean
form and the zero form at every lambda of ``ExperimentConfig.edit_strengths`` — twice:

- on the **validation** split (harmful refusal under the substring judge, first-token KL on
  harmless), where the point to export is chosen by :func:`choose_edit`'s stated rule;
- on the **held-out** split (refusal under all three judges with 95 % bootstrap intervals,
  first-token KL and cross-entropy of the baseline's own harmless answers, with intervals),
  which is what the report plots.

Each point runs as hooks (``WeightEdit.hooks``), which equal the weight edit under greedy decoding
(tests, and the orthogonalisation step checks the chosen point on the real weights). Points that
evaluation already measured with the same intervention (the mean form; lambda = 1) reuse its
held-out numbers instead of generating again.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from neuroscope.analysis.metrics import bootstrap_ci, kl_divergence
from neuroscope.method import artifacts as art
from neuroscope.method.evaluation import rates
from neuroscope.model.forward import next_token_logits
from neuroscope.model.generate import generate
from neuroscope.model.orthogonalize import WeightEdit, WeightEditError, check_exportable, completion_loss
from neuroscope.types import Progress


RULE = (
    "among the exportable points whose validation refusal (substring judge) is within {tol:.0%} (absolute) of "
    "the lowest on the sweep, the one with the smallest validation first-token KL on harmless prompts"
)

# Evaluation's condition names for the sweep points it already measured on the held-out split.
_EVALUATED = {("mean", 1.0): "mean_ablation", ("zero", 1.0): "ablation"}


def sweep(strengths: Sequence[float]) -> list[WeightEdit]:
    """The sweep: the exact mean form, then the zero form at every lambda (sorted, deduplicated)."""
    return [WeightEdit("mean")] + [WeightEdit("zero", float(s)) for s in sorted(set(strengths))]


def choose_edit(
    val_refusal: Sequence[float], val_kl: Sequence[float], exportable: Sequence[bool], tolerance: float
) -> int:
    """Index of the chosen point (the rule is ``RULE``); pure.

    Args:
        val_refusal: [P] validation refusal rates.
        val_kl: [P] mean validation first-token KL.
        exportable: [P] whether the model's weights can store the point.
        tolerance: Absolute slack on the refusal rate.

    Raises:
        ValueError: No point is exportable.
    """
    idx = [i for i, ok in enumerate(exportable) if ok]
    if not idx:
        raise ValueError("no point of the sweep can be written into this model's weights")
    best = min(val_refusal[i] for i in idx)
    near = [i for i in idx if val_refusal[i] <= best + tolerance + 1e-12]
    return min(near, key=lambda i: (val_kl[i], val_refusal[i], i))


def _exportable(lm: Any, edit: WeightEdit) -> bool:
    try:
        check_exportable(lm, edit)
    except WeightEditError:
        return False
    return True


def _point(lm: Any, edit: WeightEdit, val_rates: dict[str, Any], val_kl: Tensor, held: dict[str, Any]) -> dict:
    """One sweep point's record: the edit, its validation numbers (the choice) and its held-out ones (the report)."""
    return {
        "form": edit.form,
        "strength": float(edit.strength),
        "label": edit.label,
        "exportable": _exportable(lm, edit),
        "validation": {
            "refusal": val_rates["refusal"].mean,
            "refusal_broad": val_rates["refusal_broad"].mean,
            "n": val_rates["n"],
            "kl": float(val_kl.mean()),
        },
        "held_out": held,
    }


class _HeldOut:
    """A sweep point's held-out numbers (refusal, first-token KL, cross-entropy of the baseline's own answers),
    for points the evaluation step did not already measure; the unedited logits are computed once, if needed."""

    def __init__(self, lm, harmful, harmless, baseline_answers, max_new_tokens, batch_size, n_boot, seed) -> None:
        self.lm, self.harmful, self.harmless = lm, list(harmful), list(harmless)
        self.max_new_tokens, self.batch_size, self.n_boot, self.seed = max_new_tokens, batch_size, n_boot, seed
        keep = [i for i, a in enumerate(baseline_answers) if a]
        self.ce_prompts = [harmless[i] for i in keep]
        self.ce_answers = [baseline_answers[i] for i in keep]
        self.base: Tensor | None = None

    def measure(self, ivs: list) -> dict[str, Any]:
        lm, bs = self.lm, self.batch_size
        if self.base is None:
            self.base = next_token_logits(lm, self.harmless, (), bs)
        kl = kl_divergence(self.base, next_token_logits(lm, self.harmless, ivs, bs))
        ce = completion_loss(lm, self.ce_prompts, self.ce_answers, ivs, bs) if self.ce_prompts else torch.empty(0)
        return {
            "rates": rates(generate(lm, self.harmful, self.max_new_tokens, ivs, bs), self.n_boot, self.seed),
            "kl": bootstrap_ci(kl, n_boot=self.n_boot, seed=self.seed),
            "cross_entropy": bootstrap_ci(ce, n_boot=self.n_boot, seed=self.seed),
        }


def edit_frontier(
    lm: Any,
    direction: Tensor,
    mean_target: Tensor,
    val_harmful: Sequence[str],
    val_harmless: Sequence[str],
    test_harmful: Sequence[str],
    test_harmless: Sequence[str],
    baseline_answers: Sequence[str],
    evaluation: dict[str, Any],
    strengths: Sequence[float],
    tolerance: float,
    max_new_tokens: int,
    batch_size: int,
    n_boot: int,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measures every point of the sweep and chooses the edit to export.

    Args:
        lm: A ``LoadedModel``.
        direction: [d_model] refusal direction.
        mean_target: [n_layers] harmless mean projections (the mean form's target).
        val_harmful, val_harmless: Validation instructions (choice).
        test_harmful, test_harmless: Held-out instructions (report).
        baseline_answers: The unedited model's answers to ``test_harmless`` (cross-entropy).
        evaluation: The evaluation step's record (its held-out numbers are reused).
        strengths: lambda values of the zero form.
        tolerance: Refusal slack of the choice rule.

    Returns:
        Plain JSON values ``{"points": [...], "chosen": index, "rule": text}``; each point has form,
        strength, label, exportable, ``validation`` {refusal, kl} and ``held_out`` {rates, kl,
        cross_entropy}.
    """
    edits = sweep(strengths)
    target = mean_target.float()
    report = progress or (lambda f, m: None)
    base_val = next_token_logits(lm, list(val_harmless), (), batch_size)
    held_out = _HeldOut(lm, test_harmful, test_harmless, baseline_answers, max_new_tokens, batch_size, n_boot, seed)
    points: list[dict[str, Any]] = []
    for i, edit in enumerate(edits):
        report(i / len(edits), f"edit frontier: {edit.label}")
        ivs = [edit.hooks(direction, target)]
        val_rates = rates(generate(lm, list(val_harmful), max_new_tokens, ivs, batch_size), n_boot, seed)
        val_kl = kl_divergence(base_val, next_token_logits(lm, list(val_harmless), ivs, batch_size))
        cond = _EVALUATED.get((edit.form, float(edit.strength)))
        if cond is not None and cond in evaluation["rates"]["harmful"] and cond in evaluation["kl"]:
            held = {
                "rates": evaluation["rates"]["harmful"][cond],
                "kl": evaluation["kl"][cond],
                "cross_entropy": evaluation["cross_entropy"].get(cond),
                "reused": cond,
            }
        else:
            held = held_out.measure(ivs)
        points.append(_point(lm, edit, val_rates, val_kl, held))
    chosen = choose_edit(
        [p["validation"]["refusal"] for p in points],
        [p["validation"]["kl"] for p in points],
        [p["exportable"] for p in points],
        tolerance,
    )
    report(1.0, f"edit frontier: chose {points[chosen]['label']}")
    record = {
        "points": points,
        "chosen": chosen,
        "rule": RULE.format(tol=tolerance),
        "tolerance": tolerance,
        "baseline_cross_entropy": evaluation["cross_entropy"].get("baseline"),
    }
    return art.read_json_text(art.to_json(record))  # plain JSON values throughout, as when resumed


def chosen_edit(frontier: dict[str, Any]) -> WeightEdit:
    """The ``WeightEdit`` a frontier record chose."""
    p = frontier["points"][frontier["chosen"]]
    return WeightEdit(p["form"], p["strength"])
