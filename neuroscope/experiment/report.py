"""Step 8: report.md, a self-contained report.html with the plotly figures, and metrics.json."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from neuroscope.analysis.heads import head_label
from neuroscope.method import artifacts as art
from neuroscope.method.heads import measure_maps
from neuroscope.viz import (
    attack_success,
    candidate_scores,
    cone_curve,
    cosine_by_layer,
    cosine_matrix,
    edit_frontier,
    figures_to_html,
    head_maps,
    prompt_map,
    rates_with_intervals,
    search_history,
    separation_plot,
    topk_ablation_curve,
)

LABELS = {
    "baseline": "baseline",
    "ablation": "direction ablated (projection → 0)",
    "mean_ablation": "direction mean-ablated (projection → harmless mean)",
    "random_ablation": "random direction ablated (control)",
    "addition": "direction added",
    "random_addition": "random direction added (control)",
}


def _iv(d: dict[str, Any]) -> tuple[float, float, float]:
    mean = d.get("mean")
    if mean is None:
        return math.nan, math.nan, math.nan
    lo, hi = d.get("lo", mean), d.get("hi", mean)
    return mean, min(lo, mean), max(hi, mean)


def fmt_rate(d: dict[str, Any]) -> str:
    mean, lo, hi = _iv(d)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.1%} [{lo:.1%}, {hi:.1%}]"


def fmt_num(d: dict[str, Any], digits: int = 3) -> str:
    mean, lo, hi = _iv(d)
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


# --------------------------------------------------------------------------- figures


def _rates_figure(block: dict[str, Any], conditions: list[str], title: str) -> go.Figure | None:
    conds = [c for c in conditions if c in block and block[c]["n"]]
    if not conds:
        return None
    groups = ["refusal (substring)", "clean refusal"]
    keys = ["refusal", "clean_refusal"]
    vals = np.array([[_iv(block[c][k]) for c in conds] for k in keys])  # [G, C, 3]
    return rates_with_intervals(
        groups, [LABELS.get(c, c) for c in conds], vals[..., 0], vals[..., 1], vals[..., 2], title
    )


def _grouped_rates(per_group: dict[str, dict[str, Any]], conditions: list[str], title: str) -> go.Figure | None:
    groups = [g for g, b in per_group.items() if all(c in b and b[c]["n"] for c in conditions)]
    if not groups:
        return None
    vals = np.array([[_iv(per_group[g][c]["refusal"]) for c in conditions] for g in groups])
    return rates_with_intervals(
        groups, [LABELS.get(c, c) for c in conditions], vals[..., 0], vals[..., 1], vals[..., 2], title
    )


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


def frontier_figure(frontier: dict[str, Any], baseline_refusal: float | None) -> go.Figure | None:
    """Held-out refusal against first-token KL and cross-entropy for every edit of the sweep."""
    points = frontier["points"]
    if not points:
        return None
    refusal = np.array([_iv(p["held_out"]["rates"]["refusal"]) for p in points])
    damage = {"first-token KL on harmless (nats)": np.array([_iv(p["held_out"]["kl"]) for p in points])}
    ce = np.array([_iv(p["held_out"].get("cross_entropy") or {}) for p in points])
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
    sel, ev, heads, gen = result.selection, result.evaluation, result.heads, result.generalisation
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
    figs += beyond_figures(result.beyond)
    return [f for f in figs if f is not None]


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


def _beyond_markdown(beyond: dict[str, Any] | None) -> list[str]:
    if not beyond:
        return []
    h, c = beyond["harmfulness"], beyond["cone"]
    md = [
        "## 8. Beyond one direction",
        "",
        f"**Harmfulness vs refusal** (Zhao et al. 2025), layer {h['layer']}: harmfulness read at "
        f"{h['positions']['harmfulness']}, refusal at {h['positions']['refusal']}. Coordinates: 0 = the harmless "
        "training mean, 1 = the harmful one.",
        "",
    ]
    md += _table(
        ["group", "harmfulness", "refusal", "refused", "apart"],
        [
            [
                name,
                fmt_rate(g["harmfulness"]),
                fmt_rate(g["refusal"]),
                fmt_rate(g["refused"]),
                "yes" if g["apart"] else "no",
            ]
            for name, g in h["groups"].items()
        ],
    )
    md += [*h["summary"].splitlines(), ""]
    md += [
        f"**The refusal cone** (Wollschläger et al. 2025), layer {c['layer']}, position {c['position']}: refused share "
        "of held-out harmful prompts with k dimensions ablated (harmless first-token KL in brackets after the rate).",
        "",
    ]
    ks = [p["k"] for p in c["curves"]["pca"]]
    md += _table(
        ["subspaces", *[f"k = {k}" for k in ks]],
        [
            [c["families"][name], *[f"{fmt_rate(p['refused'])} (KL {p['kl']['mean']:.2f})" for p in pts]]
            for name, pts in c["curves"].items()
        ],
    )
    md += [*c["summary"].splitlines(), ""]
    jail = beyond.get("jailbreaks")
    if jail:
        md += [
            "**Jailbreaks, dissected**: held-out harmful requests in the project's templates (data/jailbreaks/); "
            "success = the answer is not a refusal; refusal and harmfulness coordinates as above.",
            "",
        ]
        md += _table(
            ["family", "success", "success (broad judge)", "refusal", "harmfulness"],
            [
                [
                    name.replace("_", " "),
                    fmt_rate(f["success"]),
                    fmt_rate(f["success_broad"]),
                    fmt_num(f["refusal"], 2),
                    fmt_num(f["harmfulness"], 2),
                ]
                for name, f in jail["families"].items()
            ],
        )
        md += [*jail["summary"].splitlines(), ""]
    gcg = beyond.get("gcg")
    if gcg:
        s = gcg["settings"]
        md += [
            f"**Suffix search** (GCG, bounded: {s['suffix_tokens']} tokens, {s['steps']} steps or {s['time_budget_s']:g} s "
            "per request, objective the first-token refusal log-odds; broken = a refusal by neither judge).",
            "",
            gcg["summary"],
            "",
        ]
        md += _table(
            ["request", "suffix", "broken", "log-odds before → after", "steps"],
            [
                [
                    r["request"],
                    r["suffix"],
                    "yes" if r["broken"] else "no",
                    f"{r['score_before']:+.2f} → {r['score_after']:+.2f}",
                    r["steps"],
                ]
                for r in gcg["suffixes"]
            ],
        )
    return md


# --------------------------------------------------------------------------- markdown


def table_cell(value: object) -> str:
    """A Markdown table cell: ``|`` escaped (tokens such as ``<|eot_id|>`` would split the row), one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(table_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def markdown(result) -> str:
    cfg, sel, ev, heads, gen = result.config, result.selection, result.evaluation, result.heads, result.generalisation
    lengths = result.lengths
    md = [
        f"# Refusal-direction experiment: {result.model_name}",
        "",
        "Method: Arditi et al. (NeurIPS 2024), with mean ablation, controls, held-out sets, over-refusal and "
        "95 % bootstrap intervals on every rate.",
        "",
        "## 1. Data",
        "",
        f"{result.data.description}.",
        "",
    ]
    md += _table(
        ["set", "prompts", "mean tokens"],
        [
            [k, v, f"{lengths['per_set'].get(k, {}).get('mean', float('nan')):.1f}"]
            for k, v in result.data.sizes().items()
            if v
        ],
    )
    md += [
        f"Token-length difference of the training sides (harmful − harmless): {lengths['train_mean_diff']:+.2f} tokens."
    ]
    if "pairs" in lengths:
        o = lengths["pairs"]["overall"]
        md += [f"Matched pairs: mean |Δ| {o['mean_abs_diff']:.2f} tokens, {o['frac_within_2']:.0%} within 2 tokens."]
    md += [
        "",
        "## 2-3. Direction and selection",
        "",
        f"Candidates: difference of means at every layer input × {result.candidates.n_positions} post-instruction "
        f"positions ({result.candidates.n_layers * result.candidates.n_positions} candidates). Scored on the "
        f"validation sets with the logit refusal score (refusal first tokens {result.refusal_tokens}); layers ≥ "
        f"{sel['layer_cut']} discarded, KL threshold {cfg.kl_threshold}.",
        "",
        f"**Chosen: layer {sel['layer']}, position {sel['position_label']}** — bypass {sel['bypass']:.3f} "
        f"(baseline {sel['baseline_harmful_score']:.3f}), induce {sel['induce']:.3f} (baseline "
        f"{sel['baseline_harmless_score']:.3f}), KL {sel['kl']:.4f}. {sel['reason']}.",
        "",
        "Top candidates by bypass score (full table in selection.json):",
        "",
    ]
    kept = sorted([r for r in sel["table"] if r["bypass"] is not None], key=lambda r: r["bypass"])[:8]
    md += _table(
        ["layer", "position", "bypass", "induce", "KL", "kept"],
        [
            [
                r["layer"],
                r["label"],
                f"{r['bypass']:.3f}",
                f"{r['induce']:.3f}",
                f"{r['kl']:.4f}",
                "chosen" if r["chosen"] else ("yes" if r["kept"] else "no"),
            ]
            for r in kept
        ],
    )
    md += _contrast_warning(ev)
    md += [
        "## 4-5. Interventions on held-out prompts",
        "",
        f"Greedy generation, {cfg.max_new_tokens} new tokens. Refusal = substring match; clean = a refusal that "
        "starts early and is not degenerate text. Addition at layer "
        f"{ev['layer']} with strength {ev['strength']}. Controls use a random direction of the same norm.",
        "",
        "**Necessity** (harmful prompts):",
        "",
    ]
    header = [
        "condition",
        "refusal",
        "clean refusal",
        "broken refusals",
        "second judge (broad, empty = refusal)",
        "logit score",
        "n",
    ]
    for name in ("harmful", "harmless"):
        if name == "harmless":
            md += ["**Sufficiency** (harmless prompts):", ""]
        rows = [
            [
                LABELS.get(cond, cond),
                fmt_rate(block["refusal"]),
                fmt_rate(block["clean_refusal"]),
                block["n_broken"],
                fmt_rate(block.get("refusal_broad", {})),
                f"{ev['logit_scores'][name][cond]:.2f}",
                block["n"],
            ]
            for cond, block in ev["rates"][name].items()
        ]
        md += _table(header, rows)
    md += [
        "**Collateral damage** on harmless prompts (first-token KL from baseline; cross-entropy of the baseline's "
        "own answers, nats/token):",
        "",
    ]
    md += _table(
        ["condition", "KL", "cross-entropy"],
        [
            [
                LABELS.get(c, c),
                fmt_num(ev["kl"][c], 4) if c in ev["kl"] else "0",
                fmt_num(ev["cross_entropy"][c]) if c in ev["cross_entropy"] else "n/a",
            ]
            for c in ["baseline", *ev["kl"]]
        ],
    )
    md += _frontier_markdown(result)
    md += [
        "## 6. Attention heads",
        "",
        f"Which heads carry refusal, and is their role causal? Δ over {heads['n_prompts'][0]}+{heads['n_prompts'][1]} "
        f"prompts ({heads['delta_rule']}); activation patching on {heads['n_patch_prompts']} harmful prompts, each "
        "patched with its paired harmless prompt's head output at the post-instruction positions (refusal log-odds; "
        "negative = the head carries refusal; 95 % bootstrap intervals over prompts); attribution patching "
        "(gradient × activation difference, one backward pass) as its fast estimate; DFA = each head's direct write "
        "along the direction on harmful prompts.",
        "",
    ]
    if heads.get("agreement_spearman") is not None:
        md += [
            f"Attribution vs activation patching: Spearman rank correlation **{heads['agreement_spearman']:.2f}** over "
            f"the {sum(v is not None for row in heads['patching'] for v in row)} patched heads.",
            "",
        ]
    patch, lo, hi = (
        np.array([[np.nan if v is None else v for v in row] for row in heads[k]], dtype=float)
        for k in ("patching", "patching_lo", "patching_hi")
    )
    attr, proj, norm, dfa, p = (
        np.array(heads[k]) for k in ("attribution", "delta_projection", "delta_norm", "dfa", "p_values")
    )
    md += ["Top heads by the causal measure (activation patching):", ""]
    md += _table(
        [
            "head",
            "patching Δ log-odds [95 % CI]",
            "attribution est.",
            "Δ along direction",
            "Δ norm",
            "DFA",
            "permutation p",
        ],
        [
            [
                head_label(l, h),
                f"{patch[l, h]:+.3f} [{lo[l, h]:+.3f}, {hi[l, h]:+.3f}]",
                f"{attr[l, h]:+.3f}",
                f"{proj[l, h]:+.3f}",
                f"{norm[l, h]:+.3f}",
                f"{dfa[l, h]:+.3f}",
                f"{p[l, h]:.3f}",
            ]
            for l, h in heads["ranking"][:8]
        ],
    )
    md += [
        "Top heads by Δ along the direction: "
        + ", ".join(f"{head_label(l, h)} ({proj[l, h]:+.3f})" for l, h in heads["ranking_delta"][:8]),
        "",
        f"Set ablation on the held-out (validation) harmful prompts, mean ablation ({heads['ablation_means']}), "
        f"never zero; {len(heads['random_scores'][0])} random head sets per k. Refusal score: baseline "
        f"{heads['baseline_score']:.3f}, direction ablated {heads['direction_score']:.3f}.",
        "",
    ]
    md += _table(
        ["k", "top-k by patching [95 % CI]", "top-k by Δ", "random k (mean)", "random k (min – max)"],
        [
            [k, f"{t:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]", f"{td:.3f}", f"{np.mean(r):.3f}", f"{min(r):.3f} – {max(r):.3f}"]
            for k, t, iv, td, r in zip(
                heads["ks"],
                heads["top_scores"],
                heads["top_intervals"],
                heads["top_scores_delta"],
                heads["random_scores"],
            )
        ],
    )
    md += [
        f"Rankings: top-k by patching = {heads['ranking_rule']}; top-k by Δ = {heads['delta_rule']}.",
        "",
        f"**Verdict:** {heads['verdict']}",
        "",
        "## 7. Generalisation",
        "",
        "Per category (held-out harmful):",
        "",
    ]
    md += _table(
        ["category", "baseline", "ablated", "n"],
        [
            [c, fmt_rate(b["baseline"]["refusal"]), fmt_rate(b["ablation"]["refusal"]), b["baseline"]["n"]]
            for c, b in gen["per_category"].items()
        ],
    )
    labels, cos = gen["cosine_labels"], np.array(gen["cosine"])
    if len(labels) >= 2:
        off = cos[:-1, :-1][~np.eye(len(labels) - 1, dtype=bool)] if len(labels) > 2 else np.array([])
        off = off[np.isfinite(off)]
        pairwise = f"{off.mean():.2f}" if off.size else "n/a (fewer than two categories)"
        md += [
            f"Category-specific directions (at the chosen layer and position): mean pairwise cosine "
            f"{pairwise}; cosine with the chosen direction "
            f"{', '.join(f'{l} {c:.2f}' for l, c in zip(labels[:-1], cos[-1, :-1]))}.",
            "",
        ]
    if gen["xstest"]:
        md += ["XSTest (safe prompts: refusal = over-refusal):", ""]
        md += _table(
            ["set", "baseline", "ablated", "n"],
            [
                [s, fmt_rate(b["baseline"]["refusal"]), fmt_rate(b["ablation"]["refusal"]), b["baseline"]["n"]]
                for s, b in gen["xstest"].items()
            ],
        )
    else:
        md += [
            "XSTest: not available (no data folder); over-refusal is read from the held-out harmless rows above.",
            "",
        ]
    md += _beyond_markdown(result.beyond)
    md += ["## Run", ""]
    md += _table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in result.seconds.items()])
    md += ["Samples (harmful, baseline → ablated):", ""]
    for prompt, a, b in list(
        zip(
            result.data.test_harmful, ev["generations"]["harmful"]["baseline"], ev["generations"]["harmful"]["ablation"]
        )
    )[:3]:
        md += [f"- *{prompt.instruction}*", f"  - baseline: {a!r}", f"  - ablated: {b!r}"]
    md += ["", "Samples (harmless, baseline → added):", ""]
    for prompt, a, b in list(
        zip(
            result.data.test_harmless,
            ev["generations"]["harmless"]["baseline"],
            ev["generations"]["harmless"]["addition"],
        )
    )[:3]:
        md += [f"- *{prompt.instruction}*", f"  - baseline: {a!r}", f"  - added: {b!r}"]
    return "\n".join(md) + "\n"


