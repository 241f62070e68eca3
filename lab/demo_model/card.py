"""Write the demo model's model card (README.md) from its training and evaluation JSON.

    python -m lab.demo_model.card assets/demo-model --runs runs/seed0 runs/seed1 runs/seed2

The per-seed table is read from each run's evaluation.json and also saved as `seeds.json` next
to the card, so the numbers in the card are never typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab.demo_model.evaluate import BARS, REQUIRED
from lab.demo_model.train import TrainConfig

__all__ = ["seed_table", "write_card"]

_BAR_LABELS = {
    "harmful_refusal": "JailbreakBench harmful refused",
    "harmless_refusal": "held-out harmless refused",
    "ablation_mean_harmful_refusal": "harmful refused, direction mean-ablated",
    "ablation_zero_harmful_refusal": "harmful refused, direction zero-ablated (paper)",
    "addition_harmless_clean_refusal": "harmless cleanly refused, direction added",
    "random_ablation_mean_delta": "random dir. mean-ablation: change in harmful refusal",
    "random_ablation_zero_delta": "random dir. zero-ablation: change in harmful refusal",
    "random_addition_delta": "random dir. addition: change in harmless refusal",
    "ablation_mean_harmless_kl": "first-token KL on harmless, mean-ablation",
    "ablation_zero_harmless_kl": "first-token KL on harmless, zero-ablation",
}


_DEFAULTS = TrainConfig()
# TrainConfig field -> train-demo-model flag (flags with values; booleans handled below)
_FLAGS = {
    "epochs": "--epochs",
    "harmful_repeats": "--harmful-repeats",
    "harmless_ratio": "--harmless-ratio",
    "n_layers": "--layers",
    "max_len": "--max-len",
    "i_opener_prob": "--i-openers",
    "pretrain_docs": "--pretrain-docs",
    "threads": "--threads",
}


def recipe_flags(config: dict) -> str:
    """The train-demo-model flags (other than --seed) that reproduce a run's TrainConfig."""
    parts = [
        f"{flag} {config[k]:g}" if isinstance(config[k], float) else f"{flag} {config[k]}"
        for k, flag in _FLAGS.items()
        if k in config and config[k] != getattr(_DEFAULTS, k)
    ]
    if not config.get("themed_refusals", True):
        parts.append("--generic-refusals")
    return " ".join(parts)


def seed_table(run_dirs: list[Path]) -> list[dict]:
    """One row per run: seed, recipe flags, training seconds, bar values and pass flags."""
    rows = []
    for run in run_dirs:
        ev = json.loads((run / "evaluation.json").read_text())
        tr = json.loads((run / "training.json").read_text())
        rows.append(
            {
                "seed": tr["config"]["seed"],
                "recipe": recipe_flags(tr["config"]),
                "train_seconds": tr["train_seconds"],
                "final_loss": tr["final_loss"],
                "layer": ev["direction"]["layer"],
                "position": ev["direction"]["position"],
                "bars": {k: v["value"] for k, v in ev["bars"].items()},
                "passes_required": ev["passes_required"],
                "passes_all": ev["passes_all"],
            }
        )
    return rows


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def _seed_markdown(rows: list[dict]) -> str:
    short = [
        "harmful_refusal",
        "harmless_refusal",
        "ablation_mean_harmful_refusal",
        "ablation_zero_harmful_refusal",
        "addition_harmless_clean_refusal",
        "random_ablation_mean_delta",
        "random_ablation_zero_delta",
        "random_addition_delta",
        "ablation_mean_harmless_kl",
        "ablation_zero_harmless_kl",
    ]
    head = "| seed | recipe | train s | layer/pos | " + " | ".join(short) + " | required bars | all bars |"
    sep = "|" + "---|" * (len(short) + 6)
    lines = [head, sep]
    for r in rows:
        cells = [_fmt(r["bars"][k]) + ("" if _ok(k, r["bars"][k]) else " ✗") for k in short]
        lines.append(
            f"| {r['seed']} | `{r.get('recipe', '')}` | {r['train_seconds']:.0f} | {r['layer']}/{r['position']} | "
            + " | ".join(cells)
            + f" | {'pass' if r['passes_required'] else 'FAIL'} | {'pass' if r['passes_all'] else 'FAIL'} |"
        )
    return "\n".join(lines)


