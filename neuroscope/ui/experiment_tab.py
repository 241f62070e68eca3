"""The Experiment tab: the whole pipeline from the browser, its report inline, its artifacts to download."""

from __future__ import annotations

import functools

import re
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from neuroscope import services
from neuroscope.services import current_session
from neuroscope import viz
from neuroscope.config import SEED_MAX
from neuroscope.analysis.heads import permutations_for
from neuroscope.behaviours import REFUSAL, behaviour_names
from neuroscope.services.steering import behaviour_study
from neuroscope.experiment import ExperimentConfig, ExperimentError, run_experiment
from neuroscope.experiment import report as report_mod
from neuroscope.experiment.steps import EXPORT_DIR
from neuroscope.types import Progress
from neuroscope.ui.common import AppContext, NumberInput, NumberSlider, instance_dir, on_gpu, user_errors

MAX_FIGURES = 12
DOWNLOADS = (
    "direction.safetensors",
    "metrics.json",
    "report.html",
    "report.md",
    "selection.json",
    "evaluation.json",
    "frontier.json",
    "heads.json",
)
CURATED_ONLY_WARNING = (
    "⚠️ **The research prompt sets are not available here**, so the default sets are the 132 curated pairs: "
    "few prompts, harmful and harmless twins sharing most of their words. Expect a weak contrast (many harmless "
    "test prompts refused at baseline too) and a direction that may not remove refusal; such a direction does "
    "not replace one that works. For the paper's sets, set `NEUROSCOPE_DATA_DIR` (or put them in "
    "`../shared/datasets`), or run where the Hugging Face Hub is reachable."
)
DEFAULT_SOURCE = "Default sets (the research sets where a data folder or the Hub has them, else the curated pairs)"
UPLOAD_SOURCE = "Uploaded files (harmful + harmless)"

GUIDE = (
    "Runs the complete study on the loaded model: the difference-of-means candidates and Arditi et al.'s "
    "selection, then on **held-out** prompts: necessity (ablation removes refusal of harmful prompts), "
    "sufficiency (addition makes harmless prompts refused), random-direction controls, mean ablation, "
    "a refusal-vs-damage frontier of weight edits (the exact mean form, and W ← W − λ r̂r̂ᵀW at several "
    "strengths λ) with the edit to export chosen on validation, that edit checked in the weights themselves, "
    "the attention heads that write the direction (top-k vs random "
    "k, permutation test), per-category generalisation and over-refusal — every rate with a 95 % bootstrap "
    "interval. Each step saves its artifact, so re-running the same settings resumes instantly. When it "
    "finishes, its direction becomes the current one in the other tabs."
)


@dataclass
class ExperimentTab:
    changed: list  # events that set a new current direction


STUDY_GUIDE = (
    "The direction workflow is not tied to refusal. A bundled behaviour is two prompt sets and an answer "
    "judge: its direction is found the same way (difference of means, candidates scored by first-token log-"
    "odds, the selection's filters), then on held-out pairs it is **ablated** on the prompts that show the "
    "behaviour (necessity) and **added** to their counterparts (sufficiency), beside random directions "
    "treated the same way (random unit directions ablated; random directions of the same norm added at the "
    "same layer)."
)


def study_markdown(record: dict) -> str:
    d = record["direction"]
    lines = [
        f"**{record['title']}** on `{record['model']}` — direction at layer **{d['layer']}**, position "
        f"**{d['position']}** (norm {d['norm']:.3g}). {d['reason']}",
        "",
        f"| prompts | condition | share that {record['shows']} | 95% interval | n |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['prompts']} | {r['condition']} | {r['rate']:.0%} | [{r['lo']:.0%}, {r['hi']:.0%}] | {r['n']} |"
        for r in record["rows"]
    ]
    return "\n".join(lines)


def study_figure(record: dict):
    rows = record["rows"]
    groups = list(dict.fromkeys(r["prompts"] for r in rows))
    kinds = ["baseline", "direction", "random"]

    def cell(g, k, field):
        match = [r for r in rows if r["prompts"] == g and r["condition"].startswith(k)]
        return match[0][field] if match else 0.0

    values = [[cell(g, k, "rate") for k in kinds] for g in groups]
    lo = [[cell(g, k, "lo") for k in kinds] for g in groups]
    hi = [[cell(g, k, "hi") for k in kinds] for g in groups]
    return viz.rates_with_intervals(
        groups,
        ["baseline", "the direction (ablated / added)", "random directions"],
        values,
        lo,
        hi,
        f"{record['title']}: share of answers that {record['shows']}",
        y_label=f"Answers that {record['shows']} (%)",
    )


def runs_root() -> Path:
    """This app instance's experiment folders: ``<session>/<model>-<fingerprint>`` (``local`` outside a session)."""
    return instance_dir() / "runs"


