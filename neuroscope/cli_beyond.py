"""The Beyond-one-direction commands: ``harmfulness``, ``cone`` and ``jailbreak`` (``python -m neuroscope ...``).

Each parses its flags (one line and exit 2 on a user error), runs its study, then prints a table or JSON.
"""

from __future__ import annotations

import json
from typing import Any

from neuroscope.cli import fail, range_problem
from neuroscope.config import SEED_MAX, Settings, SettingsError
from neuroscope.errors import OneLineParser

MODEL_HELP = "hub id, local directory, 'demo', 'smollm2' or 'smollm2-refusal' (env NEUROSCOPE_MODEL)"


def _parser(command: str, description: str) -> OneLineParser:
    """A command's parser with the flags every study shares (--model, --data-dir, --seed, --device, --json)."""
    p = OneLineParser(prog=f"python -m neuroscope {command}", description=description)
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--data-dir", default="", help="folder with the research sets (default: $NEUROSCOPE_DATA_DIR)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _load(args: Any) -> Any:
    from neuroscope.model import load_model

    settings = Settings.from_env(model=args.model, device=args.device)
    return load_model(settings.model, device=settings.device, dtype=settings.dtype)


def _errors() -> tuple[type[Exception], ...]:
    from neuroscope.model import ModelLoadError
    from neuroscope.services import ResearchError

    return SettingsError, ModelLoadError, ResearchError


def _interval(iv: Any) -> str:
    return f"{iv.mean:.2f} [{iv.lo:.2f}, {iv.hi:.2f}]"


# ---------------------------------------------------------------- harmfulness


def harmfulness_main(argv: list[str]) -> int:
    """``python -m neuroscope harmfulness``: harmfulness vs refusal directions (Zhao et al. 2025)."""
    p = _parser(
        "harmfulness",
        "Two difference-of-means directions, harmfulness at the instruction's last token and refusal "
        "at the last template token: their cosine per layer, and where held-out harmful, harmless, XSTest and "
        "jailbreak-wrapped prompts sit on both, each judged refused or answered.",
    )
    p.add_argument("--n-train", type=int, default=64, help="training prompts per side for the directions (default 64)")
    p.add_argument("--n-per-group", type=int, default=32, help="held-out prompts per group (default 32)")
    p.add_argument(
        "--layer", type=int, default=None, help="the map's layer (default: the shipped direction's, else the middle)"
    )
    p.add_argument("--max-new-tokens", type=int, default=24, help="answer length for the refused/answered judge")
    p.add_argument(
        "--steer",
        action="store_true",
        help="also add each direction on its own to harmless prompts: refusal, and a 'is it harmful?' probe",
    )
    p.add_argument("--strength", type=float, default=1.0, help="addition strength for --steer (default 1)")
    args = p.parse_args(argv)
    from neuroscope.services.harmfulness import MAX_PROMPTS, harmfulness_vs_refusal
    from neuroscope.services.steer_each import steer_each_direction

    problem = range_problem(
        (
            ("--n-train", args.n_train, 2, MAX_PROMPTS),
            ("--n-per-group", args.n_per_group, 1, MAX_PROMPTS),
            ("--max-new-tokens", args.max_new_tokens, 1, 256),
            ("--seed", args.seed, 0, SEED_MAX),
        )
    )
    if problem:
        return fail(problem)
    if not 0 < args.strength <= 8:
        return fail(f"--strength must be in (0, 8], got {args.strength}")
    sizes = dict(max_new_tokens=args.max_new_tokens, data_dir=args.data_dir, seed=args.seed)
    try:
        lm = _load(args)
        study = harmfulness_vs_refusal(
            lm, n_train=args.n_train, n_per_group=args.n_per_group, layer=args.layer, **sizes
        )
        steering = None
        if args.steer:
            steering = steer_each_direction(
                lm, n_train=args.n_train, n_test=args.n_per_group, layer=study.layer, strength=args.strength, **sizes
            )
    except _errors() as err:
        return fail(str(err))
    if args.json:
        record = study.to_json()
        record["steering"] = steering.to_json() if steering is not None else None
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    _print_harmfulness(study, steering)
    return 0


def _print_harmfulness(study: Any, steering: Any) -> None:
    print(f"model: {study.model}\ndata: {study.data}\nlayer {study.layer} ({study.layer_reason})")
    print(f"harmfulness read at {study.positions['harmfulness']}; refusal at {study.positions['refusal']}\n")
    print(f"{'group':<28}{'harmfulness':>22}{'refusal':>22}{'refused':>22}")
    for g in study.groups:
        print(
            f"{g.name:<28}{_interval(g.place.harmfulness):>22}{_interval(g.place.refusal):>22}"
            f"{_interval(g.refusal_rate):>22}"
        )
    print("\n" + study.summary())
    if steering is not None:
        print(f"\nSteering each direction on its own (layer {steering.layer}, strength {steering.strength:g}):")
        print(steering.summary())


# ---------------------------------------------------------------- cone


