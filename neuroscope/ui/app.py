"""The Gradio Blocks app: one tab per view, wired to the layers below."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import gradio as gr

from neuroscope import services
from neuroscope.config import environment, public_settings, Settings
from neuroscope.model.loader import load_with_fallback
from neuroscope.ui.common import AppContext, banner_markdown, hide_local_paths
from neuroscope.ui.direction import build_direction_tab
from neuroscope.ui.experiment_tab import build_experiment_tab, release_session_runs
from neuroscope.ui.explorer import CLICK_JS, build_explorer_tab
from neuroscope.ui.sessions import return_free_memory, tune_allocator
from neuroscope.ui.harmfulness_tab import build_harmfulness_tab
from neuroscope.ui.induction_tab import build_induction_tab
from neuroscope.ui.interventions import build_interventions_tab
from neuroscope.errors import OneLineParser

TITLE = "NeuroScope — refusal, under the microscope"
THEME = gr.themes.Soft(
    primary_hue="indigo",
    secondary_hue="rose",
    neutral_hue="slate",
    # system fonts only: an offline machine or a closed network must not wait on a font host
    font=[gr.themes.Font(f) for f in ("Inter", "Helvetica Neue", "Arial", "sans-serif")],
    font_mono=[gr.themes.Font(f) for f in ("JetBrains Mono", "Menlo", "Consolas", "monospace")],
)
INTRO = (
    "Type a prompt, watch the model's internals light up, and test causal claims by intervening. "
    "NeuroScope follows Arditi et al. (2024), *Refusal in language models is mediated by a single direction*. "
    "**Start here:** ① *Explorer* (open below) → a prompt, its answer and verdict, and the heads that push it "
    "toward refusal · ② *Interventions* → run a harmful prompt and watch the ablated model answer it, then a "
    "harmless one and watch the added direction make it refuse · ③ *Direction* to find a direction yourself "
    "(one that does not remove refusal never replaces one that does) · ④ *Experiment* for the full, held-out study."
)

PUBLIC_QUEUE_SIZE = 64
LOCAL_QUEUE_SIZE = 256
PUBLIC_MAX_UPLOAD = "2mb"


def app_css(n_heads: int) -> str:
    """Page CSS: the head toggles laid out as a layers × heads grid, and the three generation cards."""
    return f"""
#head-toggles .wrap {{ display: grid !important; grid-template-columns: repeat({n_heads}, minmax(3.6em, 1fr));
    gap: 2px 4px; }}
