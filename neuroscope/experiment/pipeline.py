"""The whole experiment as resumable steps, each saving its artifact atomically.

Step artifacts in ``out_dir`` (an artifact exists only when its step completed, so a re-run with
the same settings skips what is done):

=====================  ==========================================================
config.json            model, settings and their fingerprint (a resume must match)
data.json              every prompt set used, the length report
candidates.safetensors mean activations and candidate directions [L, P, d_model]
selection.json         the full candidate table, the choice and why
direction.safetensors  the chosen direction with metadata (incl. mean-ablation target)
evaluation.json        necessity / sufficiency / controls / collateral damage, intervals
frontier.json          weight-edit sweep (mean form; zero form at each lambda): refusal vs damage
orthogonalization.json the chosen edit: hooks vs weights, and the edited weights on held-out prompts
heads.json             head deltas, ranking, top-k vs random-k, permutation test
generalisation.json    per-category rates, category cosines, XSTest
report.md / report.html / metrics.json
=====================  ==========================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from neuroscope.experiment import steps as step
from neuroscope.experiment.steps import EXPORT_DIR, Chosen, Run
from neuroscope.method import artifacts as art
from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.method.data import ExperimentData, length_report, load_experiment_data
from neuroscope.method.direction import Candidates
from neuroscope.model.chat import refusal_token_ids
from neuroscope.types import Progress

__all__ = ["ARTIFACTS", "EXPORT_DIR", "ExperimentResult", "clear_run", "run_experiment"]

ARTIFACTS = (
    "config.json",
    "data.json",
    "candidates.safetensors",
    "selection.json",
    "direction.safetensors",
    "evaluation.json",
    "frontier.json",
    "orthogonalization.json",
    "heads.json",
    "generalisation.json",
    "report.md",
    "report.html",
    "metrics.json",
)
OPTIONAL_ARTIFACTS = ("beyond.json",)  # written only when the run asks for them (--beyond)
# Share of the progress bar each step gets (roughly its share of the run time on the demo model).
WEIGHTS = {
    "data": 0.02,
    "candidates": 0.05,
    "selection": 0.18,
    "evaluation": 0.28,
    "frontier": 0.16,
    "orthogonalization": 0.07,
    "heads": 0.13,
    "generalisation": 0.09,
    "beyond": 0.0,  # optional: its own bar share would stretch every run that skips it
    "report": 0.02,
}


@dataclass
class ExperimentResult:
    """Everything a run produced, as loaded from (or written to) its artifacts.

    Tensors: ``candidates`` (means and directions), ``direction`` [d_model]. The step records
    (``selection``, ``evaluation``, ...) are the JSON-ready dicts stored on disk.
    """

    config: ExperimentConfig
    model_name: str
    n_layers: int
    n_heads: int
    data: ExperimentData
    lengths: dict[str, Any]
    refusal_ids: list[int]
    refusal_tokens: list[str]
    candidates: Candidates
    selection: dict[str, Any]
    direction: Tensor
    direction_meta: dict[str, Any]
    evaluation: dict[str, Any]
    frontier: dict[str, Any]
    orthogonalization: dict[str, Any]
    heads: dict[str, Any]
    generalisation: dict[str, Any]
    beyond: dict[str, Any] | None = None  # harmfulness vs refusal and the cone, when the run asked for them
    seconds: dict[str, float] = field(default_factory=dict)
    out_dir: str = ""


class _Steps:
    """Progress bookkeeping: maps a step's own 0..1 progress onto the whole run."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0.0

    def sub(self, step: str) -> Progress:
        start, weight = self.done, WEIGHTS[step]

        def report(fraction: float, message: str) -> None:
            if self.progress is not None:
                self.progress(min(1.0, start + weight * max(0.0, min(1.0, fraction))), message)

        return report

    def finish(self, step: str, message: str) -> None:
        self.done += WEIGHTS[step]
        if self.progress is not None:
            self.progress(min(1.0, self.done), message)