def session_runs(session: str | None) -> Path:
    """A visitor's own experiment folders, removed when their page closes (``release_session_runs``)."""
    return runs_root() / _slug(session or "local")


def _downloads(folder: Path) -> list[Path]:
    """The files a session's runs offered for download (``artifact_files``), in any of its run folders."""
    if not folder.is_dir():
        return []
    return [f for run in folder.iterdir() if run.is_dir() for f in run.iterdir() if f.is_file()]


def release_session_runs(session: str | None, cache_dir: str | Path | None = None) -> None:
    """Deletes a visitor's experiment folders, and, given gradio's cache folder, gradio's copies of the files
    they downloaded from them (gradio keeps its copies up to ``delete_cache``'s age otherwise). A copy
    whose content another visitor's runs also offered (same hash, same folder in gradio's cache) is kept."""
    mine = session_runs(session)
    if cache_dir is not None:
        from gradio.processing_utils import hash_file  # how gradio names its copies (content hash)

        root = runs_root()
        others = [d for d in root.iterdir() if d.is_dir() and d != mine] if root.is_dir() else []
        try:
            kept = {hash_file(f) for d in others for f in _downloads(d)}
            for f in _downloads(mine):
                digest = hash_file(f)
                copy = Path(cache_dir) / digest
                if digest not in kept and copy.is_dir():
                    shutil.rmtree(copy, ignore_errors=True)
        except OSError:  # a folder going away under us (another visitor's prune): their cleanup, not ours
            pass
    shutil.rmtree(mine, ignore_errors=True)


RUNS_KEPT = 8  # the app's experiment folders kept (about 11 MB each); older ones go before a new run
RUNS_MIN_AGE_S = 900  # ... unless touched in the last 15 minutes (another app instance may be writing it)


def prune_runs(root: Path, keep: int = RUNS_KEPT, min_age_s: float = RUNS_MIN_AGE_S, spare: Path | None = None) -> int:
    """Deletes all but the ``keep`` most recently modified run folders under ``root`` (never ``spare``, nor
    one modified in the last ``min_age_s`` seconds); returns how many it deleted. The disk the app's
    experiments use is bounded by the number of folders, not by how many visitors run one."""
    import shutil
    import time

    if not root.is_dir():
        return 0
    folders = sorted(
        (f for f in root.iterdir() if f.is_dir() and not f.is_symlink()), key=lambda f: f.stat().st_mtime, reverse=True
    )
    now, deleted = time.time(), 0
    for folder in folders[keep:]:
        if spare is not None and folder.resolve() == spare.resolve():
            continue
        try:
            if now - folder.stat().st_mtime < min_age_s:
                continue
            shutil.rmtree(folder)
            deleted += 1
        except OSError:  # gone already, or not ours to delete
            continue
    return deleted


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def artifact_files(out: Path, export: bool) -> list[str]:
    files = [str(out / name) for name in DOWNLOADS if (out / name).is_file()]
    model_dir = out / EXPORT_DIR
    if export and model_dir.is_dir():
        archive = shutil.make_archive(str(out / EXPORT_DIR), "zip", root_dir=model_dir)
        files.append(archive)
    return files


def experiment_config(
    ctx: AppContext,
    *,
    n_train: object,
    n_val: object,
    n_test: object,
    max_new_tokens: object,
    n_boot: object,
    seed: object,
    export: object,
    harmful: object,
    harmless: object,
    source: object,
) -> ExperimentConfig:
    """The tab's inputs as the run's settings: strict numbers, public-mode caps, the app's head-analysis sizes."""
    settings, lm = ctx.settings, ctx.lm
    ints = {
        name: services.as_int(v, name)
        for name, v in (
            ("n_train", n_train),
            ("n_val", n_val),
            ("n_test", n_test),
            ("max_new_tokens", max_new_tokens),
            ("n_boot", n_boot),
        )
    }
    ints["seed"] = services.as_seed(seed)  # refused outside 0..SEED_MAX, never clamped
    if ints["max_new_tokens"] > settings.max_new_tokens_limit:
        raise ExperimentError(f"max_new_tokens must be at most {settings.max_new_tokens_limit}")
    if settings.public:
        ints = {k: v if k == "seed" else min(v, 1000) if k == "n_boot" else min(v, 64) for k, v in ints.items()}
        export = False
    upload = source == UPLOAD_SOURCE
    if upload and not (harmful and harmless):
        raise ExperimentError("upload both a harmful and a harmless prompt file")
    n = ints["n_test"]
    return ExperimentConfig(
        n_train=ints["n_train"],
        n_val=ints["n_val"],
        n_test=n,
        n_test_harmless=n,
        n_xstest=min(n, 25),
        n_head_prompts=min(ints["n_train"], 24),
        seed=ints["seed"],
        max_new_tokens=ints["max_new_tokens"],
        n_boot=ints["n_boot"],
        n_permutations=permutations_for(lm.n_layers * lm.n_heads),  # enough for the Bonferroni correction
        n_random_head_sets=4,
        n_equivalence=4,
        head_ks=(1, 2, 4, 8),
        export_model=services.as_bool(export, "export the edited model"),
        harmful_file=str(harmful) if upload else "",
        harmless_file=str(harmless) if upload else "",
    )