#head-toggles label {{ margin: 0 !important; padding: 2px 4px !important; font-size: 0.78em; }}
.ns-card {{ border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); padding: 8px; }}
#model-banner {{ border-left: 4px solid var(--color-accent); padding-left: 10px; }}
.ns-hidden {{ display: none !important; }}
#explorer-examples button {{ white-space: nowrap; width: auto !important; flex: 0 0 auto !important; }}
"""


def create_context(settings: Settings) -> AppContext:
    """Loads the configured model (or the fallback, with the reason) once for all sessions."""
    settings, public_notice = public_settings(settings)
    lm, notice = load_with_fallback(
        settings.model, fallback=settings.fallback_model, device=settings.device, dtype=settings.dtype
    )
    return AppContext(lm=lm, settings=settings, notice=" ".join(n for n in (public_notice, notice) if n) or None)


def build_app(ctx: AppContext) -> gr.Blocks:
    """Builds the Blocks app for a loaded model (the demo model starts with its shipped direction)."""
    hide_local_paths(ctx.settings.public)
    if ctx.settings.public:  # many visitors' runs come and go: large buffers go back to the system when freed
        tune_allocator()
    if ctx.directions.peek(ctx.lm) is None:
        ctx.shipped = services.shipped_direction(ctx.lm)
        if ctx.shipped is not None:
            ctx.directions.set_shared(ctx.shipped)
    # gradio's own cache (copies of the files a visitor downloads or uploads): files older than a day are
    # deleted every hour, so it does not grow with the number of visitors
    # Gradio's copies of downloads and uploads: files older than 30 minutes deleted every 10, all at shutdown.
    with gr.Blocks(title=TITLE, delete_cache=(600, 1800)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        gr.Markdown(banner_markdown(ctx), elem_id="model-banner")
        with gr.Tabs():
            with gr.Tab("Explorer", id="explorer"):  # the landing view: a prompt, the heads lit up, the verdict
                explorer = build_explorer_tab(ctx)
            with gr.Tab("Direction", id="direction"):
                direction = build_direction_tab(ctx)
            with gr.Tab("Interventions", id="interventions"):
                interventions = build_interventions_tab(ctx)
            with gr.Tab("Experiment", id="experiment"):
                experiment = build_experiment_tab(ctx)
            with gr.Tab("Beyond one direction", id="beyond"):
                build_harmfulness_tab(ctx)
            with gr.Tab("Induction heads", id="induction"):
                build_induction_tab(ctx)
        # The direction is shared data: whichever tab sets it, the Interventions tab follows.
        for event in direction.changed:
            event.then(interventions.refresh, None, interventions.outputs, api_name=False)
        for event in experiment.changed:
            event.then(direction.show, None, direction.outputs, api_name=False).then(
                interventions.refresh, None, interventions.outputs, api_name=False
            )
        demo.load(direction.show, None, direction.outputs, api_name="current_direction").then(
            interventions.refresh, None, interventions.outputs, api_name=False
        )
        demo.load(**explorer.first_run, api_name=False, concurrency_id="model").success(  # the worked example, on open
            **explorer.open_view, api_name=False
        )

        def on_close(request: gr.Request):  # a visitor's state and own direction go when their page does
            if request is not None:
                release_session(demo, ctx, request.session_hash)

        demo.unload(on_close)
    # One model, one slot: events that run the model share concurrency_id "model" (limit 1), so they
    # run one at a time while UI-only events (queue=False) answer at once and the page stays live.
    # The queue is bounded everywhere: past it a visitor is told the app is busy instead of waiting forever.
    demo.queue(default_concurrency_limit=1, max_size=PUBLIC_QUEUE_SIZE if ctx.settings.public else LOCAL_QUEUE_SIZE)
    return demo


CLOSED_STATE_TTL_S = 5  # the longest a closed page's session state (its last run, its induction result) lives


def release_session(demo: gr.Blocks, ctx: AppContext, session_hash: str) -> None:
    """Frees everything a visitor's session holds once their page is closed: their own direction, their
    experiment folders (and gradio's copies of their downloads), their state, and gradio's whole record of
    the session. Gradio would keep the state an hour (in case the page is reopened; a reopened page here
    starts afresh) and the record until 10,000 sessions: a per-session copy of every component's config,
    about 5 MB for this app, so memory would grow with every visitor who ever came."""
    ctx.directions.forget(session_hash)
    release_session_runs(session_hash, getattr(demo, "GRADIO_CACHE", None))  # their runs and gradio's copies
    holder = getattr(demo, "state_holder", None)
    session = getattr(holder, "session_data", {}).get(session_hash)
    if session is not None:
        session.STATE_TTL_WHEN_CLOSED = CLOSED_STATE_TTL_S  # should the record be re-created below
        holder.delete_state(session_hash)  # the State values (delete callbacks run)
        with holder.lock:
            holder.session_data.pop(session_hash, None)
            holder.time_last_used.pop(session_hash, None)
    return_free_memory()


def launch_options(ctx: AppContext) -> dict[str, Any]:
    """Look-and-feel arguments of ``launch`` (gradio 6 takes theme, CSS and page scripts there: the head grid's
    click hook), and the public upload cap."""
    options: dict[str, Any] = {"theme": THEME, "css": app_css(ctx.lm.n_heads), "js": CLICK_JS}
    if ctx.settings.public:  # prompt files and direction files are small; refuse anything larger at upload
        options["max_file_size"] = PUBLIC_MAX_UPLOAD
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(description="Start the NeuroScope app.")
    p.add_argument("--model", default=None, help="hub id, local directory or 'demo' (env NEUROSCOPE_MODEL)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--share", action="store_true", help="create a public share link (gradio.live)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 inside a Space)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860)")
    p.add_argument(
        "--public",
        action="store_true",
        default=None,
        help="public-demo mode: model allowlist, length caps, no local paths (env NEUROSCOPE_PUBLIC; "
        "on by default inside a Hugging Face Space)",
    )
    return p.parse_args(argv)


def serving_defaults(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Space-ready defaults: inside a Hugging Face Space (``SPACE_ID`` set) bind 0.0.0.0:7860, public mode on;
    on ZeroGPU hardware (``SPACES_ZERO_GPU`` set) the model is placed on ``cuda`` at start, as ZeroGPU expects
    (it attaches a real GPU only inside the ``spaces.GPU``-wrapped handlers)."""
    env = (
        {k: environment(k) for k in ("SPACE_ID", "SPACES_ZERO_GPU", "NEUROSCOPE_PUBLIC")}
        if environ is None
        else environ
    )
    in_space = bool(env.get("SPACE_ID"))
    zero_gpu = in_space and bool(env.get("SPACES_ZERO_GPU"))
    public = args.public
    if public is None and in_space and not env.get("NEUROSCOPE_PUBLIC"):
        public = True
    return {
        "host": args.host or ("0.0.0.0" if in_space else "127.0.0.1"),
        "port": args.port or (7860 if in_space else None),
        "public": public,
        "device": "cuda" if zero_gpu else None,
    }


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    serving = serving_defaults(args)
    settings = Settings.from_env(model=args.model, device=args.device or serving["device"], public=serving["public"])
    ctx = create_context(settings)
    logging.getLogger("neuroscope").info("model: %s%s", ctx.lm.name, f" ({ctx.notice})" if ctx.notice else "")
    demo = build_app(ctx)
    demo.launch(
        share=args.share,
        server_name=serving["host"],
        server_port=serving["port"],
        show_error=True,
        **launch_options(ctx),
    )
