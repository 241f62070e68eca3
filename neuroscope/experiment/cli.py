"""``python -m neuroscope experiment`` and ``python -m neuroscope evaluate``.

Bad input (unknown model, malformed prompt file, NaN strength, bad layer, a folder holding another
run) prints one line on stderr and exits 2, before anything is written to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import json
import math
from pathlib import Path
import sys
from typing import Any, Callable

EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (and exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


from neuroscope.config import SEED_MAX as MAX_SEED  # noqa: E402  (one seed range everywhere)


def _strength(text: str) -> float:
    from neuroscope.services.generation import MAX_STRENGTH  # the app's typo guard, one definition

    value = _finite(text)
    if abs(value) > MAX_STRENGTH:
        raise argparse.ArgumentTypeError(f"must lie in -{MAX_STRENGTH:g}..{MAX_STRENGTH:g}, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}")
    return value


def writable_folder(path: str) -> None:
    """Raises ``ExperimentError`` unless ``path`` is (or can become) a folder this process can write into.

    Creates nothing: a temporary file is made and removed in the nearest folder that exists.
    """
    import tempfile

    from neuroscope.method.config import ExperimentError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ExperimentError(f"--out {path} is a file, not a folder")
    existing = folder
    while not existing.exists():
        if os.path.lexists(existing):  # a link that leads nowhere: mkdir would fail after the model loaded
            raise ExperimentError(f"--out {path}: {existing} is a broken symbolic link (dangling, or a loop)")
        existing = existing.parent
    if not existing.is_dir():
        raise ExperimentError(f"--out {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ExperimentError(f"--out {path} is not writable: {err.strerror or err}") from None


def _strengths(text: str) -> tuple[float, ...]:
    parts = [t for t in text.split(",") if t.strip()]
    values = tuple(_finite(t) for t in parts)
    if not values or any(not 0 < v <= 4 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in (0, 4], got {text!r}")
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _load(spec: str, device: str, dtype: str):
    if spec == "tiny":  # an untrained tiny random model: wiring checks and tests only
        from neuroscope.model.tiny import build_tiny_model

        return build_tiny_model()
    from neuroscope.model import load_model

    return load_model(spec, device=device, dtype=dtype)


def _user_errors() -> tuple[type[BaseException], ...]:
    from neuroscope.config import SettingsError
    from neuroscope.method.artifacts import ArtifactError
    from neuroscope.method.config import ExperimentError
    from neuroscope.model import ModelLoadError, PromptError
    from neuroscope.model.interventions import InterventionError
    from neuroscope.prompts import PromptFileError

    return (
        ExperimentError,
        ArtifactError,
        ModelLoadError,
        PromptError,
        InterventionError,
        PromptFileError,
        SettingsError,
        _UsageError,
    )


def _guard(command: str, body: Callable[[], int]) -> int:
    try:
        return body()
    except Exception as err:
        # The error types are imported only now, so that --help stays instant (no torch import).
        if not isinstance(err, _UsageError) and not isinstance(err, _user_errors()):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"neuroscope {command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            f"neuroscope {command}: interrupted; completed steps are saved, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


def _bar(enabled: bool):
    """A tqdm bar on stderr driven by ``progress(fraction, message)``; returns (callback, close)."""
    if not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(
        total=1000, unit="‰", bar_format="{percentage:3.0f}%|{bar:20}| {elapsed}<{remaining} {desc}", file=sys.stderr
    )

    def progress(fraction: float, message: str) -> None:
        bar.n = int(1000 * fraction)
        bar.set_description_str(message[:60], refresh=False)
        bar.refresh()

    return progress, bar.close


# --------------------------------------------------------------------------- experiment


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


# Flags generated from ExperimentConfig: flag -> (config field, argparse type). Their defaults and help
# texts are the dataclass's own, so the two cannot drift (a test checks every field is reachable).
CONFIG_FLAGS: dict[str, tuple[str, Any]] = {
    "--data-dir": ("data_dir", str),
    "--harmful": ("harmful_file", str),
    "--harmless": ("harmless_file", str),
    "--n-train": ("n_train", _positive),
    "--n-val": ("n_val", _positive),
    "--n-test": ("n_test", _positive),
    "--n-test-harmless": ("n_test_harmless", _positive),
    "--n-xstest": ("n_xstest", _nonnegative),
    "--n-head-prompts": ("n_head_prompts", _positive),
    "--max-new-tokens": ("max_new_tokens", _positive),
    "--batch-size": ("batch_size", _positive),
    "--strength": ("strength", _strength),
    "--kl-threshold": ("kl_threshold", _finite),
    "--seed": ("seed", _seed),
    "--edit-strengths": ("edit_strengths", _strengths),
    "--edit-tolerance": ("edit_tolerance", _finite),
    "--export-model": ("export_model", bool),
    "--beyond": ("beyond", bool),
}


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{x:g}" for x in value)
    return repr(value) if value == "" else f"{value:g}" if isinstance(value, float) else str(value)


def _experiment_parser() -> _Parser:
    import dataclasses

    from neuroscope.method.config import ExperimentConfig

    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    p = _Parser(
        prog="python -m neuroscope experiment",
        description="Run the full refusal-direction experiment and write report.md, report.html, metrics.json.",
    )
    p.add_argument("--model", required=True, help="Hub id, local model folder, 'demo', 'smollm2' or 'smollm2-refusal'.")
    p.add_argument("--out", required=True, help="Output folder (a re-run with the same settings resumes).")
    for flag, (name, kind) in CONFIG_FLAGS.items():
        f = fields[name]
        if kind is bool:
            p.add_argument(flag, dest=name, action="store_true", default=f.default, help=f.metadata["help"])
        else:
            p.add_argument(
                flag,
                dest=name,
                type=kind,
                default=f.default,
                metavar="L1,L2,..." if isinstance(f.default, tuple) else None,
                help=f"{f.metadata['help']} (default {_default_text(f.default)})",
            )
    p.add_argument("--restart", action="store_true", help="discard this pipeline's artifacts in --out and start over")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def experiment_main(argv: list[str]) -> int:
    """Entry point of ``python -m neuroscope experiment``; returns the exit code."""

    def body() -> int:
        args = _experiment_parser().parse_args(argv)
        from neuroscope.method.config import ExperimentConfig, ExperimentError
        from neuroscope.method.data import load_experiment_data
        from neuroscope.experiment.pipeline import clear_run, run_experiment

        config = ExperimentConfig(**{name: getattr(args, name) for name, _ in CONFIG_FLAGS.values()})
        data = load_experiment_data(config)  # bad files fail here, before anything is written
        writable_folder(args.out)  # and an unusable --out, before the model loads
        lm = _load(args.model, args.device, args.dtype)
        if args.restart:
            clear_run(args.out)
        progress, close = _bar(not args.quiet)
        try:
            result = run_experiment(lm, config, args.out, progress=progress, data=data)
        except ExperimentError as err:  # a step failed: say what is left in --out and what to do with it
            raise ExperimentError(f"{str(err).strip()}{_left_behind(args.out)}") from None
        finally:
            close()
        _summary(result)
        return 0

    return _guard("experiment", body)


def _left_behind(out: str) -> str:
    """The failure message's tail: what the steps that finished left in ``out``, and how to resume or discard it."""
    folder = Path(out)
    done = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if not done:
        return "; nothing was written to --out"
    return (
        f"; the steps that finished are saved in {out} ({', '.join(done[:6])}{', ...' if len(done) > 6 else ''}): "
        "rerun the same command to resume from them, or add --restart to start over"
    )