@dataclass
class RunView:
    """What the tab shows of a finished run."""

    status: str
    report: str
    figures: list
    files: list[str]
    metrics: dict


def run_for_visitor(ctx: AppContext, config: ExperimentConfig, progress: Progress) -> RunView:
    """Runs (or resumes) the experiment in the visitor's own folder, makes its direction current unless the
    current one works and this one does not, and returns what the tab shows."""
    lm, store = ctx.lm, ctx.directions
    mine = session_runs(current_session.get())
    out = mine / f"{_slug(lm.name)}-{config.fingerprint(lm.name)}"
    prune_runs(runs_root(), spare=mine)  # other visitors' folders past RUNS_KEPT, oldest first
    prune_runs(mine, spare=out)
    result = run_experiment(lm, config, out, progress=lambda f, m: progress(0.95 * f, m))
    progress(0.96, "making it the current direction")
    found = services.from_experiment(lm, result)
    kept = services.keep_current_reason(store.peek(lm), found)
    if kept is None:
        store.set(found)
        current = "now the current direction in every tab"
    else:
        current = (
            f"⚠️ not made current: {kept}; to use it anyway, load its `direction.safetensors` (below) in "
            "the Direction tab"
        )
    took = sum(result.seconds.values())
    where = "" if ctx.settings.public else f" Artifacts in `{out}`."
    held = result.orthogonalization["held_out"]
    status = (
        f"✅ **Done** — direction at layer **{result.selection['layer']}**, position "
        f"**{result.selection['position']}** ({current}); chosen weight edit: "
        f"**{result.orthogonalization['edit']['label']}** (held-out refusal "
        f"{report_mod.fmt_rate(held['rates']['refusal'])} in the edited weights, first-token KL "
        f"{held['kl']['mean']:.4f}); steps took {took:.0f} s in total (0 s for resumed steps).{where}"
    )
    return RunView(
        status=status,
        report=report_mod.markdown(result),
        figures=report_mod.figures(result),
        files=artifact_files(out, bool(config.export_model)),
        metrics=report_mod.metrics(result),
    )


@dataclass
class _Controls:
    """The run's inputs, in the order ``on_run`` takes them, and its button and downloads."""

    source: Any
    harmful_file: Any
    harmless_file: Any
    n_train: Any
    n_val: Any
    n_test: Any
    max_new: Any
    n_boot: Any
    seed: Any
    export: Any
    uploads: Any
    run: Any
    files: Any

    def inputs(self) -> list:
        return [getattr(self, f.name) for f in fields(self)][:10]


def _run_controls(settings: Any) -> _Controls:
    """Lays out the prompt sets, the sizes, the seed, the export box, the button and the downloads."""
    public = settings.public
    with gr.Row():
        with gr.Column(scale=3):
            sources = [DEFAULT_SOURCE] + ([] if public else [UPLOAD_SOURCE])
            source = gr.Dropdown(sources, value=DEFAULT_SOURCE, label="Prompt sets")
            with gr.Row(visible=False) as uploads:
                harmful_file = gr.File(label="Harmful prompts (txt/csv/json/jsonl)", type="filepath")
                harmless_file = gr.File(label="Harmless prompts (txt/csv/json/jsonl)", type="filepath")
            # Defaults: the CLI's (Arditi et al.'s 128 / 32), within the public caps. Smaller sets make the
            # selection noisy: on the demo model 32 / 16 can pick a neighbouring position whose
            # addition gives broken text.
            paper, (top_train, top_val, top_test) = ExperimentConfig(), ((64, 32, 32) if public else (256, 128, 100))
            with gr.Row():
                n_train = NumberSlider(
                    4,
                    top_train,
                    value=min(paper.n_train, top_train),
                    step=1,
                    label="Training prompts per side",
                    elem_id="experiment-n-train",
                )
                n_val = NumberSlider(
                    2,
                    top_val,
                    value=min(paper.n_val, top_val),
                    step=1,
                    label="Validation prompts per side",
                    elem_id="experiment-n-val",
                )
                n_test = NumberSlider(
                    2,
                    top_test,
                    value=min(paper.n_test, top_test),
                    step=1,
                    label="Held-out test prompts per side",
                    elem_id="experiment-n-test",
                )
            with gr.Row():
                max_new = NumberSlider(
                    4,
                    min(48, settings.max_new_tokens_limit),
                    value=min(24, settings.max_new_tokens_limit),
                    step=1,
                    label="Generated tokens per answer",
                )
                n_boot = NumberSlider(100, 2000, value=500, step=100, label="Bootstrap resamples")
                seed = NumberInput(value=0, label="Seed", info=f"a whole number in 0..{SEED_MAX}")
        with gr.Column(scale=1):
            export = gr.Checkbox(
                False,
                label="Also export the edited model (zip)",
                visible=not public,
                info="the frontier's chosen weight edit (form and λ recorded in its config.json): "
                "a plain transformers model that no longer refuses",
            )
            run = gr.Button("Run the experiment", variant="primary", elem_id="run-experiment")
            files = gr.File(label="Artifacts (direction, metrics, report…)", file_count="multiple", interactive=False)
    return _Controls(
        source, harmful_file, harmless_file, n_train, n_val, n_test, max_new, n_boot, seed, export, uploads, run, files
    )


