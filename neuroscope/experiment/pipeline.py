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

from neuroscope.analysis.directions import Selection
from neuroscope.method import artifacts as art
from neuroscope.method.config import ExperimentConfig, ExperimentError
from neuroscope.method.data import ExperimentData, length_report, load_experiment_data
from neuroscope.method.direction import Candidates, compute_candidates
from neuroscope.method.evaluation import check_orthogonalization, evaluate_edited, evaluate_interventions
from neuroscope.method.frontier import chosen_edit, edit_frontier
from neuroscope.method.generalise import generalisation
from neuroscope.method.heads import analyse_heads, heads_record
from neuroscope.model.chat import refusal_token_ids
from neuroscope.analysis.metrics import is_refusal
from neuroscope.method.selection import candidate_table, score_candidates, select, verify_by_generation
from neuroscope.model.activations import last_token_projections, projection_means
from neuroscope.model.orthogonalize import save_model
from neuroscope.types import Progress


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
OPTIONAL_ARTIFACTS = ("beyond.json",)
GCG_REQUESTS, GCG_STEPS, GCG_SECONDS = (
    5,
    30,
    30.0,
)  # the report's suffix search: bounded, a few minutes at most  # written only when the run asks for them (--beyond)
EXPORT_DIR = "edited-model"
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
    out: Path, name: str, compute: Callable[[], dict], seconds: dict[str, float], steps: "_Steps", message: str
) -> dict:
    """Resumes or runs one step whose artifact is ``<out>/<name>.json``.

    A finished step's file is read back as is; otherwise ``compute`` runs, its duration is recorded
    in the artifact, and the JSON is written atomically (so an interrupted step leaves no file).
    """
    path = out / f"{name}.json"
    if path.is_file():
        record = art.read_json(path)
    else:
        t0 = time.perf_counter()
        record = compute()
        record["seconds"] = time.perf_counter() - t0
        record = art.read_json_text(art.to_json(record))
        art.write_json(path, record)
    seconds[name] = record.get("seconds", 0.0)
    steps.finish(name, message)
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


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0


def _selection_record(sel: Selection, scored, table, labels) -> dict[str, Any]:
    return {
        "layer": sel.layer,
        "position": sel.position,
        "pos_index": sel.pos_index,
        "position_label": labels[sel.pos_index],
        "bypass": sel.bypass,
        "induce": sel.induce,
        "kl": sel.kl,
        "reason": sel.reason,
        "fallback": sel.fallback,
        "layer_cut": scored.layer_cut,
        "baseline_harmful_score": scored.baseline_harmful,
        "baseline_harmless_score": scored.baseline_harmless,
        "table": table,
    }