def _summary(result) -> None:
    from neuroscope.experiment.report import fmt_rate

    ev, sel = result.evaluation["rates"], result.selection
    print(f"direction: layer {sel['layer']}, position {sel['position_label']}")
    print(
        f"harmful refusal: baseline {fmt_rate(ev['harmful']['baseline']['refusal'])} -> ablated "
        f"{fmt_rate(ev['harmful']['ablation']['refusal'])}"
    )
    print(
        f"harmless refusal: baseline {fmt_rate(ev['harmless']['baseline']['refusal'])} -> added "
        f"{fmt_rate(ev['harmless']['addition']['refusal'])}"
    )
    held, edit = result.orthogonalization["held_out"], result.orthogonalization["edit"]
    print(
        f"chosen weight edit ({edit['label']}): held-out refusal {fmt_rate(held['rates']['refusal'])} "
        f"in the edited weights, first-token KL {held['kl']['mean']:.4f}"
        + (
            f", exported to {result.orthogonalization['exported_to']}"
            if result.orthogonalization.get("exported_to")
            else ""
        )
    )
    print(f"heads: {result.heads['verdict']}")
    print(f"report: {result.out_dir}/report.md, report.html, metrics.json")


# --------------------------------------------------------------------------- evaluate


def _evaluate_parser() -> _Parser:
    p = _Parser(
        prog="python -m neuroscope evaluate",
        description="Refusal rates with 95%% intervals for baseline, ablated and added, on two prompt files.",
    )
    p.add_argument("--model", required=True, help="Hub id, local model folder, or 'demo'.")
    p.add_argument("--direction", required=True, help="direction.safetensors written by `experiment`.")
    p.add_argument(
        "--harmful",
        required=True,
        help="Harmful prompt file (JSON list with 'instruction', or CSV with goal/instruction/prompt).",
    )
    p.add_argument("--harmless", required=True, help="Harmless prompt file.")
    p.add_argument("--layer", type=int, default=None, help="addition layer (default: the direction's own layer)")
    p.add_argument("--strength", type=_strength, default=1.0, help="activation-addition multiplier (default 1.0)")
    p.add_argument("--max-new-tokens", type=_positive, default=32, help="generated tokens per answer (default 32)")
    p.add_argument("--limit", type=_positive, default=None, help="use at most this many prompts per file")
    p.add_argument("--batch-size", type=_positive, default=16, help="prompts per batch (default 16)")
    p.add_argument("--seed", type=_seed, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    return p


def evaluate_main(argv: list[str]) -> int:
    """Entry point of ``python -m neuroscope evaluate``; returns the exit code."""

    def body() -> int:
        args = _evaluate_parser().parse_args(argv)
        import torch

        from neuroscope.method.artifacts import load_direction, to_json
        from neuroscope.method.config import ExperimentError
        from neuroscope.method.evaluation import evaluate_direction
        from neuroscope.prompt_files import load_prompt_file

        direction, meta = load_direction(args.direction)
        harmful = [p.instruction for p in load_prompt_file(args.harmful, harmful=True)][: args.limit]
        harmless = [p.instruction for p in load_prompt_file(args.harmless, harmful=False)][: args.limit]
        lm = _load(args.model, args.device, args.dtype)
        if direction.shape != (lm.d_model,):
            raise ExperimentError(
                f"{args.direction} holds a [{direction.shape[0]}] direction; {lm.name} needs [{lm.d_model}]"
            )
        layer = args.layer if args.layer is not None else meta.get("layer")
        if type(layer) is not int or not 0 <= layer < lm.n_layers:  # not a bool: `layer: true` is no layer
            raise ExperimentError(f"layer must be an integer in 0..{lm.n_layers - 1}, got {layer!r}")
        from neuroscope.model.activations import mean_resid_pre
        from neuroscope.services.direction import direction_scale_problem

        means = mean_resid_pre(lm, (harmful[:8] + harmless[:8]) or ["Hello"], batch_size=args.batch_size)[layer]
        problem = direction_scale_problem(direction, means, layer)  # the app's rule: never a 9e4-norm "direction"
        if problem:
            raise ExperimentError(problem)
        target = meta.get("mean_target")
        valid = (
            isinstance(target, list)
            and len(target) == lm.n_layers
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in target)
        )
        mean_target = torch.tensor(target, dtype=torch.float64) if valid else None
        progress, close = _bar(True)
        try:
            result = evaluate_direction(
                lm,
                direction,
                layer,
                harmful,
                harmless,
                args.strength,
                mean_target,
                args.max_new_tokens,
                args.batch_size,
                seed=args.seed,
                progress=progress,
            )
        finally:
            close()
        payload: dict[str, Any] = {
            "model": lm.name,
            "direction": args.direction,
            "layer": layer,
            "strength": args.strength,
            "n_harmful": len(harmful),
            "n_harmless": len(harmless),
            **result,
        }
        if args.json:
            print(to_json(payload))
        else:
            _print_table(payload)
        return 0

    return _guard("evaluate", body)


def _print_table(payload: dict[str, Any]) -> None:
    data = json.loads(__import__("neuroscope.method.artifacts", fromlist=["to_json"]).to_json(payload))
    from neuroscope.experiment.report import fmt_num, fmt_rate

    print(f"{data['model']}  direction {data['direction']}  layer {data['layer']}  strength {data['strength']}")
    for name in ("harmful", "harmless"):
        for cond, block in data[name].items():
            kl = data["kl"][name].get(cond)
            print(
                f"  {name:<9} {cond:<14} refusal {fmt_rate(block['refusal']):<24} clean {fmt_rate(block['clean_refusal']):<24}"
                + (f" KL {fmt_num(kl, 4)}" if kl else "")
            )