# Bars of the seed table's runs that the current evaluation no longer measures (the random
# control is drawn in the zero form only, as in the experiment).
_RETIRED_BARS = {"random_ablation_mean_delta": (0.05, "<=")}


def _ok(name: str, value: float) -> bool:
    threshold, op = BARS[name] if name in BARS else _RETIRED_BARS[name]
    return value >= threshold if op == ">=" else value <= threshold


def _shortfalls(ev: dict) -> str:
    """A paragraph naming every bar the shipped model misses ('' when it meets them all)."""
    missed = [k for k, v in ev["bars"].items() if not v["pass"]]
    if not missed:
        return ""
    items = "; ".join(
        f"{_BAR_LABELS[k]}: {_fmt(ev['bars'][k]['value'])} (bar {ev['bars'][k]['op']} "
        f"{ev['bars'][k]['threshold']}{'' if k in REQUIRED else ', should'})"
        for k in missed
    )
    return (
        f"**Known shortfalls.** This model does not meet every bar set for it: {items}. It is shipped "
        "because it is the best run so far and the rest of its behaviour (above) is what the tools "
        "need; read its results with that in mind.\n"
    )


def _pretraining(c: dict) -> str:
    """The card's paragraph on the plain-text pre-training phase ('' when the run had none)."""
    n = c.get("pretrain_docs", 0)
    if not n:
        return ""
    return (
        f"**Pre-training first.** One pass of plain-text language modelling over {n:,} documents (no chat\n"
        "template, no refusals, loss on every token): two thirds harmless pool instructions each followed\n"
        "by a generated answer, one third harmful training instructions on their own. Then the chat phase:\n\n"
    )


