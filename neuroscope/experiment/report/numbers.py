"""The report's numbers: metrics.json, the condition labels and how a rate with its interval is written."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


LABELS = {
    "baseline": "baseline",
    "ablation": "direction ablated (projection → 0)",
    "mean_ablation": "direction mean-ablated (projection → harmless mean)",
    "random_ablation": "random direction ablated (control)",
    "addition": "direction added",
    "random_addition": "random direction added (control)",
}


def interval_of(d: dict[str, Any]) -> tuple[float, float, float]:
    mean = d.get("mean")
    if mean is None:
        return math.nan, math.nan, math.nan
    lo, hi = d.get("lo", mean), d.get("hi", mean)
    return mean, min(lo, mean), max(hi, mean)


def fmt_rate(d: dict[str, Any]) -> str:
    mean, lo, hi = interval_of(d)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.1%} [{lo:.1%}, {hi:.1%}]"


def fmt_num(d: dict[str, Any], digits: int = 3) -> str:
    mean, lo, hi = interval_of(d)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def metrics(result) -> dict[str, Any]:
    """Headline numbers (rates as {mean, lo, hi, n}), as written to metrics.json."""
    ev, sel, heads, gen = result.evaluation, result.selection, result.heads, result.generalisation
    rate = lambda block: {k: block[k]["refusal"] | {"clean": block[k]["clean_refusal"]["mean"]} for k in block}  # noqa: E731
    return {
        "model": result.model_name,
        "data": result.data.description,
        "sizes": result.data.sizes(),
        "direction": {
            "layer": sel["layer"],
            "position": sel["position"],
            "position_label": sel["position_label"],
            "bypass": sel["bypass"],
            "induce": sel["induce"],
            "kl": sel["kl"],
            "fallback": sel["fallback"],
            "norm": result.direction_meta.get("norm"),
        },
        "refusal_harmful": rate(ev["rates"]["harmful"]),
        "refusal_harmless": rate(ev["rates"]["harmless"]),
        "logit_refusal_score": ev["logit_scores"],
        "kl_harmless": ev["kl"],
        "cross_entropy_harmless": ev["cross_entropy"],
        "edit_frontier": frontier_rows(result.frontier),
        "edit_rule": result.frontier["rule"],
        "orthogonalization": {
            **{k: result.orthogonalization.get(k) for k in ("edit", "n", "identical", "max_logit_diff")},
            "held_out_refusal": result.orthogonalization["held_out"]["rates"]["refusal"],
            "held_out_refusal_broad": result.orthogonalization["held_out"]["rates"].get("refusal_broad"),
            "held_out_kl": result.orthogonalization["held_out"]["kl"],
        },
        "heads": {
            "ks": heads["ks"],
            "top_scores": heads["top_scores"],
            "top_intervals": heads["top_intervals"],
            "top_scores_delta": heads["top_scores_delta"],
            "random_mean": [float(np.mean(r)) for r in heads["random_scores"]],
            "baseline_score": heads["baseline_score"],
            "direction_score": heads["direction_score"],
            "ranking_rule": heads["ranking_rule"],
            "top_heads": heads["ranking"][:8],
            "top_heads_delta": heads["ranking_delta"][:8],
            "agreement_spearman": heads["agreement_spearman"],
            "verdict": heads["verdict"],
        },
        "per_category": {c: {k: v["refusal"] for k, v in block.items()} for c, block in gen["per_category"].items()},
        "xstest": {s: {k: v["refusal"] for k, v in block.items()} for s, block in gen["xstest"].items()},
        "beyond": _beyond_metrics(result.beyond),
        "seconds": result.seconds,
        "refusal_tokens": result.refusal_tokens,
    }


def _beyond_metrics(beyond: dict[str, Any] | None) -> dict[str, Any] | None:
    """The 'beyond' step's numbers without its per-prompt points."""
    if not beyond:
        return None
    h, c = beyond["harmfulness"], beyond["cone"]
    return {
        "harmfulness": {
            "layer": h["layer"],
            "cosine": h["cosine"],
            "groups": {name: {k: v for k, v in g.items() if k != "points"} for name, g in h["groups"].items()},
            "summary": h["summary"],
        },
        "cone": {k: c[k] for k in ("layer", "position", "baseline", "curves", "one_is_enough", "gain", "summary")},
        "jailbreaks": (
            {k: beyond["jailbreaks"][k] for k in ("plain_refused", "families", "projection", "summary")}
            if beyond.get("jailbreaks")
            else None
        ),
        "gcg": (
            {k: beyond["gcg"][k] for k in ("tried", "broken", "rate", "settings", "summary")}
            if beyond.get("gcg")
            else None
        ),
    }


def frontier_rows(frontier: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per sweep point (held-out numbers as {mean, lo, hi}), chosen one marked."""
    rows = []
    for i, p in enumerate(frontier["points"]):
        held = p["held_out"]
        rows.append(
            {
                "label": p["label"],
                "form": p["form"],
                "strength": p["strength"],
                "exportable": p["exportable"],
                "chosen": i == frontier["chosen"],
                "validation_refusal": p["validation"]["refusal"],
                "validation_kl": p["validation"]["kl"],
                "refusal": held["rates"]["refusal"],
                "clean_refusal": held["rates"]["clean_refusal"],
                "refusal_broad": held["rates"].get("refusal_broad"),
                "kl": held["kl"],
                "cross_entropy": held.get("cross_entropy"),
            }
        )
    return rows