def _check_config(out: Path, config: ExperimentConfig, model_name: str) -> None:
    path = out / "config.json"
    fingerprint = config.fingerprint(model_name)
    if path.is_file():
        saved = art.read_json(path)
        if saved.get("fingerprint") != fingerprint:
            raise ExperimentError(
                f"{out} holds a run with other settings or another model ({saved.get('model')}); "
                "use another --out folder or pass --restart"
            )
        return
    art.write_json(path, {"model": model_name, "fingerprint": fingerprint, "config": config.to_dict()})


def _json_step(
    run: Run, name: str, compute: Callable[[], dict], seconds: dict[str, float], bar: "_Steps", message: str
) -> dict:
    """Resumes or runs one step whose artifact is ``<out>/<name>.json``.

    A finished step's file is read back as is; otherwise ``compute`` runs, its duration is recorded
    in the artifact, and the JSON is written atomically (so an interrupted step leaves no file).
    """
    path = run.out / f"{name}.json"
    if path.is_file():
        record = art.read_json(path)
    else:
        t0 = time.perf_counter()
        record = compute()
        record["seconds"] = time.perf_counter() - t0
        record = art.read_json_text(art.to_json(record))
        art.write_json(path, record)
    seconds[name] = record.get("seconds", 0.0)
    bar.finish(name, message)
    return record


def clear_run(out_dir: str | Path) -> None:
    """Removes this pipeline's artifacts (and only them) from ``out_dir``."""
    import shutil

    out = Path(out_dir)
    for name in ARTIFACTS + OPTIONAL_ARTIFACTS:
        (out / name).unlink(missing_ok=True)
    if (out / EXPORT_DIR).is_dir():
        shutil.rmtree(out / EXPORT_DIR)
    art.sweep_temporaries(out)


def _data(run: Run, seconds: dict[str, float]) -> tuple[ExperimentData, dict[str, Any]]:
    """Step 1, resumed from ``data.json``: the prompt sets (as saved, so a resume uses the same prompts)
    and their length report."""
    path = run.out / "data.json"
    if path.is_file():
        saved = art.read_json(path)
        seconds["data"] = saved.get("seconds", 0.0)
        return ExperimentData.from_dict(saved["data"]), saved["lengths"]
    t0 = time.perf_counter()
    lengths = length_report(run.data, run.lm.tokenizer)
    seconds["data"] = time.perf_counter() - t0
    record = {"data": run.data.to_dict(), "lengths": lengths, "sizes": run.data.sizes(), "seconds": seconds["data"]}
    art.write_json(path, record)
    return run.data, lengths


def _candidates(run: Run, seconds: dict[str, float]) -> Candidates:
    """Step 2, resumed from ``candidates.safetensors``."""
    path = run.out / "candidates.safetensors"
    if path.is_file():
        tensors, meta = art.load_tensors(path)
        seconds["candidates"] = meta.get("seconds", 0.0)
        return Candidates(
            tensors["harmful_mean"], tensors["harmless_mean"], tensors["directions"], meta["position_labels"]
        )
    t0 = time.perf_counter()
    found = step.candidates(run=run)
    seconds["candidates"] = time.perf_counter() - t0
    names = ("harmful_mean", "harmless_mean", "directions")
    art.save_tensors(
        path,
        {n: getattr(found, n) for n in names},
        step.candidates_meta(run=run, found=found, seconds=seconds["candidates"]),
    )
    return found


def _selection(run: Run, found: Candidates, seconds: dict[str, float]) -> tuple[dict, Tensor, dict]:
    """Step 3, resumed from ``selection.json`` and ``direction.safetensors`` (written only together)."""
    sel_path, dir_path = run.out / "selection.json", run.out / "direction.safetensors"
    if sel_path.is_file() and dir_path.is_file():
        record = art.read_json(sel_path)
        direction, meta = art.load_direction(dir_path)
        seconds["selection"] = record.get("seconds", 0.0)
        return record, direction, meta
    t0 = time.perf_counter()
    record, direction, meta = step.selection(run=run, found=found)
    seconds["selection"] = record["seconds"] = time.perf_counter() - t0
    art.save_direction(dir_path, direction, meta)
    art.write_json(sel_path, record)
    return record, direction, meta