def cone_main(argv: list[str]) -> int:
    """``python -m neuroscope cone``: the refusal cone — ablate k = 1..K dimensions against random subspaces."""
    p = _parser(
        "cone",
        "Ablate k-dimensional subspaces (the difference-of-means direction plus principal components, "
        "or plus neighbouring layers' directions) on held-out harmful prompts, against random subspaces: is one "
        "refusal direction enough?",
    )
    p.add_argument("--k", type=int, default=4, help="largest number of dimensions (default 4)")
    p.add_argument("--n-train", type=int, default=64, help="training prompts per side (default 64)")
    p.add_argument("--n-test", type=int, default=32, help="held-out prompts per side (default 32)")
    p.add_argument("--random", type=int, default=2, help="random subspaces per k (default 2)")
    p.add_argument("--layer", type=int, default=None, help="default: the shipped direction's, else the middle")
    p.add_argument("--position", type=int, default=None, help="a post-instruction position, -1 = the last token")
    p.add_argument("--max-new-tokens", type=int, default=24)
    args = p.parse_args(argv)
    from neuroscope.services.cone import MAX_K, MAX_PROMPTS, refusal_cone

    problem = range_problem(
        (
            ("--k", args.k, 1, MAX_K),
            ("--n-train", args.n_train, 2, MAX_PROMPTS),
            ("--n-test", args.n_test, 1, MAX_PROMPTS),
            ("--random", args.random, 1, 16),
            ("--max-new-tokens", args.max_new_tokens, 1, 256),
            ("--seed", args.seed, 0, SEED_MAX),
        )
    )
    if problem:
        return fail(problem)
    try:
        study = refusal_cone(
            _load(args),
            k_max=args.k,
            n_train=args.n_train,
            n_test=args.n_test,
            n_random=args.random,
            layer=args.layer,
            position=args.position,
            max_new_tokens=args.max_new_tokens,
            data_dir=args.data_dir,
            seed=args.seed,
        )
    except _errors() as err:
        return fail(str(err))
    if args.json:
        print(json.dumps(study.to_json(), ensure_ascii=False, indent=2))
        return 0
    _print_cone(study)
    return 0


def _print_cone(study: Any) -> None:
    from neuroscope.services.cone import FAMILIES

    print(
        f"model: {study.model}\ndata: {study.data}\nlayer {study.layer}, position {study.position} ({study.layer_reason})\n"
    )
    print(f"{'subspaces':<52}" + "".join(f"{'k = %d' % p.k:>20}" for p in study.curves["pca"]))
    for name, points in study.curves.items():
        cells = "".join(f"{_interval(q.refused):>20}" for q in points)
        print(f"{FAMILIES[name]:<52}{cells}")
    print("\n" + study.summary())


# ---------------------------------------------------------------- jailbreak


def jailbreak_main(argv: list[str]) -> int:
    """``python -m neuroscope jailbreak``: the project's jailbreak template families, and what they do inside."""
    p = _parser(
        "jailbreak",
        "Wrap held-out harmful requests in every jailbreak template family (data/jailbreaks/), judge the "
        "answers with both judges, and compare where successful and failed attacks sit on the harmfulness and "
        "refusal directions.",
    )
    p.add_argument("--n-train", type=int, default=64, help="training prompts per side for the directions (default 64)")
    p.add_argument("--n-test", type=int, default=16, help="held-out harmful requests (default 16)")
    p.add_argument("--layer", type=int, default=None, help="default: the shipped direction's, else the middle")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument(
        "--gcg", type=int, default=10, help="held-out requests to attack with the suffix search (default 10; 0 = none)"
    )
    p.add_argument("--gcg-steps", type=int, default=60, help="suffix search steps per request (default 60)")
    p.add_argument("--gcg-seconds", type=float, default=60.0, help="suffix search time per request (default 60)")
    args = p.parse_args(argv)
    from neuroscope.services.gcg import MAX_STEPS, gcg_search
    from neuroscope.services.harmfulness import MAX_PROMPTS
    from neuroscope.services.jailbreaks import jailbreak_families

    problem = range_problem(
        (
            ("--n-train", args.n_train, 2, MAX_PROMPTS),
            ("--n-test", args.n_test, 1, MAX_PROMPTS),
            ("--max-new-tokens", args.max_new_tokens, 1, 256),
            ("--gcg", args.gcg, 0, MAX_PROMPTS),
            ("--gcg-steps", args.gcg_steps, 1, MAX_STEPS),
            ("--seed", args.seed, 0, SEED_MAX),
        )
    )
    if problem:
        return fail(problem)
    if not 0 < args.gcg_seconds <= 3600:
        return fail(f"--gcg-seconds must be in (0, 3600], got {args.gcg_seconds}")
    try:
        lm = _load(args)
        study = jailbreak_families(
            lm,
            n_train=args.n_train,
            n_test=args.n_test,
            layer=args.layer,
            max_new_tokens=args.max_new_tokens,
            data_dir=args.data_dir,
            seed=args.seed,
        )
        gcg = None
        if args.gcg:
            requests = study.requests[: args.gcg]
            gcg = gcg_search(lm, requests, steps=args.gcg_steps, time_budget_s=args.gcg_seconds, seed=args.seed)
    except _errors() as err:
        return fail(str(err))
    record = study.to_json()
    record["gcg"] = gcg.to_json() if gcg is not None else None
    if args.json:
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return 0
    _print_jailbreak(study, record, gcg)
    return 0


def _print_jailbreak(study: Any, record: dict, gcg: Any) -> None:
    print(f"model: {study.model}\ndata: {study.data}\nlayer {study.layer} ({study.layer_reason})\n")
    fmt = lambda d: f"{d['mean']:.2f} [{d['lo']:.2f}, {d['hi']:.2f}]"  # noqa: E731
    print(f"{'family':<22}{'success':>22}{'success (broad)':>22}{'refusal coord.':>22}{'harmfulness':>22}")
    for name, row in record["families"].items():
        print(
            f"{name:<22}{fmt(row['success']):>22}{fmt(row['success_broad']):>22}"
            f"{fmt(row['refusal']):>22}{fmt(row['harmfulness']):>22}"
        )
    print("\n" + study.summary())
    if gcg is not None:
        print("\n" + gcg.summary())
        for a in gcg.attacks:
            print(
                f"  {'broken ' if a.broken else 'refused'}  {a.score_before:+.2f} -> {a.score_after:+.2f}  {a.suffix!r}"
            )
