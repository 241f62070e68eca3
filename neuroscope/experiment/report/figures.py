"""The report's figures (plotly), built from the run's records by ``neuroscope.viz``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.experiment.report.numbers import LABELS, interval_of
from neuroscope.method.heads import measure_maps
from neuroscope.viz import (
    attack_success,
    candidate_scores,
    cone_curve,
    cosine_by_layer,
    cosine_matrix,
    edit_frontier,
    head_maps,
    prompt_map,
    rates_with_intervals,
    search_history,
    separation_plot,
    topk_ablation_curve,
)


def _rates_figure(block: dict[str, Any], conditions: list[str], title: str) -> go.Figure | None:
    conds = [c for c in conditions if c in block and block[c]["n"]]
    if not conds:
        return None
    groups = ["refusal (substring)", "clean refusal"]
    keys = ["refusal", "clean_refusal"]
    vals = np.array([[interval_of(block[c][k]) for c in conds] for k in keys])  # [G, C, 3]
    return rates_with_intervals(
        groups, [LABELS.get(c, c) for c in conds], vals[..., 0], vals[..., 1], vals[..., 2], title
    )


def _grouped_rates(per_group: dict[str, dict[str, Any]], conditions: list[str], title: str) -> go.Figure | None:
    groups = [g for g, b in per_group.items() if all(c in b and b[c]["n"] for c in conditions)]
    if not groups:
        return None
    vals = np.array([[interval_of(per_group[g][c]["refusal"]) for c in conditions] for g in groups])
    return rates_with_intervals(
        groups, [LABELS.get(c, c) for c in conditions], vals[..., 0], vals[..., 1], vals[..., 2], title
    )


def frontier_figure(frontier: dict[str, Any], baseline_refusal: float | None) -> go.Figure | None:
    """Held-out refusal against first-token KL and cross-entropy for every edit of the sweep."""
    points = frontier["points"]
    if not points:
        return None
    refusal = np.array([interval_of(p["held_out"]["rates"]["refusal"]) for p in points])
    damage = {"first-token KL on harmless (nats)": np.array([interval_of(p["held_out"]["kl"]) for p in points])}
    ce = np.array([interval_of(p["held_out"].get("cross_entropy") or {}) for p in points])
    if np.isfinite(ce).all():
        damage["cross-entropy of the baseline's harmless answers (nats/token)"] = ce
    if not np.isfinite(refusal).all() or not all(np.isfinite(v).all() for v in damage.values()):
        return None
    labels = ["mean form" if p["form"] == "mean" else f"λ = {p['strength']:g}" for p in points]
    groups = ["mean form (exact)" if p["form"] == "mean" else "zero form, strength λ" for p in points]
    return edit_frontier(
        labels,
        groups,
        refusal[:, 0],
        refusal[:, 1],
        refusal[:, 2],
        {k: (v[:, 0], v[:, 1], v[:, 2]) for k, v in damage.items()},
        int(frontier["chosen"]),
        "Weight edit: held-out refusal vs damage (95% CIs; ★ = chosen on validation)",
        baseline_refusal=baseline_refusal,
    )


def figures(result) -> list[go.Figure]:
    """Every figure of the report, in its order."""
    figs = _direction_figures(result) + _heads_figures(result.heads) + _generalisation_figures(result.generalisation)
    figs += beyond_figures(result.beyond)
    return [f for f in figs if f is not None]


def _direction_figures(result) -> list[go.Figure | None]:
    """The candidates, the separation, necessity, sufficiency and the edit frontier."""
    sel, ev = result.selection, result.evaluation
    table = sel["table"]
    layers = sorted({row["layer"] for row in table})
    positions = sorted({row["position"] for row in table})
    grid = {k: np.full((len(layers), len(positions)), np.nan) for k in ("bypass", "induce", "kl")}
    for row in table:
        for k in grid:
            v = row[k]
            grid[k][layers.index(row["layer"]), positions.index(row["position"])] = np.nan if v is None else v
    figs: list[go.Figure | None] = [
        candidate_scores(
            layers,
            result.candidates.position_labels,
            grid["bypass"],
            grid["induce"],
            grid["kl"],
            chosen=(sel["layer"], sel["pos_index"]),
            max_layer=sel["layer_cut"],
            kl_threshold=result.config.kl_threshold,
        ),
        separation_plot(
            np.array(ev["projections"]["harmful"]),
            np.array(ev["projections"]["harmless"]),
            title="Held-out prompts along the chosen direction (last position, every layer input)",
        ),
        _rates_figure(
            ev["rates"]["harmful"],
            ["baseline", "ablation", "mean_ablation", "random_ablation"],
            "Necessity: refusal of held-out HARMFUL prompts (95% bootstrap CI)",
        ),
        _rates_figure(
            ev["rates"]["harmless"],
            ["baseline", "addition", "random_addition", "ablation"],
            "Sufficiency: refusal of held-out HARMLESS prompts (95% bootstrap CI)",
        ),
        frontier_figure(result.frontier, ev["rates"]["harmful"]["baseline"]["refusal"].get("mean")),
    ]
    return figs


def _heads_figures(heads: dict[str, Any]) -> list[go.Figure | None]:
    """Top-k against random-k, and every head's measures."""
    figs: list[go.Figure | None] = []
    rs = heads["random_scores"]
    figs.append(
        topk_ablation_curve(
            heads["ks"],
            heads["top_scores"],
            [float(np.mean(r)) for r in rs],
            [float(np.percentile(r, 2.5)) for r in rs],
            [float(np.percentile(r, 97.5)) for r in rs],
            "Refusal score of held-out harmful prompts (log-odds)",
            title="Mean-ablating the top-k heads by activation patching vs k random heads",
            baseline=heads["baseline_score"],
        )
    )
    figs.append(
        head_maps(
            measure_maps(heads),
            "Every head, five measures (▢ = top 5 by activation patching)",
            marked=[tuple(x) for x in heads["ranking"][:5]],
        )
    )
    return figs


