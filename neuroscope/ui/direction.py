"""The Direction tab: find (or load) a behaviour's direction (refusal by default), and see where it lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from neuroscope import services, viz
from neuroscope.behaviours import REFUSAL, get_behaviour
from neuroscope.experiment import ExperimentConfig
from neuroscope.services import DirectionResult
from neuroscope.types import Progress
from neuroscope.ui.common import AppContext, NumberSlider, behaviour_words, instance_dir, on_gpu, user_errors

GUIDE = {  # str.format templates over ui.common.behaviour_words: refusal reads as the paper, others say their own
    "intro": "{lead} It is found as the difference between the mean activations on {positive} and on {negative} "
    "prompts, at every layer and at every template token after the instruction; each such *candidate* is then "
    "tested, and the best one is kept. Everything in the other tabs uses the direction chosen here.",
    "scores": "One curve per template position, one point per layer. **Bypass** (top): {score} of held-out "
    "{positive} prompts when the candidate is ablated — lower means ablation removes {the_behaviour}. **Induce** "
    "(middle): {score} of {negative} prompts when the candidate is added — higher means it causes "
    "{the_behaviour}. **KL** (bottom): how much ablation changes the first answer token on {negative} prompts — "
    "it should stay small. The ★ marks the chosen candidate: lowest bypass among those that pass the filters "
    "(late layers, shaded, are discarded; KL under the dashed line; induce > 0). Scores are log-odds of the "
    "answer starting with {tokens}: 0 is a coin flip, +2 ≈ 88 %, −2 ≈ 12 %.",
    "separation": "Each held-out prompt's last-token residual at each layer's input, projected on the (unit) "
    "direction: lines are group means, bands ±1 standard deviation. Where the red and blue bands "
    "part, the model has already told {positive} from {negative} prompts; the gap is what ablation removes "
    "and addition injects.",
    "cosine": "Cosine similarity between the candidate directions of different layers, at the chosen position "
    "(1 = same direction, 0 = unrelated). A block of high values means the layers share one {behaviour} "
    "direction; a loaded direction appears as an extra row ('loaded'). Layers whose candidate is zero "
    "(no difference yet, e.g. the embeddings of template tokens) are left out.",
}
FIGURE_GUIDES = ("scores", "separation", "cosine")  # the texts under the figures: they follow the direction shown


def guide(behaviour: str | None = None) -> dict[str, str]:
    """The tab's texts in a behaviour's words (refusal when ``None``)."""
    words = behaviour_words(behaviour)
    return {key: text.format(**words) for key, text in GUIDE.items()}


SCORES_LABEL = "Candidate scores per layer (★ = chosen)"


@dataclass
class DirectionTab:
    """Handles other tabs and ``app.py`` chain onto: the events that change the current direction."""

    changed: list  # event dependencies that set a new direction
    show: object  # fn() -> the tab's outputs for the current direction (run on page load)
    outputs: list


def status_markdown(result: DirectionResult | None) -> str:
    if result is None:
        return (
            "**No direction yet.** Choose a contrastive set and press **Compute direction** "
            "(seconds on a small model), or load a saved `.safetensors` direction."
        )
    s = result.summary()
    scores = ""
    if result.selection is not None:
        scores = f" · bypass {s['bypass']:+.2f}, induce {s['induce']:+.2f}, KL {s['kl']:.3f}"
    gap = s["separation_by_layer"][result.layer] if result.layer < len(s["separation_by_layer"]) else float("nan")
    what = "" if result.behaviour == REFUSAL else f" of **{get_behaviour(result.behaviour).title}**"
    return (
        f"**Current direction**{what} ({s['origin']}): layer **{result.layer}**, position **{result.position}**, "
        f"norm {s['norm']:.3g}{scores} · held-out gap at layer {result.layer}: {gap:+.3g}  \n"
        f"<small>{s['reason']} — data: {s['data']}</small>"
    )


def _groups(result: DirectionResult) -> tuple[str, str, str]:
    """(behaviour, prompts that show it, prompts that do not) for the figures' labels."""
    b = get_behaviour(result.behaviour)
    return b.name.replace("_", " "), b.positive, b.negative