def _prepare(lm: Any, config: ExperimentConfig, out_dir: str | Path, data: ExperimentData | None, bar: "_Steps") -> Run:
    data = data if data is not None else load_experiment_data(config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    art.sweep_temporaries(out)
    _check_config(out, config, lm.name)
    return Run(lm=lm, config=config, data=data, out=out, refusal_ids=refusal_token_ids(lm.tokenizer), bar=bar.sub)


def _measure(run: Run, chosen: Chosen, found: Candidates, seconds: dict[str, float], bar: "_Steps") -> dict:
    """Steps 4-8 in order, each resumed from its JSON artifact when done; their records by name."""

    def resume(name: str, compute: Callable[[], dict], message: str) -> dict:
        return _json_step(run, name, compute, seconds, bar, message)

    evaluated = resume("evaluation", lambda: step.evaluation(run=run, chosen=chosen), "interventions evaluated")
    swept = resume(
        "frontier", lambda: step.frontier(run=run, chosen=chosen, evaluated=evaluated), "edit frontier measured"
    )
    records = {
        "evaluation": evaluated,
        "frontier": swept,
        "orthogonalization": resume(
            "orthogonalization",
            lambda: step.orthogonalization(run=run, chosen=chosen, swept=swept),
            "chosen edit checked in the weights",
        ),
        "heads": resume("heads", lambda: step.heads(run=run, chosen=chosen), "head analysis done"),
        "generalisation": resume(
            "generalisation",
            lambda: step.generalisation_step(run=run, chosen=chosen, found=found, evaluated=evaluated),
            "generalisation done",
        ),
        "beyond": None,
    }
    if run.config.beyond or (run.out / "beyond.json").is_file():
        records["beyond"] = resume(
            "beyond", lambda: step.beyond(run=run, chosen=chosen), "harmfulness, the cone and jailbreaks measured"
        )
    return records


def run_experiment(
    lm: Any,
    config: ExperimentConfig,
    out_dir: str | Path,
    progress: Progress | None = None,
    data: ExperimentData | None = None,
) -> ExperimentResult:
    """Runs (or resumes) every step in order and writes the report. The steps are ``experiment.steps``;
    this function only orders them and resumes what is done.

    Args:
        lm: A ``LoadedModel``.
        config: Settings.
        out_dir: Output folder (created if needed).
        progress: ``progress(fraction 0..1, message)``.
        data: Prompt sets already loaded (otherwise loaded from ``config``); load them before
            creating anything on disk so that bad input leaves no folder behind.

    Raises:
        ExperimentError: Bad input or a folder holding another run.
    """
    from neuroscope.experiment.report import write_report

    bar = _Steps(progress)
    run = _prepare(lm, config, out_dir, data, bar)
    seconds: dict[str, float] = {}
    run.data, lengths = _data(run, seconds)
    bar.finish("data", "data ready")
    found = _candidates(run, seconds)
    bar.finish("candidates", "candidate directions ready")
    selection, direction, direction_meta = _selection(run, found, seconds)
    bar.finish("selection", f"chosen: layer {selection['layer']}, position {selection['position']}")
    chosen = Chosen(
        direction=direction,
        layer=int(selection["layer"]),
        position=int(selection["position"]),
        pos_index=int(selection["pos_index"]),
        mean_target=torch.tensor(direction_meta["mean_target"], dtype=torch.float64),
    )
    records = _measure(run, chosen, found, seconds, bar)
    result = ExperimentResult(
        config=config,
        model_name=lm.name,
        n_layers=lm.n_layers,
        n_heads=lm.n_heads,
        data=run.data,
        lengths=lengths,
        refusal_ids=run.refusal_ids,
        refusal_tokens=lm.token_strings(run.refusal_ids),
        candidates=found,
        selection=selection,
        direction=direction,
        direction_meta=direction_meta,
        **records,
        seconds=seconds,
        out_dir=str(run.out),
    )
    write_report(result, run.out)
    bar.finish("report", "report written")
    return result