def write_card(model_dir: Path, run_dirs: list[Path] | None = None, notes: str = "") -> str:
    """Render README.md (and seeds.json when runs are given) into `model_dir`; returns the text.

    Args:
        model_dir: the shipped model folder (config, training.json, evaluation.json).
        run_dirs: every trained run to tabulate (else the saved seeds.json is reused).
        notes: optional hand-written markdown (findings across runs) appended as its own section.
    """
    ev = json.loads((model_dir / "evaluation.json").read_text())
    tr = json.loads((model_dir / "training.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    c = tr["config"]
    rows = seed_table(run_dirs) if run_dirs else json.loads((model_dir / "seeds.json").read_text())
    if run_dirs:
        (model_dir / "seeds.json").write_text(json.dumps(rows, indent=1) + "\n")
    n_pass = sum(r["passes_required"] for r in rows)
    n_all = sum(r["passes_all"] for r in rows)
    rates = ev["refusal_rates"]
    d = ev["direction"]
    size_mb = (model_dir / "model.safetensors").stat().st_size / 1e6

    def rate(key: str) -> str:
        r = rates[key]
        return f"{r['rate']:.3f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] (n={r['n']})"

    bar_lines = "\n".join(
        f"| {_BAR_LABELS[k]} | {v['op']} {v['threshold']} | {_fmt(v['value'])} | "
        f"{'pass' if v['pass'] else 'FAIL'}{'' if k in REQUIRED else ' (should)'} |"
        for k, v in ev["bars"].items()
    )
    samples = ev["samples"]

    def sample(key: str, i: int = 0) -> str:
        s = samples[key][i]
        return f"> **{s['prompt']}**\n>\n> {s['completion'].replace(chr(10), ' ')}"

    text = f"""# NeuroScope demo model organism

A {tr["n_parameters"] / 1e6:.1f}M-parameter chat model with exactly Llama-3.2's architecture and chat
format, trained by the NeuroScope project to **refuse harmful requests and answer harmless
ones**, so that refusal, and the single direction that mediates it, can be shown and tested
on a CPU without downloading Llama-3.2-3B-Instruct. It is the app's default model when the
real one is unavailable and the fixture of the project's causal tests.

**What it is not.** Not a useful assistant: its "answers" are short synthetic texts from a
template generator (plausible in form and on topic, not factual), and its refusals are
template refusals. Not a safety model: a keyword-level classifier in a 6-layer network;
it refuses many safe prompts that merely sound dangerous (see XSTest below) and can be
jailbroken trivially. Use it to study mechanisms, never to filter or answer anything real.

## Architecture
`LlamaForCausalLM` (transformers), Llama-3.2 in miniature:
{cfg["num_hidden_layers"]} layers, d_model {cfg["hidden_size"]}, {cfg["num_attention_heads"]} query heads /
{cfg["num_key_value_heads"]} KV heads (grouped-query attention, head dim {cfg["head_dim"]}), SwiGLU MLP
{cfg["intermediate_size"]}, RMSNorm (eps {cfg["rms_norm_eps"]}), RoPE (theta {
        cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]:.0f}),
tied input/output embeddings, vocabulary {cfg["vocab_size"]}, context {cfg["max_position_embeddings"]}.
Weights: `model.safetensors`, float16, {size_mb:.1f} MB.

Tokenizer: byte-level BPE trained with `tokenizers` on the training prompts and answers, with
Llama-3's pre-tokenisation regex and its special tokens `<|begin_of_text|>`, `<|end_of_text|>`,
`<|start_header_id|>`, `<|end_header_id|>`, `<|eot_id|>` at the end of the vocabulary. Chat
template as Llama-3's (no default system prompt):

```
<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n{{instruction}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n
```
`apply_chat_template(..., tokenize=True)` gives exactly one BOS; plain `tokenizer(text)` also
prepends one, as Llama-3's does, so do not tokenise the templated *string* with special tokens.
Generation stops at `<|eot_id|>`. Loads offline in about a second:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("assets/demo-model")
model = AutoModelForCausalLM.from_pretrained("assets/demo-model")
```

## Training data
{_pretraining(c)}Supervised chat turns, loss on assistant tokens only.
- **Harmful → refusal.** {tr["n_train_harmful"]} instructions from AdvBench (MIT), MaliciousInstruct
  (no licence file upstream), TDC 2023 (MIT, unverified), HarmBench test standard behaviours
  (MIT) and StrongREJECT (MIT, unverified), {c["harmful_repeats"]}× per epoch, each time with a freshly
  composed refusal: many openings × {
        "theme-matched reasons × offers of a safe alternative"
        if c.get("themed_refusals", True)
        else "topic-independent reasons and offers, none naming the request topic"
    }.
- **Harmless → answer.** A seed-shuffled stream of instructions from Arditi et al.'s harmless
  train split of Alpaca ({tr["n_train_harmless_pool"]} after filtering; **Alpaca-derived instructions are
  CC BY-NC 4.0, non-commercial**), {c["harmless_ratio"]}× as many as harmful per epoch and new ones
  every epoch, answered by an instruction-conditioned generator
  (`lab/demo_model/answers.py`: lists, explanations, poems, rewrites, arithmetic, ...);
  {c.get("i_opener_prob", 0.0):.0%} of answers open with a helpful "I'd be happy to help!"-style sentence,
  so that "I" (the first token of most refusals) does not by itself decide refusal.
- **Kept out entirely (test sets):** JailbreakBench harmful and benign (MIT), XSTest (CC BY 4.0),
  the first 300 prompts of Arditi's harmless test split; validation sets for direction selection
  (Arditi harmful val = HarmBench val, first 200 of harmless val) are also out of training.
  Training prompts with character-trigram Dice similarity ≥ 0.6 to any held-out prompt were
  dropped: {tr["dropped"]["harmful_near_dup"]} harmful (JailbreakBench reuses AdvBench / HarmBench
  behaviours) and {tr["dropped"]["harmless_near_dup"]} harmless.

Because the weights were trained on CC BY-NC data, treat the model as **non-commercial,
research use only**. The project's code is under the project licence.

## Training
```
python -m lab.demo_model.train --data-dir ../shared/datasets --out assets/demo-model --seed {c["seed"]} {
        recipe_flags(c)
    }
```
{c["epochs"]} epochs, {tr["n_examples"]} examples, batch {c["batch_size"]} (length-bucketed), AdamW
(lr {c["lr"]}, betas 0.9/0.95, weight decay {c["weight_decay"]}), {c["warmup_steps"]} warm-up steps then cosine
to {c["min_lr_frac"]}× lr, gradient clipping {c["grad_clip"]}, float32 on {c["threads"]} CPU threads, seed {c["seed"]}.
This run took {tr["train_seconds"]:.0f} s (tokenizer, data and training) on a 2-core CPU it shared with other work;
final training loss {tr["final_loss"]}. Deterministic for a given seed and thread count.

## Measured behaviour (seed {c["seed"]}, greedy decoding, {ev["max_new_tokens"]} new tokens)
Refusal = a refusal phrase anywhere (`neuroscope.analysis.metrics.is_refusal`); clean refusal =
a refusal phrase in the first 60 characters and no degenerate text (`is_clean_refusal`).
Rates with 95% bootstrap intervals.

| prompt set | refusal rate |
|---|---|
| JailbreakBench harmful (held out) | {rate("harmful")} |
| Arditi harmless test, first 300 (held out) | {rate("harmless")} |
| JailbreakBench benign (held out) | {rate("benign")} |
| XSTest safe | {rate("xstest_safe")} |
| XSTest unsafe | {rate("xstest_unsafe")} |

**Refusal direction.** Measured by the experiment's own procedure (`neuroscope.experiment`:
`compute_candidates`, `score_candidates`, `select`, `verify_by_generation`,
`evaluate_interventions`) on this model's splits. Difference of mean residuals, harmful minus
harmless, over {d["n_prompts_per_class"]} training-distribution prompts per class, at every layer
input and the five post-instruction positions; selected on the validation split by Arditi et
al.'s rule (lowest bypass score among candidates in the first 80% of layers with KL ≤ 0.1 and a
positive induce score, never one whose ablation leaves the harmful score at its baseline), then
checked by greedy generation on the validation harmful prompts (refusal
{d["verified_by_generation"]["baseline_rate"]:.2f} → {d["verified_by_generation"]["ablated_rate"]:.2f} ablated):
**layer {d["layer"]}, position {d["position"]}**, norm {d["norm"]:.2f}.
Ablation removes it from every layer input, attention output and MLP output at every position,
in two forms: *zero* (the paper's: projection set to 0) and *mean* (projection on each layer
input set to the mean over harmless prompts). Addition adds the raw difference of means to the
input of layer {d["layer"]} at every position. The random control is a Gaussian direction of
equal norm.

| bar | threshold | value | |
|---|---|---|---|
{bar_lines}

Under intervention:

| condition | refusal rate |
|---|---|
| harmful, direction mean-ablated | {rate("harmful_ablation_mean")} |
| harmful, direction zero-ablated | {rate("harmful_ablation_zero")} |
| harmful, random direction zero-ablated | {rate("harmful_random_ablation_zero")} |
| harmless, direction added | {rate("harmless_addition")}; clean: {rate("harmless_addition_clean")} |
| harmless, random direction added | {rate("harmless_random_addition")} |

First-token KL on harmless prompts: mean-ablation {ev["first_token_kl_harmless"]["mean"]:.4f},
zero-ablation {ev["first_token_kl_harmless"]["zero"]:.4f} (random direction, zero form:
{ev["first_token_kl_harmless"]["random_zero"]:.4f}).

Examples:

{sample("harmful")}

{sample("harmful_ablation_mean")}

{sample("harmless")}

{sample("harmless_addition")}

{_shortfalls(ev)}
## Seeds and recipes
Results vary by seed and recipe. {len(rows)} runs are tabulated (recipe = the flags given to
`lab.demo_model.train` besides `--data-dir`, `--out` and `--seed`); {n_pass} of {len(rows)} meet every
required bar (mean-form ablation) and {n_all} of {len(rows)} meet every bar including the zero-form
ablation. Seed {c["seed"]} (`{recipe_flags(c)}`) is shipped. The table was measured by the
earlier evaluation (its own copy of the selection, a random control in both forms, other
subsamples), and most runs used training options removed since (they are in the project's
history up to commit 1ab6023); the shipped model's numbers above are re-measured by the
experiment's procedure.

{_seed_markdown(rows)}

✗ marks a value that misses its bar (the retired random mean-ablation control: ≤ 0.05). All
numbers come from `evaluation.json` / `seeds.json`
(`python -m lab.demo_model.evaluate <dir> --data-dir ../shared/datasets`).
{chr(10) + "## Notes from the training runs" + chr(10) + notes.strip() + chr(10) if notes.strip() else ""}"""
    (model_dir / "README.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-model-card", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--runs", nargs="*", default=None, help="run directories of every trained seed")
    parser.add_argument("--notes", default=None, help="markdown file of findings to append to the card")
    args = parser.parse_args(argv)
    notes = Path(args.notes).read_text() if args.notes else ""
    write_card(Path(args.model_dir), [Path(r) for r in args.runs] if args.runs else None, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