def scores_figure(result: DirectionResult):
    if result.scores is None or result.selection is None:
        return None
    s = result.scores
    behaviour, positive, negative = _groups(result)
    return viz.candidate_scores(
        s.layers,
        result.position_labels,
        s.bypass.numpy(),
        s.induce.numpy(),
        s.kl.numpy(),
        chosen=(result.selection.layer, result.selection.pos_index),
        max_layer=result.layer_cut,
        kl_threshold=result.kl_threshold,
        title=f"{behaviour[:1].upper() + behaviour[1:]}-direction candidates (Arditi et al. selection)",
        groups=(behaviour, positive, negative),
    )


def separation_figure(result: DirectionResult):
    _, positive, negative = _groups(result)
    return viz.separation_plot(
        result.positive_proj.numpy(),
        result.negative_proj.numpy(),
        y_label="Projection on the unit direction (residual units)",
        title=f"Held-out {positive} vs {negative} prompts along the direction (last token)",
        groups=(positive, negative),
    )


def cosine_figure(result: DirectionResult):
    return viz.cosine_matrix(
        result.layer_cosines.numpy(),
        result.cosine_labels,
        title=f"Cosine similarity between layers' directions (position {result.position})",
        axis_title="Candidate direction",
    )


KEEP_DIRECTION_FILES = 8  # download files kept in the app's folder (the current direction's is always among them)


def directions_folder() -> Path:
    return instance_dir() / "directions"


