"""``python -m neuroscope analyze``: one prompt through the model, printed as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from neuroscope.config import DEFAULT_MODEL, SEED_MAX, Settings, SettingsError
from neuroscope.errors import OneLineParser


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m neuroscope analyze",
        description="Run one prompt through a model and report its answer, refusal verdict, top heads and logit lens.",
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"hub id, local directory, 'demo', 'smollm2' or 'smollm2-refusal' (default: {DEFAULT_MODEL}; env NEUROSCOPE_MODEL)",
    )
    p.add_argument("--prompt", required=True, help="the user message")
    p.add_argument(
        "--no-chat",
        dest="chat",
        action="store_false",
        help="run the text as it is, without the chat template (plain continuation, e.g. 'The capital of France is')",
    )
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length in tokens")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="reject longer prompts")
    p.add_argument("--top-heads", type=int, default=10, help="how many heads to list")
    p.add_argument(
        "--direction",
        default=None,
        help="a direction.safetensors: adds the head callout (the heads "
        "departing most from the harmless baseline along it)",
    )
    p.add_argument(
        "--baseline-prompts",
        type=int,
        default=64,
        help="harmful and harmless prompts per side behind "
        "the callout's baseline (the research sets where a data folder or the Hub has them, else the curated pairs)",
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--remote",
        action="store_true",
        default=None,
        help="run on NDIF (nnsight remote execution) instead of here: a hub model id, the API key in "
        "NDIF_API_KEY; no weights are downloaded, so the logit lens and head contributions are "
        "left out (env NEUROSCOPE_REMOTE)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def range_problem(checks) -> str | None:
    """The first ``(flag, value, lo, hi)`` whose integer value is outside lo..hi, as a message; else None."""
    for name, value, lo, hi in checks:
        if not lo <= value <= hi:
            return f"{name} must be an integer in {lo}..{hi}, got {value}"
    return None


def fail(message: str) -> int:
    print(f"neuroscope: error: {message}", file=sys.stderr)
    return 2


def _callout_baseline(lm, args, settings):
    """The direction file and its head baseline on the default contrastive set (one computation per run)."""
    from neuroscope.method.artifacts import load_direction
    from neuroscope.services import (
        CURATED,
        RESEARCH,
        ResearchError,
        contrastive_set_names,
        describe_heads,
        load_contrastive_set,
    )

    direction, _meta = load_direction(args.direction)
    if direction.shape != (lm.d_model,):
        raise ResearchError(
            f"the direction file holds a vector of size {direction.shape[0]}, this model needs {lm.d_model}"
        )
    name = RESEARCH if RESEARCH in contrastive_set_names() else CURATED
    data = load_contrastive_set(name, args.baseline_prompts, 2)
    return direction, describe_heads(lm, data.train_harmful, data.train_harmless, direction)


def analyze_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from neuroscope.method.artifacts import ArtifactError
    from neuroscope.services.explorer import analyze
    from neuroscope.model import ModelLoadError, PromptError, load_model
    from neuroscope.model.loader import load_remote
    from neuroscope.model.chat import clean_instruction
    from neuroscope.services import ResearchError

    try:
        settings = Settings.from_env(
            model=args.model,
            max_new_tokens=args.max_new_tokens,
            max_prompt_tokens=args.max_prompt_tokens,
            device=args.device,
            remote=args.remote,
        )
    except SettingsError as err:
        return fail(str(err))
    if args.top_heads < 1:
        return fail("--top-heads must be at least 1")
    if not 4 <= args.baseline_prompts <= 512:
        return fail("--baseline-prompts must be between 4 and 512")
    try:
        clean_instruction(args.prompt, settings.max_prompt_tokens)  # bad input is reported before the model loads
        lm = (
            load_remote(settings.model)
            if settings.remote
            else load_model(settings.model, device=settings.device, dtype=settings.dtype)
        )
        direction, stats = (None, None) if args.direction is None else _callout_baseline(lm, args, settings)
        result = analyze(lm, args.prompt, settings, direction=direction, head_stats=stats, chat=args.chat)
    except (ModelLoadError, PromptError, ResearchError, ArtifactError) as err:
        return fail(str(err))
    except Exception as err:  # a remote run's transport errors come in many types
        if not settings.remote:
            raise
        return fail(f"the remote run on NDIF failed: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
    payload = result.to_json(lm, top_heads=args.top_heads, lens_k=settings.lens_top_k)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    print(f"model: {payload['model']}\nanswer: {payload['answer']}")
    print(f"refused: {payload['refused']} (first-token refusal probability {payload['refusal_probability']:.3f})")
    print("top heads (contribution norm at the last position):")
    for h in payload["top_heads"]:
        print(f"  L{h['layer']}H{h['head']}: {h['norm']:.4f}")
    if payload["head_callout"]:
        print("heads pushing hardest toward refusal (vs the harmless baseline, post-instruction positions):")
        for d in payload["head_callout"]:
            print(f"  {d['text']}")
    if payload.get("head_suppressor"):
        print(f"strongest suppressor: {payload['head_suppressor']['text']}")
    print("logit lens at the last position:")
    for row in payload["logit_lens_last_position"]:
        pairs = ", ".join(f"{t!r} {p:.2f}" for t, p in zip(row["tokens"], row["probs"]))
        print(f"  layer {row['layer']:>2}: {pairs}")
    return 0


def induction_main(argv: list[str]) -> int:
    """``python -m neuroscope induction``: the induction-head table and its ablation test."""
    p = OneLineParser(
        prog="python -m neuroscope induction",
        description="Find induction heads on repeated "
        "random tokens and test the top ones by mean ablation against random heads.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="hub id, local directory, 'demo', 'smollm2' or 'smollm2-refusal' (env NEUROSCOPE_MODEL)",
    )
    p.add_argument("--sequences", type=int, default=8, help="random sequences (default 8)")
    p.add_argument("--length", type=int, default=48, help="tokens per sequence before it repeats (default 48)")
    p.add_argument("--k", type=int, default=5, help="top heads to ablate (default 5)")
    p.add_argument("--random-sets", type=int, default=8, help="random head sets of the same size (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    from neuroscope.services.induction import InductionError, check_settings, find_induction_heads
    from neuroscope.model import ModelLoadError, load_model

    try:
        settings = Settings.from_env(model=args.model, device=args.device)
        check_settings(args.sequences, args.length, args.k, args.random_sets, 10**9)
        if not 0 <= args.seed <= SEED_MAX:
            raise InductionError(f"--seed must be in 0..{SEED_MAX}, got {args.seed}")
        lm = load_model(settings.model, device=settings.device, dtype=settings.dtype)
        result = find_induction_heads(
            lm, n_seqs=args.sequences, half=args.length, k=args.k, n_random=args.random_sets, seed=args.seed
        )
    except (SettingsError, InductionError, ModelLoadError) as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    print(f"model: {result.model_name}\n{result.summary()}\n")
    print(f"{'head':<8}{'induction':>10}{'dup. token':>12}{'prev. token':>13}{'copying':>10}")
    for row in result.table():
        print(
            f"{'L%dH%d' % (row['layer'], row['head']):<8}{row['induction']:>10.3f}{row['duplicate_token']:>12.3f}"
            f"{row['previous_token']:>13.3f}{row['copying']:>10.3f}"
        )
    return 0


def behaviour_main(argv: list[str]) -> int:
    """``python -m neuroscope behaviour``: a behaviour's direction, necessity and sufficiency vs random directions."""
    from neuroscope.behaviours import behaviour_names

    p = OneLineParser(
        prog="python -m neuroscope behaviour",
        description="Find a behaviour's direction on "
        "its training pairs, then ablate it (necessity) and add it (sufficiency) on held-out "
        "pairs, beside random directions treated the same way.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="hub id, local directory, 'demo', 'smollm2' or 'smollm2-refusal' (env NEUROSCOPE_MODEL)",
    )
    p.add_argument("--behaviour", default="french", choices=behaviour_names(), help="which behaviour (default french)")
    p.add_argument("--n-train", type=int, default=24, help="training pairs (default 24)")
    p.add_argument("--n-val", type=int, default=8, help="validation pairs for the selection (default 8)")
    p.add_argument("--n-test", type=int, default=12, help="held-out pairs (default 12)")
    p.add_argument("--random", type=int, default=4, help="random control directions (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
    from neuroscope.model import ModelLoadError, load_model
    from neuroscope.services import ResearchError
    from neuroscope.services.steering import behaviour_study

    problem = range_problem(
        (
            ("--n-train", args.n_train, 2, 512),
            ("--n-val", args.n_val, 1, 256),
            ("--n-test", args.n_test, 1, 256),
            ("--random", args.random, 0, 64),
            ("--max-new-tokens", args.max_new_tokens, 1, 256),
            ("--seed", args.seed, 0, SEED_MAX),
        )
    )
    if problem:
        return fail(problem)
    try:
        settings = Settings.from_env(model=args.model, device=args.device)
        lm = load_model(settings.model, device=settings.device, dtype=settings.dtype)
        record = behaviour_study(
            lm,
            args.behaviour,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            n_random=args.random,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
    except (SettingsError, ModelLoadError, ResearchError) as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    d = record["direction"]
    print(f"model: {record['model']}\nbehaviour: {record['title']} (an answer {record['shows']})")
    print(f"direction: layer {d['layer']}, position {d['position']}, norm {d['norm']:.3g} — {d['reason']}\n")
    print(f"{'prompts':<20}{'condition':<36}{'rate':>6}   95% interval    n")
    for row in record["rows"]:
        print(
            f"{row['prompts']:<20}{row['condition']:<36}{row['rate']:>6.0%}   [{row['lo']:.0%}, {row['hi']:.0%}]"
            f"{row['n']:>6}"
        )
    return 0