def _generalisation_figures(gen: dict[str, Any]) -> list[go.Figure | None]:
    """The category directions' cosines, per-category rates and XSTest."""
    figs: list[go.Figure | None] = []
    cos = np.array(gen["cosine"])
    if cos.shape[0] >= 2:
        figs.append(
            cosine_matrix(
                np.clip((cos + cos.T) / 2, -1, 1),
                gen["cosine_labels"],
                "Cosine similarity of category-specific directions (and the chosen one)",
                "Direction",
            )
        )
    figs.append(
        _grouped_rates(
            gen["per_category"],
            ["baseline", "ablation"],
            "Per-category refusal of held-out harmful prompts, before / after ablation",
        )
    )
    if gen["xstest"]:
        figs.append(
            _grouped_rates(
                {f"XSTest {k}": v for k, v in gen["xstest"].items()},
                ["baseline", "ablation"],
                "XSTest: over-refusal (safe) and refusal (unsafe), before / after ablation",
            )
        )
    return figs


def beyond_figures(beyond: dict[str, Any] | None) -> list[go.Figure]:
    """The cosine per layer, the prompt map and the cone curve of the optional 'beyond' step."""
    if not beyond:
        return []
    h, c = beyond["harmfulness"], beyond["cone"]
    nan = lambda xs: [math.nan if x is None else x for x in xs]  # noqa: E731
    groups = [
        {
            "name": name,
            "x": [p["x"] for p in g["points"]],
            "y": [p["y"] for p in g["points"]],
            "refused": [p["refused"] for p in g["points"]],
            "texts": [p["text"] for p in g["points"]],
        }
        for name, g in h["groups"].items()
    ]
    curves = {
        c["families"][name]: tuple([p["refused"][k] for p in pts] for k in ("mean", "lo", "hi"))
        for name, pts in c["curves"].items()
    }
    kl = {c["families"][name]: [p["kl"]["mean"] for p in pts] for name, pts in c["curves"].items()}
    figs = [
        cosine_by_layer(nan(h["cosine"]["per_layer"]), nan(h["cosine"]["lo"]), nan(h["cosine"]["hi"]), h["layer"]),
        prompt_map(groups, h["layer"]),
        cone_curve([p["k"] for p in c["curves"]["pca"]], curves, c["baseline"]["mean"], kl),
    ]
    jail = beyond.get("jailbreaks")  # absent from runs made before the jailbreak families joined the step
    if jail:
        figs.append(attack_success(jail["families"]))
    gcg = beyond.get("gcg")
    if gcg:
        rows = gcg["suffixes"]
        figs.append(search_history(gcg["histories"], [r["request"] for r in rows], [r["broken"] for r in rows]))
    return figs
