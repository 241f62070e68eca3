"""report.md: the run's text, one function per section."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neuroscope.analysis.heads import head_label
from neuroscope.experiment.report.numbers import LABELS, fmt_num, fmt_rate, frontier_rows


def table_cell(value: object) -> str:
    """A Markdown table cell: ``|`` escaped (tokens such as ``<|eot_id|>`` would split the row), one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(table_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def markdown(result) -> str:
    """report.md: each section in order."""
    md: list[str] = [
        f"# Refusal-direction experiment: {result.model_name}",
        "",
        "Method: Arditi et al. (NeurIPS 2024), with mean ablation, controls, held-out sets, over-refusal and "
        "95 % bootstrap intervals on every rate.",
        "",
    ]
    for section in (
        _data_markdown,
        _selection_markdown,
        _interventions_markdown,
        _frontier_markdown,
        _heads_markdown,
        _generalisation_markdown,
    ):
        md += section(result)
    md += _beyond_markdown(result.beyond)
    md += _run_markdown(result)
    return "\n".join(md) + "\n"


def _data_markdown(result) -> list[str]:
    """## 1: the prompt sets, their sizes and token lengths."""
    lengths = result.lengths
    md = [
        "## 1. Data",
        "",
        f"{result.data.description}.",
        "",
    ]
    md += markdown_table(
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
    ]
    return md


def _selection_markdown(result) -> list[str]:
    """## 2-3: the candidates, their scores and the chosen one."""
    cfg, sel, ev = result.config, result.selection, result.evaluation
    md = [
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
    md += markdown_table(
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
    return md


def _interventions_markdown(result) -> list[str]:
    """## 4-5: necessity, sufficiency and damage on held-out prompts."""
    cfg, ev = result.config, result.evaluation
    md = [
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
        md += markdown_table(header, rows)
    md += [
        "**Collateral damage** on harmless prompts (first-token KL from baseline; cross-entropy of the baseline's "
        "own answers, nats/token):",
        "",
    ]
    md += markdown_table(
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
    return md


def _heads_markdown(result) -> list[str]:
    """## 6: which heads carry refusal, and whether their role is causal."""
    heads = result.heads
    md = [
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
    md += markdown_table(
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
    md += markdown_table(
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
    ]
    return md


def _generalisation_markdown(result) -> list[str]:
    """## 7: per category, the category directions, XSTest over-refusal."""
    gen = result.generalisation
    md = [
        "## 7. Generalisation",
        "",
        "Per category (held-out harmful):",
        "",
    ]
    md += markdown_table(
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
        md += markdown_table(
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
    return md


def _run_markdown(result) -> list[str]:
    """How long each step took, and sample answers."""
    ev = result.evaluation
    md = ["## Run", ""]
    md += markdown_table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in result.seconds.items()])
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
    return md


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
    md += markdown_table(
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


def _beyond_markdown(beyond: dict[str, Any] | None) -> list[str]:
    """## 8 (when the run asked for it): harmfulness vs refusal, the cone, jailbreaks and the suffix search."""
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
    md += markdown_table(
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
    md += markdown_table(
        ["subspaces", *[f"k = {k}" for k in ks]],
        [
            [c["families"][name], *[f"{fmt_rate(p['refused'])} (KL {p['kl']['mean']:.2f})" for p in pts]]
            for name, pts in c["curves"].items()
        ],
    )
    md += [*c["summary"].splitlines(), ""]
    return md + _attacks_markdown(beyond)


def _attacks_markdown(beyond: dict[str, Any]) -> list[str]:
    """The jailbreak families and the suffix search of ## 8."""
    md: list[str] = []
    jail = beyond.get("jailbreaks")
    if jail:
        md += [
            "**Jailbreaks, dissected**: held-out harmful requests in the project's templates (data/jailbreaks/); "
            "success = the answer is not a refusal; refusal and harmfulness coordinates as above.",
            "",
        ]
        md += markdown_table(
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
        md += markdown_table(
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
