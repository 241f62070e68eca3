"""Numbers the README quotes come from the files the project writes, not hand-typed copies."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- demo-model-table:begin -->", "<!-- demo-model-table:end -->"


def demo_model_table(evaluation: dict) -> str:
    """The README's demo-model table, rendered from assets/demo-model/evaluation.json."""
    r = {k: v["rate"] for k, v in evaluation["refusal_rates"].items()}
    kl, bar = evaluation["first_token_kl_harmless"], evaluation["bars"]["harmful_refusal"]
    met = "met" if bar["pass"] else "not met"
    rows = [
        ("JailbreakBench harmful refused", f"{r['harmful']:.2f} (bar ≥ {bar['threshold']:.2f}: {met})"),
        ("held-out harmless refused", f"{r['harmless']:.3f}"),
        (
            "harmful refused, direction ablated (mean form / paper's zero form)",
            f"{r['harmful_ablation_mean']:.2f} / {r['harmful_ablation_zero']:.2f}",
        ),
        ("same, random direction of equal norm (zero form)", f"{r['harmful_random_ablation_zero']:.2f}"),
        ("first-token KL on harmless, ablated (mean / zero)", f"{kl['mean']:.3f} / {kl['zero']:.3f}"),
        (
            "harmless refused cleanly, direction added",
            f"{r['harmless_addition_clean']:.2f} (random direction: {r['harmless_random_addition']:.3f})",
        ),
    ]
    return "\n".join(["| | rate |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def test_demo_model_table_matches_its_evaluation_file():
    evaluation = json.loads((ROOT / "assets" / "demo-model" / "evaluation.json").read_text())
    readme = (ROOT / "README.md").read_text()
    quoted = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = demo_model_table(evaluation)
    assert quoted == expected, f"regenerate the README table between the markers:\n{expected}"


def test_smollm2_refusal_table_matches_its_card_files():
    import sys

    sys.path.insert(0, str(ROOT))
    from lab.refusal_tune.card import readme_table

    folder = ROOT / "assets" / "smollm2-refusal"
    begin, end = "<!-- smollm2-refusal-table:begin -->", "<!-- smollm2-refusal-table:end -->"
    quoted = (ROOT / "README.md").read_text().split(begin, 1)[1].split(end, 1)[0].strip()
    expected = readme_table(folder)
    assert quoted == expected, f"regenerate the README table between the markers:\n{expected}"