def run_experiment(
    lm: Any,
    config: ExperimentConfig,
    out_dir: str | Path,
    progress: Progress | None = None,
    data: ExperimentData | None = None,
) -> ExperimentResult:
    """Runs (or resumes) every step and writes the report.

    Args:
        lm: A ``LoadedModel``.
        config: Settings.
        out_dir: Output folder (created if needed).
        progress: ``progress(fraction 0..1, message)``.
        data: Prompt sets already loaded (otherwise loaded from ``config``); load them before
            creating anything on disk so that bad input leaves no folder behind.

    Returns:
        ExperimentResult.

    Raises:
        ExperimentError: Bad input or a folder holding another run.
    """
    from neuroscope.experiment.report import write_report

    steps = _Steps(progress)
    data = data if data is not None else load_experiment_data(config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    art.sweep_temporaries(out)
    _check_config(out, config, lm.name)
    seconds: dict[str, float] = {}
    bs = config.batch_size
    refusal_ids = refusal_token_ids(lm.tokenizer)

    # 1. data -------------------------------------------------------------------------------
    if (out / "data.json").is_file():
        saved = art.read_json(out / "data.json")
        data, lengths = ExperimentData.from_dict(saved["data"]), saved["lengths"]
        seconds["data"] = saved.get("seconds", 0.0)
    else:
        lengths, seconds["data"] = _timed(length_report, data, lm.tokenizer)
        art.write_json(
            out / "data.json",
            {"data": data.to_dict(), "lengths": lengths, "sizes": data.sizes(), "seconds": seconds["data"]},
        )
    steps.finish("data", "data ready")
    texts = ExperimentData.texts

    # 2. candidates -------------------------------------------------------------------------
    path = out / "candidates.safetensors"
    if path.is_file():
        tensors, meta = art.load_tensors(path)
        candidates = Candidates(
            tensors["harmful_mean"], tensors["harmless_mean"], tensors["directions"], meta["position_labels"]
        )
        seconds["candidates"] = meta.get("seconds", 0.0)
    else:
        candidates, seconds["candidates"] = _timed(
            compute_candidates, lm, texts(data.train_harmful), texts(data.train_harmless), bs, steps.sub("candidates")
        )
        art.save_tensors(
            path,
            {
                "harmful_mean": candidates.harmful_mean,
                "harmless_mean": candidates.harmless_mean,
                "directions": candidates.directions,
            },
            {
                "model": lm.name,
                "data": data.description,
                "position_labels": candidates.position_labels,
                "positions": list(range(-candidates.n_positions, 0)),
                "layers": "resid_pre of every layer",
                "n_harmful": len(data.train_harmful),
                "n_harmless": len(data.train_harmless),
                "seconds": seconds["candidates"],
            },
        )
    steps.finish("candidates", "candidate directions ready")

    # 3. selection --------------------------------------------------------------------------
    if (out / "selection.json").is_file() and (out / "direction.safetensors").is_file():
        selection = art.read_json(out / "selection.json")
        direction, direction_meta = art.load_direction(out / "direction.safetensors")
        seconds["selection"] = selection.get("seconds", 0.0)
    else:
        t0 = time.perf_counter()
        scored = score_candidates(
            lm,
            candidates,
            texts(data.val_harmful),
            texts(data.val_harmless),
            refusal_ids,
            config.max_layer_frac,
            bs,
            steps.sub("selection"),
        )
        try:
            sel = select(
                scored, lm.n_layers, config.max_layer_frac, config.kl_threshold, allow_no_bypass=lm.source == "tiny"
            )  # a wiring fixture refuses nothing
            if lm.source == "tiny":  # an untrained wiring fixture refuses nothing: there is no rate to lower
                verified = {"skipped": "untrained tiny model (wiring only)"}
            else:
                sel, verified = verify_by_generation(
                    lm, candidates, scored, sel, texts(data.val_harmful), is_refusal, config.max_new_tokens, bs
                )
        except ValueError as err:
            raise ExperimentError(f"no candidate direction could be selected: {err}") from None
        table = candidate_table(scored, sel, candidates.position_labels)
        selection = art.read_json_text(
            art.to_json(
                {
                    **_selection_record(sel, scored, table, candidates.position_labels),
                    "verified_by_generation": verified,
                }
            )
        )
        direction = candidates.direction(sel.layer, sel.pos_index)
        mean_target = projection_means(lm, texts(data.train_harmless), direction, batch_size=bs)
        seconds["selection"] = selection["seconds"] = time.perf_counter() - t0
        direction_meta = {
            "model": lm.name,
            "layer": sel.layer,
            "position": sel.position,
            "position_label": candidates.position_labels[sel.pos_index],
            "data": data.description,
            "n_train": [len(data.train_harmful), len(data.train_harmless)],
            "mean_target": mean_target.tolist(),
            "norm": float(direction.norm()),
            "kind": "difference of means (harmful - harmless), unnormalised; resid_pre of `layer`",
        }
        art.save_direction(out / "direction.safetensors", direction, direction_meta)
        art.write_json(out / "selection.json", selection)
    steps.finish("selection", f"chosen: layer {selection['layer']}, position {selection['position']}")
    layer = int(selection["layer"])
    mean_target = torch.tensor(direction_meta["mean_target"], dtype=torch.float64)

    # 4-5. evaluation -----------------------------------------------------------------------
    def evaluate() -> dict:
        ev = evaluate_interventions(
            lm,
            direction,
            layer,
            texts(data.test_harmful),
            texts(data.test_harmless),
            refusal_ids,
            mean_target,
            config.strength,
            config.max_new_tokens,
            bs,
            config.n_boot,
            config.seed,
            progress=steps.sub("evaluation"),
        )
        proj_h = last_token_projections(lm, texts(data.test_harmful), direction, bs)
        proj_b = last_token_projections(lm, texts(data.test_harmless), direction, bs)
        return {
            "rates": ev.rates,
            "logit_scores": ev.logit_scores,
            "kl": ev.kl,
            "cross_entropy": ev.cross_entropy,
            "generations": ev.generations,
            "layer": ev.layer,
            "strength": ev.strength,
            "projections": {"harmful": proj_h, "harmless": proj_b},
        }

    evaluation = _json_step(out, "evaluation", evaluate, seconds, steps, "interventions evaluated")

    # 4b. weight-edit frontier ---------------------------------------------------------------
    def sweep_edits() -> dict:
        return edit_frontier(
            lm,
            direction,
            mean_target,
            texts(data.val_harmful),
            texts(data.val_harmless),
            texts(data.test_harmful),
            texts(data.test_harmless),
            evaluation["generations"]["harmless"]["baseline"],
            evaluation,
            config.edit_strengths,
            config.edit_tolerance,
            config.max_new_tokens,
            bs,
            config.n_boot,
            config.seed,
            steps.sub("frontier"),
        )

    frontier = _json_step(out, "frontier", sweep_edits, seconds, steps, "edit frontier measured")

    # 4c. the chosen edit in the weights ----------------------------------------------------
    def orthogonalise() -> dict:
        edit = chosen_edit(frontier)
        report = steps.sub("orthogonalization")
        report(0.0, f"baking the chosen edit ({edit.label}) into the weights; comparing with its hooks")
        prompts = texts(data.test_harmful)[: config.n_equivalence]
        record, edited = check_orthogonalization(
            lm, direction, prompts, config.max_new_tokens, bs, edit, mean_target.float()
        )
        report(0.3, "the edited weights on the held-out prompts")
        record["held_out"] = evaluate_edited(
            edited,
            lm,
            texts(data.test_harmful),
            texts(data.test_harmless),
            config.max_new_tokens,
            bs,
            config.n_boot,
            config.seed,
        )
        record["rule"] = frontier["rule"]
        if config.export_model:
            with art.atomic_dir(out / EXPORT_DIR) as tmp:
                save_model(edited, tmp)
            record["exported_to"] = str(out / EXPORT_DIR)
        del edited
        return record

    ortho = _json_step(out, "orthogonalization", orthogonalise, seconds, steps, "chosen edit checked in the weights")

    # 6. heads ------------------------------------------------------------------------------
    def analyse() -> dict:
        n = config.n_head_prompts
        h = analyse_heads(
            lm,
            direction,
            texts(data.train_harmful)[:n],
            texts(data.train_harmless)[:n],
            texts(data.val_harmful),
            refusal_ids,
            config.head_ks,
            config.n_random_head_sets,
            config.n_permutations,
            bs,
            config.seed,
            config.max_patch_heads,
            min(config.n_boot, 1000),
            steps.sub("heads"),
        )
        return heads_record(h)

    heads = _json_step(out, "heads", analyse, seconds, steps, "head analysis done")

    # 7. generalisation ---------------------------------------------------------------------
    def generalise() -> dict:
        g = generalisation(
            lm,
            direction,
            layer,
            int(selection["pos_index"]),
            data.test_harmful,
            evaluation["generations"]["harmful"],
            candidates.harmless_mean,
            data.xstest_safe,
            data.xstest_unsafe,
            config.max_new_tokens,
            bs,
            config.n_boot,
            config.seed,
            steps.sub("generalisation"),
        )
        return {
            "per_category": g.per_category,
            "cosine_labels": g.cosine_labels,
            "cosine": g.cosine,
            "xstest": g.xstest,
        }

    gen = _json_step(out, "generalisation", generalise, seconds, steps, "generalisation done")

    # 8. beyond one direction (optional) ------------------------------------------------------
    def go_beyond() -> dict:
        from neuroscope.services.cone import refusal_cone
        from neuroscope.services.harmfulness import MAX_PROMPTS, harmfulness_vs_refusal
        from neuroscope.services.gcg import gcg_search
        from neuroscope.services.jailbreaks import jailbreak_families

        sub = steps.sub("beyond")
        n_train, n_test = min(config.n_train, MAX_PROMPTS), min(config.n_test, 32)
        harm = harmfulness_vs_refusal(
            lm,
            n_train=n_train,
            n_per_group=n_test,
            layer=layer,
            max_new_tokens=config.max_new_tokens,
            seed=config.seed,
            batch_size=bs,
            progress=lambda f, m: sub(0.4 * f, f"harmfulness vs refusal: {m}"),
            data=data,
        )
        cone = refusal_cone(
            lm,
            n_train=n_train,
            n_test=n_test,
            layer=layer,
            position=int(selection["position"]) if "position" in selection else -1,
            max_new_tokens=config.max_new_tokens,
            seed=config.seed,
            batch_size=bs,
            progress=lambda f, m: sub(0.4 + 0.3 * f, f"refusal cone: {m}"),
            data=data,
        )
        jail = jailbreak_families(
            lm,
            n_train=n_train,
            n_test=min(n_test, 16),
            layer=layer,
            max_new_tokens=config.max_new_tokens,
            seed=config.seed,
            batch_size=bs,
            progress=lambda f, m: sub(0.7 + 0.15 * f, f"jailbreak families: {m}"),
            data=data,
        )
        gcg = gcg_search(
            lm,
            jail.requests[:GCG_REQUESTS],
            steps=GCG_STEPS,
            time_budget_s=GCG_SECONDS,
            seed=config.seed,
            progress=lambda f, m: sub(0.85 + 0.15 * f, f"suffix search: {m}"),
        )
        record = gcg.to_json()
        record["histories"] = [a.history for a in gcg.attacks]
        return {"harmfulness": harm.to_json(), "cone": cone.to_json(), "jailbreaks": jail.to_json(), "gcg": record}

    beyond = None
    if config.beyond or (out / "beyond.json").is_file():
        beyond = _json_step(out, "beyond", go_beyond, seconds, steps, "harmfulness, the cone and jailbreaks measured")

    result = ExperimentResult(
        config=config,
        model_name=lm.name,
        n_layers=lm.n_layers,
        n_heads=lm.n_heads,
        data=data,
        lengths=lengths,
        refusal_ids=refusal_ids,
        refusal_tokens=lm.token_strings(refusal_ids),
        candidates=candidates,
        selection=selection,
        direction=direction,
        direction_meta=direction_meta,
        evaluation=evaluation,
        frontier=frontier,
        orthogonalization=ortho,
        heads=heads,
        generalisation=gen,
        beyond=beyond,
        seconds=seconds,
        out_dir=str(out),
    )
    write_report(result, out)
    steps.finish("report", "report written")
    return result