def direction_file(result: DirectionResult) -> str:
    """The download file of a direction: written once per direction, not once per page load.

    Files live in one folder; beyond ``KEEP_DIRECTION_FILES`` the oldest are removed, so a public
    Space's disk does not fill up with one file per visitor.
    """
    import hashlib

    folder = directions_folder()
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{result.model_name}|{result.created!r}|{result.origin}".encode()).hexdigest()[:12]
    path = folder / f"{result.behaviour}_direction_L{result.layer}_P{result.position}_{key}.safetensors"
    if not path.is_file():
        services.save_current(result, path)
        files = sorted(folder.glob("*_direction_*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP_DIRECTION_FILES:]:
            old.unlink(missing_ok=True)
    return str(path)


def views(result: DirectionResult | None):
    """Every output of the tab for a direction (or the empty state): status, three figures, the download,
    the summary, then the figures' texts in the direction's behaviour's words."""
    texts = guide(result.behaviour if result is not None else None)
    texts = tuple(texts[key] for key in FIGURE_GUIDES)
    if result is None:
        return status_markdown(None), None, None, None, None, {}, *texts
    return (
        status_markdown(result),
        scores_figure(result),
        separation_figure(result),
        cosine_figure(result),
        direction_file(result),
        result.summary(),
        *texts,
    )


def _path(file) -> str | None:
    if file is None or file == "":
        return None
    return file if isinstance(file, str) else getattr(file, "name", None) or str(file)


# ---------------------------------------------------------------- what each button computes and shows


def _load_set(name: object, harmful: object, harmless: object, n_train: object, n_val: object) -> Any:
    return services.load_contrastive_set(
        name, n_train, n_val, harmful_file=_path(harmful), harmless_file=_path(harmless)
    )


def _decided(result: DirectionResult | None, note: str = "", pending: DirectionResult | None = None) -> tuple:
    """The views of the current direction, then the "not made current" note, the direction kept aside for
    "Use anyway", and that button's visibility."""
    return *views(result), gr.update(value=note, visible=bool(note)), pending, gr.update(visible=pending is not None)


def compute_view(ctx: AppContext, prompt_set, harmful_file, harmless_file, n_train, n_val, progress: Progress) -> tuple:
    """Computes a direction on the chosen set; makes it current unless the current one works and it does not
    (then it waits for "Use the new direction anyway")."""
    lm, store = ctx.lm, ctx.directions
    data = _load_set(prompt_set, harmful_file, harmless_file, n_train, n_val)
    result = services.find_direction(lm, data, progress=progress)
    reason = services.keep_current_reason(store.peek(lm), result)
    if reason is None:
        store.set(result)
        return _decided(result)
    note = f"⚠️ **Not made current:** {reason}. Press **Use the new direction anyway** to switch to it."
    return _decided(store.peek(lm), note, result)


def use_anyway_view(ctx: AppContext, result: DirectionResult | None) -> tuple:
    if result is None:
        raise services.ResearchError("there is no new direction waiting: compute one first")
    ctx.directions.set(result)
    return _decided(result)


def restore_view(ctx: AppContext) -> tuple:
    if ctx.shipped is None:
        raise services.ResearchError("this model has no shipped direction")
    ctx.directions.set(ctx.shipped)
    return _decided(ctx.shipped)


def load_view(
    ctx: AppContext, direction_file, prompt_set, harmful_file, harmless_file, n_train, n_val, progress: Progress
) -> tuple:
    """Loads a saved direction, described on the chosen set, and makes it current."""
    path = _path(direction_file)
    if path is None:
        raise services.ResearchError("choose a saved direction file (.safetensors) first")
    data = _load_set(prompt_set, harmful_file, harmless_file, n_train, n_val)
    result = services.direction_from_file(ctx.lm, path, data, progress=progress)
    ctx.directions.set(result)
    return views(result)


# ---------------------------------------------------------------- layout and wiring


def _set_controls(ctx: AppContext, sets: list[str], default_set: str) -> dict:
    """The prompt set (with uploads), its sizes, and the compute / load / restore buttons."""
    lm, settings = ctx.lm, ctx.settings
    max_train, max_val = (32, 16) if settings.public else (256, 64)
    paper = ExperimentConfig()  # Arditi et al.'s sizes, as in the Experiment tab and the CLI
    with gr.Row():
        with gr.Column(scale=3):
            # The paper's prompt distribution where it is installed, as the Experiment tab does.
            set_name = gr.Dropdown(
                sets,
                value=default_set,
                label="Contrastive prompt set",
                info="the two groups of instructions the means are taken over (harmful vs harmless for refusal)",
            )
            curated_note = gr.Markdown(
                services.curated_note(lm.source, ctx.shipped is not None), visible=set_name.value == services.CURATED
            )
            with gr.Row(visible=False) as uploads:
                harmful_file = gr.File(label="Harmful prompts (txt/csv/json/jsonl)", type="filepath")
                harmless_file = gr.File(label="Harmless prompts (txt/csv/json/jsonl)", type="filepath")
            with gr.Row():
                n_train = NumberSlider(
                    4, max_train, value=min(paper.n_train, max_train), step=1, label="Training prompts per side"
                )
                n_val = NumberSlider(
                    2, max_val, value=min(paper.n_val, max_val), step=1,
                    label="Validation prompts per side (scoring, separation)",
                )  # fmt: skip
        with gr.Column(scale=2):
            compute = gr.Button("Compute direction", variant="primary", elem_id="compute-direction")
            saved = gr.File(
                label="…or load a saved direction (.safetensors)", file_types=[".safetensors"], type="filepath"
            )
            load = gr.Button("Load saved direction")
            restore = gr.Button(
                "Restore shipped direction", visible=ctx.shipped is not None, elem_id="restore-direction"
            )
            download = gr.File(label="Current direction (download)", interactive=False)
    return dict(
        set_name=set_name, curated_note=curated_note, uploads=uploads, harmful_file=harmful_file,
        harmless_file=harmless_file, n_train=n_train, n_val=n_val, compute=compute, saved=saved, load=load,
        restore=restore, download=download,
    )  # fmt: skip


def _figures(texts: dict) -> dict:
    scores = gr.Plot(label=SCORES_LABEL)
    scores_text = gr.Markdown(texts["scores"])
    with gr.Row():
        with gr.Column():
            separation = gr.Plot(label="Separation per layer")
            separation_text = gr.Markdown(texts["separation"])
        with gr.Column():
            cosine = gr.Plot(label="Cosine similarity between layers")
            cosine_text = gr.Markdown(texts["cosine"])
    with gr.Accordion("Direction summary as JSON", open=False):
        summary = gr.JSON()
    return dict(
        scores=scores, scores_text=scores_text, separation=separation, separation_text=separation_text,
        cosine=cosine, cosine_text=cosine_text, summary=summary,
    )  # fmt: skip


def build_direction_tab(ctx: AppContext) -> DirectionTab:
    """Adds the Direction tab's components and events to the current ``gr.Blocks``."""
    lm, settings, store = ctx.lm, ctx.settings, ctx.directions
    sets = services.contrastive_set_names(public=settings.public)
    shared = (
        "It is yours alone: other visitors keep their own (the bundled one until they compute or load another)."
        if settings.public
        else "It is shared by everyone using this app (one per model)."
    )
    current = store.peek(lm)
    default_set = services.RESEARCH if services.RESEARCH in sets else sets[0]
    texts = guide(current.behaviour if current is not None else None)  # the figures' texts follow the direction
    intro = gr.Markdown(f"{guide(services.set_behaviour(default_set))['intro']} {shared}")  # the intro, the set
    c = _set_controls(ctx, sets, default_set)
    status = gr.Markdown(status_markdown(current), elem_id="direction-status")
    kept = gr.Markdown(visible=False, elem_id="direction-kept")
    use_anyway = gr.Button("Use the new direction anyway", visible=False, elem_id="use-anyway")
    pending = gr.State(None, time_to_live=1800)  # a computed direction that was not made current (this visitor's)
    f = _figures(texts)
    outputs = [
        status, f["scores"], f["separation"], f["cosine"], c["download"], f["summary"], f["scores_text"],
        f["separation_text"], f["cosine_text"],
    ]  # fmt: skip

    @on_gpu
    @user_errors
    def on_compute(prompt_set, harmful_file, harmless_file, n_train, n_val, progress=gr.Progress()):
        return compute_view(
            ctx, prompt_set, harmful_file, harmless_file, n_train, n_val, lambda f, m: progress(f, desc=m)
        )

    @user_errors
    def on_use_anyway(result):
        return use_anyway_view(ctx, result)

    @user_errors
    def on_restore():
        return restore_view(ctx)

    @on_gpu
    @user_errors
    def on_load(direction_file, prompt_set, harmful_file, harmless_file, n_train, n_val, progress=gr.Progress()):
        return load_view(
            ctx, direction_file, prompt_set, harmful_file, harmless_file, n_train, n_val,
            lambda f, m: progress(f, desc=m),
        )  # fmt: skip

    @user_errors
    def on_show():
        return views(store.peek(lm))

    def on_set(name):
        intro_text = f"{guide(services.set_behaviour(name))['intro']} {shared}"
        return gr.update(visible=name == services.UPLOADED), gr.update(visible=name == services.CURATED), intro_text

    set_inputs = [c["set_name"], c["harmful_file"], c["harmless_file"], c["n_train"], c["n_val"]]
    decided = [*outputs, kept, pending, use_anyway]
    model = dict(concurrency_id="model")
    computed = c["compute"].click(on_compute, set_inputs, decided, api_name="compute_direction", **model)
    adopted = use_anyway.click(on_use_anyway, [pending], decided, api_name="use_new_direction", **model)
    restored = c["restore"].click(on_restore, None, decided, api_name="restore_direction", **model)
    loaded = c["load"].click(on_load, [c["saved"], *set_inputs], outputs, api_name="load_direction", **model)
    c["set_name"].change(on_set, [c["set_name"]], [c["uploads"], c["curated_note"], intro], api_name=False, queue=False)
    return DirectionTab(changed=[computed, loaded, adopted, restored], show=on_show, outputs=outputs)