def _study_section(ctx: AppContext) -> None:
    """Another bundled behaviour's necessity and sufficiency against random directions: its own accordion,
    button and endpoint (``/behaviour_study``)."""
    lm, settings = ctx.lm, ctx.settings
    others = [b for b in behaviour_names() if b != REFUSAL]
    with gr.Accordion(
        "Another behaviour: necessity and sufficiency against random directions", open=False, visible=bool(others)
    ):
        gr.Markdown(STUDY_GUIDE)
        with gr.Row():
            study_name = gr.Dropdown(others, value=others[0] if others else None, label="Behaviour", scale=2)
            study_random = NumberSlider(1, 8, value=3, step=1, label="Random control directions", scale=2)
            study_run = gr.Button("Run the behaviour study", scale=1, elem_id="run-behaviour-study")
        study_text = gr.Markdown(elem_id="behaviour-study")
        study_plot = gr.Plot(label="Behaviour rates with 95% intervals")

    @functools.partial(on_gpu, duration=600)
    @user_errors
    def on_study(name, n_random, progress=gr.Progress()):
        record = behaviour_study(
            lm,
            name,
            n_random=services.as_int(n_random, "random directions"),
            max_new_tokens=min(24, settings.max_new_tokens_limit),
            progress=lambda f, m: progress(f, desc=m),
        )
        return study_markdown(record), study_figure(record)

    study_run.click(
        on_study,
        [study_name, study_random],
        [study_text, study_plot],
        api_name="behaviour_study",
        concurrency_id="model",
    )


def build_experiment_tab(ctx: AppContext) -> ExperimentTab:
    """Adds the Experiment tab's components and events to the current ``gr.Blocks``."""
    settings = ctx.settings
    public = settings.public
    gr.Markdown(GUIDE)
    c = _run_controls(settings)
    if services.RESEARCH not in services.contrastive_set_names(public=public):
        gr.Markdown(CURATED_ONLY_WARNING, elem_id="experiment-weak-sets")
    status = gr.Markdown(elem_id="experiment-status")
    with gr.Accordion("Report", open=True):
        report = gr.Markdown(elem_id="experiment-report")
    plots = [gr.Plot(visible=False, label=f"Figure {i + 1}") for i in range(MAX_FIGURES)]
    with gr.Accordion("Headline metrics as JSON (metrics.json)", open=False):
        metrics = gr.JSON()
    _study_section(ctx)

    @functools.partial(on_gpu, duration=600)
    @user_errors
    def on_run(
        prompt_sets,
        harmful_file,
        harmless_file,
        n_train,
        n_val,
        n_test,
        max_new_tokens,
        n_boot,
        seed,
        export_model,
        progress=gr.Progress(),
    ):
        config = experiment_config(
            ctx,
            n_train=n_train,
            n_val=n_val,
            n_test=n_test,
            max_new_tokens=max_new_tokens,
            n_boot=n_boot,
            seed=seed,
            export=export_model,
            harmful=harmful_file,
            harmless=harmless_file,
            source=prompt_sets,
        )
        view = run_for_visitor(ctx, config, progress=lambda f, m: progress(f, desc=m))
        shown = view.figures[:MAX_FIGURES]
        return {
            status: view.status,
            report: view.report,
            **{
                plot: gr.update(value=shown[i], visible=True)
                if i < len(shown)
                else gr.update(value=None, visible=False)
                for i, plot in enumerate(plots)
            },
            c.files: view.files,
            metrics: view.metrics,
        }

    outputs = [status, report, *plots, c.files, metrics]
    event = c.run.click(
        on_run,
        c.inputs(),
        outputs,
        api_name="run_experiment",
        concurrency_id="model",
    )
    c.source.change(
        lambda s: gr.update(visible=s == UPLOAD_SOURCE), [c.source], [c.uploads], api_name=False, queue=False
    )
    return ExperimentTab(changed=[event])