def _frontier_markdown(result) -> list[str]:
    """The weight-edit sweep, the chosen edit, and that edit measured in the weights themselves."""
    fr, ortho, ev = result.frontier, result.orthogonalization, result.evaluation
    md = [
        "**Weight edit: refusal vs damage.** Each point bakes the direction's ablation into the weights "
        "(embedding, o_proj, down_proj; embeddings untied): the zero form W ← W − λ r̂r̂ᵀW at each strength λ "
        "(λ = 1 is the paper's orthogonalisation; λ > 1 overshoots past zero) and the mean form written exactly "
        "(projection → harmless mean, via a down_proj bias). Validation numbers choose; held-out numbers report.",
        "",
    ]
    rows = []
    for r in frontier_rows(fr):
        rows.append(
            [
                "**" + r["label"] + " ★**" if r["chosen"] else r["label"],
                f"{r['validation_refusal']:.1%}",
                f"{r['validation_kl']:.4f}",
                fmt_rate(r["refusal"]),
                fmt_rate(r["refusal_broad"] or {}),
                fmt_num(r["kl"], 4),
                fmt_num(r["cross_entropy"] or {}),
                "yes" if r["exportable"] else "no",
            ]
        )
    md += _table(
        [
            "edit",
            "val. refusal",
            "val. KL",
            "held-out refusal",
            "second judge",
            "held-out KL",
            "cross-entropy",
            "exportable",
        ],
        rows,
    )
    md += [f"Chosen (★) by a rule fixed in advance: {fr['rule']}.", ""]
    held, edit = ortho["held_out"], ortho["edit"]
    mean_hooks = ev["rates"]["harmful"].get("mean_ablation", {}).get("refusal")
    line = (
        f"**The chosen edit in the weights** ({edit['label']}): {ortho['identical']}/{ortho['n']} greedy generations "
        f"identical to its hooks, max first-token logit difference {ortho['max_logit_diff']:.2e}. The edited "
        f"weights alone, no hooks, on the held-out prompts: refusal {fmt_rate(held['rates']['refusal'])} (second "
        f"judge {fmt_rate(held['rates'].get('refusal_broad', {}))}), first-token KL {fmt_num(held['kl'], 4)}"
    )
    if mean_hooks and "mean_ablation" in ev["kl"]:
        kl_ratio = (
            held["kl"]["mean"] / ev["kl"]["mean_ablation"]["mean"] if ev["kl"]["mean_ablation"]["mean"] else math.nan
        )
        inside = mean_hooks["lo"] <= held["rates"]["refusal"]["mean"] <= mean_hooks["hi"]
        line += (
            f"; the mean-form hooks: refusal {fmt_rate(mean_hooks)}, KL {fmt_num(ev['kl']['mean_ablation'], 4)} — "
            f"the export's refusal is {'within' if inside else 'outside'} their interval at {kl_ratio:.2f}× their KL"
        )
    line += "." + (f" Exported to `{ortho['exported_to']}`." if ortho.get("exported_to") else "")
    return md + [line, ""]


def _contrast_warning(ev: dict[str, Any]) -> list[str]:
    """A loud line when the baseline itself shows no contrast: the direction then means little."""
    h = ev["rates"]["harmful"]["baseline"]["refusal"]["mean"]
    b = ev["rates"]["harmless"]["baseline"]["refusal"]["mean"]
    if h is None or b is None or h - b >= 0.5:
        return []
    return [
        f"**Warning: weak contrast.** Without intervention the model refuses {h:.0%} of the held-out harmful and "
        f"{b:.0%} of the held-out harmless prompts, so these sets do not separate refusal from compliance for "
        "this model and the direction below can hardly mean 'refusal'. Use prompt sets on which the model's "
        "behaviour differs (e.g. --data-dir with the research sets).",
        "",
    ]


def _md_to_html(md: str) -> str:
    """The report's Markdown as HTML (markdown-it-py, which gradio brings: CommonMark plus tables; raw HTML
    in the text is escaped, not rendered)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}"
    "th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}"
)


def html_report(result) -> str:
    body = _md_to_html(markdown(result))
    figs = "\n".join(f"<div class='fig'>{frag}</div>" for frag in figures_to_html(figures(result)))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>NeuroScope experiment: "
        f"{html.escape(result.model_name)}</title><style>{_STYLE}</style></head><body>{body}"
        f"<h2>Figures</h2>{figs}</body></html>"
    )


def write_report(result, out_dir: str | Path) -> None:
    """Writes report.md, report.html (self-contained: plotly.js inlined) and metrics.json, atomically."""
    out = Path(out_dir)
    art.write_json(out / "metrics.json", metrics(result))
    art.write_text(out / "report.md", markdown(result))
    art.write_text(out / "report.html", html_report(result))
