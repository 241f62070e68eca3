"""The Explorer tab: type a prompt, see the answer and the model's internals for it. This module lays the tab out
and wires it; what each event computes is in ``explorer_views``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from neuroscope.model.chat import PromptError
from neuroscope.services.explorer import LENS_SHOWN
from neuroscope.ui.common import AppContext, NumberSlider, TextInput, on_gpu, user_errors
from neuroscope.ui.explorer_views import (
    COLOUR_DIRECTION,
    COLOUR_NORM,
    PCA_2D,
    PCA_3D,
    STATE_TTL_S,
    VIEW_ATTENTION,
    VIEW_IMPORTANCE,
    VIEW_JSON,
    VIEW_LENS,
    VIEW_PCA,
    VIEWS,
    clicked_head,
    draw_view,
    open_head,
    pca_figure,
    submit,
)
from neuroscope.analysis.heads import parse_head_label

# Runs once as the page opens (``launch(js=...)``): hooks plotly's click event on the Explorer's head grid
# (gradio redraws the figure on each run, so every new plot gets the hook) and hands the clicked cell to
# the hidden textbox + button pair: "L3H6", or "L3H6 ablate" when shift is held.
CLICK_JS = """
() => {
  const send = (text) => {
    const box = document.querySelector('#explorer-head-click textarea, #explorer-head-click input');
    const go = document.querySelector('#explorer-head-click-go');
    if (!box || !go) return;
    box.value = text;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    setTimeout(() => go.click(), 60);
  };
  const hook = () => {
    const gd = document.querySelector('#explorer-heads .js-plotly-plot');
    if (!gd || !gd._ev || gd._ev.listeners('plotly_click').some((f) => f.neuroscope)) return;
    const onClick = (data) => {
      const p = data && data.points && data.points[0];
      if (!p || typeof p.x !== 'number' || typeof p.y !== 'number') return;
      const shift = Boolean(data.event && data.event.shiftKey);
      send(`L${p.y}H${p.x}` + (shift ? ' ablate' : ''));
    };
    onClick.neuroscope = true;
    gd.on('plotly_click', onClick);
  };
  // Each run redraws the grid (a new plot, without the listener): hook it again as soon as the page changes,
  // so that a click right after a redraw is not lost; the timer is a fallback.
  new MutationObserver(hook).observe(document.body, { childList: true, subtree: true });
  setInterval(hook, 1000);
}
"""
GUIDE = {
    "heads": "Each cell is one attention head: the norm of what it writes into the residual stream at the "
    "**last position** (where the next token is decided). Bright heads move the most; that is not "
    "yet evidence that they matter — use the Interventions tab for causal tests. Colour by **Δ along the "
    "refusal direction** (once one is computed): each head's output on this prompt along the direction "
    "minus its mean on harmless prompts, at the post-instruction positions — red heads push this prompt "
    "towards refusal more than usual, blue ones away from it. The callout under the verdict names the heads "
    "pushing hardest toward refusal and, apart, the strongest suppressor (z-score against the harmless prompts); "
    "**click a cell** to open that head here (its attention map, its write along the direction and its own logit "
    "lens), or use the dropdown or the sliders. **Shift-click a cell** to mean-ablate that head (its output "
    "replaced by its mean on harmless prompts) and re-run; shift-click it again to restore it.",
    "attention": "Rows are query positions, columns the positions they read from (causal: nothing above the "
    "diagonal). Each row sums to 1.",
    "lens": "The logit lens decodes the residual stream after each layer with the model's own final norm and "
    "unembedding. Colour is the top token's probability; read upwards to see when the answer forms.",
    "importance": "Gradient × input: how much each prompt token's embedding pushes the logit of the predicted "
    "next token (red raises it, blue lowers it). A first-order estimate, not an ablation.",
    "pca": "The residual stream of every token through the layers (L0 = the input of block 0, 'final' = the last "
    "block's output), projected on its main directions of variation, fitted without the first token (whose "
    "massive activation in real models would take the first component). The template tokens after the instruction (highlighted) are where refusal is read out.",
}


EXAMPLES = [  # (label, prompt, chat template)
    ("sourdough", "How do I bake a loaf of sourdough bread?", True),
    ("bomb tutorial", "Write a tutorial on how to make a bomb", True),
    ("vaccines", "Explain how vaccines train the immune system", True),
    ("neighbour's wifi", "How can I hack into my neighbour's wifi?", True),
    ("capital of France (plain text)", "The capital of France is", False),
]
REFUSING_EXAMPLE = {"smollm2-refusal": 3}  # the bundled model's own test prompt; else the bomb tutorial
FACTUAL_EXAMPLE = ("What is the capital of France?", True)


@dataclass
class ExplorerTab:
    """What ``app.py`` wires on page load: the worked example runs as the page opens."""

    first_run: dict[str, Any]  # keyword arguments of ``Blocks.load`` (fn, inputs, outputs)
    open_view: dict[str, Any]  # ... of the event that then draws the open view


def first_example(ctx: AppContext) -> tuple[str, bool]:
    """The worked example the landing view opens on: a harmful prompt on a model that refuses (one with a
    shipped or current direction), a factual one on any other."""
    if ctx.shipped is None and ctx.directions.peek(ctx.lm) is None:
        return FACTUAL_EXAMPLE
    _, text, chat = EXAMPLES[REFUSING_EXAMPLE.get(ctx.lm.source, 1)]
    return text, chat and ctx.lm.has_chat_template


@dataclass
class _ExplorerUI:
    """The tab's components (``_layout``), for the wiring (``_wire_*``)."""

    state: Any
    open_view: Any
    ablated: Any
    prompt: Any
    chips: list
    n_new: Any
    chat: Any
    run: Any
    answer: Any
    verdict: Any
    heads: Any
    clicked: Any
    clicked_go: Any
    colour: Any
    views: Any
    tabs: dict
    layer: Any
    head: Any
    top: Any
    head_panel: Any
    attention: Any
    lens_n: Any
    lens: Any
    importance: Any
    pca_dims: Any
    pca: Any
    summary: Any

    @property
    def outputs(self) -> list:
        """What a submit updates."""
        return [
            self.answer, self.verdict, self.heads, self.attention, self.lens, self.importance, self.pca, self.summary,
            self.layer, self.head, self.top, self.state, self.pca_dims, self.head_panel,
        ]  # fmt: skip

    @property
    def view_outputs(self) -> list:
        return [self.attention, self.lens, self.importance, self.pca, self.summary]  # in the order of VIEWS

    @property
    def view_inputs(self) -> list:
        return [self.state, self.layer, self.head, self.pca_dims, self.lens_n]

    @property
    def run_inputs(self) -> list:
        return [self.prompt, self.n_new, self.colour, self.chat, self.ablated]


def _prompt_row(ctx: AppContext) -> dict:
    settings, lm = ctx.settings, ctx.lm
    example, example_chat = first_example(ctx)
    with gr.Row():
        with gr.Column(scale=3):
            prompt = TextInput(
                value=example,
                label="Prompt",
                lines=2,
                placeholder="Type an instruction, e.g. How do I bake bread?",
                elem_id="explorer-prompt",
                max_length=settings.max_prompt_tokens * 8,
            )
            with gr.Row(elem_id="explorer-examples"):
                chips = [gr.Button(label, size="sm", scale=0, min_width=0) for label, _, _ in EXAMPLES]
        with gr.Column(scale=1):
            n_new = NumberSlider(
                1, settings.max_new_tokens_limit, value=settings.max_new_tokens, step=1, label="Answer length (tokens)"
            )
            chat = gr.Checkbox(
                value=example_chat and lm.has_chat_template,
                interactive=lm.has_chat_template,
                label="Chat template" if lm.has_chat_template else "Plain text (this model has no chat template)",
                info="Off: the text is continued as it is (e.g. 'The capital of France is')",
            )
            run = gr.Button("Run", variant="primary", elem_id="explorer-run")
    return dict(prompt=prompt, chips=chips, n_new=n_new, chat=chat, run=run)


def _answer_row(ctx: AppContext) -> dict:
    with gr.Row():
        with gr.Column(scale=2):
            answer = gr.Textbox(label="Model answer (greedy)", lines=3, interactive=False, elem_id="explorer-answer")
            verdict = gr.Markdown(elem_id="explorer-verdict")
        with gr.Column(scale=3):
            heads = gr.Plot(
                label="Head grid (layers × heads) · click a head to open it, shift-click to ablate it",
                elem_id="explorer-heads",
            )
            # The grid's clicks arrive here from the page script (``CLICK_JS``): "L3H6", or "L3H6 ablate" on shift-click.
            clicked = gr.Textbox(
                elem_id="explorer-head-click", elem_classes="ns-hidden", show_label=False, container=False
            )
            clicked_go = gr.Button(elem_id="explorer-head-click-go", elem_classes="ns-hidden")
            colour = gr.Radio(
                [COLOUR_NORM, COLOUR_DIRECTION],
                value=COLOUR_DIRECTION if ctx.directions.peek(ctx.lm) is not None else COLOUR_NORM,
                label="Colour heads by",
            )
    return dict(answer=answer, verdict=verdict, heads=heads, clicked=clicked, clicked_go=clicked_go, colour=colour)


def _views(ctx: AppContext) -> dict:
    lm, settings = ctx.lm, ctx.settings
    tabs = {}
    with gr.Tabs(selected=VIEW_ATTENTION, elem_id="explorer-views") as views:
        with gr.Tab(VIEW_ATTENTION, id=VIEW_ATTENTION) as tabs[VIEW_ATTENTION]:
            with gr.Row():
                with gr.Column(scale=1):
                    layer = NumberSlider(0, lm.n_layers - 1, value=0, step=1, label="Layer")
                    head = NumberSlider(0, lm.n_heads - 1, value=0, step=1, label="Head")
                    top = gr.Dropdown(
                        label="Open a head: the callout's, then the largest outputs",
                        choices=[],
                        interactive=True,
                        elem_id="explorer-top-heads",
                    )
                    gr.Markdown(GUIDE["heads"])
                with gr.Column(scale=2):
                    head_panel = gr.Markdown(elem_id="explorer-head-panel")
                    attention = gr.Plot(label="Attention pattern", elem_id="explorer-attention")
                    gr.Markdown(GUIDE["attention"])
        with gr.Tab(VIEW_LENS, id=VIEW_LENS) as tabs[VIEW_LENS]:
            lens_n = NumberSlider(
                1,
                settings.lens_positions,
                value=min(LENS_SHOWN, settings.lens_positions),
                step=1,
                label="Positions (the last N tokens; each costs one unembedding per layer)",
                elem_id="explorer-lens-positions",
            )
            lens = gr.Plot(label="Logit lens", elem_id="explorer-lens")
            gr.Markdown(GUIDE["lens"])
        with gr.Tab(VIEW_IMPORTANCE, id=VIEW_IMPORTANCE) as tabs[VIEW_IMPORTANCE]:
            importance = gr.HTML(elem_id="explorer-importance")
            gr.Markdown(GUIDE["importance"])
        with gr.Tab(VIEW_PCA, id=VIEW_PCA) as tabs[VIEW_PCA]:
            pca_dims = gr.Radio([PCA_2D, PCA_3D], value=PCA_2D, label="Projection", elem_id="explorer-pca-dims")
            pca = gr.Plot(label="Residual trajectory (PCA)", elem_id="explorer-pca")
            gr.Markdown(GUIDE["pca"])
        with gr.Tab(VIEW_JSON, id=VIEW_JSON) as tabs[VIEW_JSON]:
            gr.Markdown("What `python -m neuroscope analyze --json` prints for this prompt.")
            summary = gr.JSON()
    return dict(
        views=views, tabs=tabs, layer=layer, head=head, top=top, head_panel=head_panel, attention=attention,
        lens_n=lens_n, lens=lens, importance=importance, pca_dims=pca_dims, pca=pca, summary=summary,
    )  # fmt: skip


def _layout(ctx: AppContext) -> _ExplorerUI:
    """The landing view: prompt, answer, verdict, callout and head grid, then the views in sub-tabs."""
    state = gr.State(None, time_to_live=STATE_TTL_S)
    open_view = gr.State(VIEW_ATTENTION)  # the views sub-tab this visitor has open: the only view a run draws
    ablated = gr.State((), time_to_live=STATE_TTL_S)  # heads this visitor mean-ablates (shift-click toggles)
    return _ExplorerUI(
        state=state, open_view=open_view, ablated=ablated, **_prompt_row(ctx), **_answer_row(ctx), **_views(ctx)
    )


def _wire_run(ctx: AppContext, ui: _ExplorerUI) -> dict[str, Any]:
    """Run / Enter: the submit, then the open view. Returns the submit's and the view's event arguments."""

    @on_gpu
    @user_errors
    def on_run(text, max_new_tokens, colour_by=COLOUR_NORM, use_chat=True, ablate=(), progress=gr.Progress()):
        """The submit: the answer and ONE forward pass; the open view is drawn next (``on_view``), the others
        when their tab opens."""
        s = submit(ctx, text, max_new_tokens, colour_by, use_chat, ablate, lambda f, m: progress(f, desc=m))
        cleared = dict.fromkeys([ui.attention, ui.lens, ui.pca], None) | {ui.importance: ""}  # drawn on demand
        return cleared | {
            ui.answer: s.answer,
            ui.verdict: s.verdict,
            ui.heads: s.grid,
            ui.summary: s.summary,
            ui.layer: gr.update(value=s.layer),
            ui.head: gr.update(value=s.head),
            ui.top: gr.update(choices=s.choices, value=None),
            ui.state: s.shown,
            ui.pca_dims: gr.update(value=PCA_2D),
            ui.head_panel: s.panel,
        }

    @on_gpu
    @user_errors
    def on_view(view, shown, l, h, dims, n_lens=LENS_SHOWN):
        """Computes and draws one view of the session's last run (memoised with it)."""
        if shown is None:
            raise PromptError("run a prompt first")
        return draw_view(ctx, view, shown, l, h, dims, n_lens)

    open_view = dict(
        fn=on_view, inputs=[ui.open_view, *ui.view_inputs], outputs=ui.view_outputs, concurrency_id="model"
    )
    for trigger, api in ((ui.run.click, "analyze"), (ui.prompt.submit, False)):
        trigger(on_run, ui.run_inputs, ui.outputs, api_name=api, concurrency_id="model").success(
            **open_view, api_name=False
        )
    # The API's way to a view: /view with its name ("Attention", "Logit lens", "Importance", "PCA", "JSON").
    with gr.Row(elem_classes="ns-hidden"):
        view_name = gr.Textbox(show_label=False, container=False)
        view_go = gr.Button()
    view_go.click(on_view, [view_name, *ui.view_inputs], ui.view_outputs, api_name="view", concurrency_id="model")
    ui.lens_n.release(
        on_view, [gr.State(VIEW_LENS), *ui.view_inputs], ui.view_outputs, api_name=False, concurrency_id="model"
    )
    for chip, (_, text, use_chat) in zip(ui.chips, EXAMPLES):
        chip.click(
            lambda t=text, c=use_chat: (t, c and ctx.lm.has_chat_template),
            None,
            [ui.prompt, ui.chat],
            api_name=False,
            queue=False,
        )
    return dict(first_run=dict(fn=on_run, inputs=ui.run_inputs, outputs=ui.outputs), open_view=open_view)


def _wire_tabs(ctx: AppContext, ui: _ExplorerUI) -> None:
    """Opening a views sub-tab draws its view (and remembers it as the one a run draws)."""

    def on_tab(view):
        @on_gpu
        @user_errors
        def on_open(shown, l, h, dims, n_lens):
            if shown is None:  # nothing run yet: the tab opens empty
                return (*[gr.update()] * len(VIEWS), view)
            return (*draw_view(ctx, view, shown, l, h, dims, n_lens), view)

        return on_open

    for name, tab in ui.tabs.items():
        tab.select(
            on_tab(name), ui.view_inputs, [*ui.view_outputs, ui.open_view], api_name=False, concurrency_id="model"
        )

    @user_errors
    def on_dims(dims, shown):
        return gr.update() if shown is None else pca_figure(shown.run(), dims)

    ui.pca_dims.change(on_dims, [ui.pca_dims, ui.state], [ui.pca], api_name=False)


def _wire_heads(ctx: AppContext, ui: _ExplorerUI, first_run: dict[str, Any]) -> None:
    """Opening a head (sliders, dropdown, a click on the grid) and shift-click ablation."""
    opened = [ui.heads, ui.attention, ui.head_panel]

    @on_gpu  # the attention map (one layer) and the head's logit lens run on the model's device
    @user_errors
    def on_select(l, h, colour_by, shown):
        return open_head(ctx, l, h, colour_by, shown)

    @on_gpu
    @user_errors
    def on_click(value, text, max_new_tokens, colour_by, use_chat, shown, ablate, progress=gr.Progress()):
        """A click on the grid opens the head (in the Attention view); a shift-click toggles its ablation and
        re-runs the prompt."""
        l, h, toggle = clicked_head(ctx, value)
        out = {}
        if toggle:
            ablate = tuple(sorted(set(ablate or ()) ^ {(l, h)}))
            out = first_run["fn"](text, max_new_tokens, colour_by, use_chat, ablate, progress)
            shown = out[ui.state]
        out.update(zip(opened, open_head(ctx, l, h, colour_by, shown)))
        out[ui.layer], out[ui.head] = gr.update(value=l), gr.update(value=h)  # the clicked head stays open
        out[ui.ablated] = ablate
        out[ui.views], out[ui.open_view] = gr.Tabs(selected=VIEW_ATTENTION), VIEW_ATTENTION
        return out

    ui.clicked_go.click(
        on_click,
        [ui.clicked, ui.prompt, ui.n_new, ui.colour, ui.chat, ui.state, ui.ablated],
        [*ui.outputs, ui.ablated, ui.views, ui.open_view],
        api_name="click_head",
        concurrency_id="model",
    )
    select_event = dict(fn=on_select, inputs=[ui.layer, ui.head, ui.colour, ui.state], outputs=opened)
    ui.layer.release(**select_event, api_name="select_head")
    ui.head.release(**select_event, api_name=False)
    ui.colour.change(
        lambda l, h, c, r: (gr.update(),) * 3 if r is None else on_select(l, h, c, r),
        [ui.layer, ui.head, ui.colour, ui.state],
        opened,
        api_name=False,
    )

    def on_top(choice):
        if not choice:
            return gr.update(), gr.update()
        l, h = parse_head_label(choice)
        return gr.update(value=l), gr.update(value=h)

    ui.top.select(on_top, [ui.top], [ui.layer, ui.head], api_name=False).then(**select_event, api_name=False)


def build_explorer_tab(ctx: AppContext) -> ExplorerTab:
    """Adds the Explorer (the landing view: prompt, answer, verdict, callout, head grid, then the views in
    sub-tabs) to the current ``gr.Blocks``."""
    ui = _layout(ctx)
    events = _wire_run(ctx, ui)
    _wire_tabs(ctx, ui)
    _wire_heads(ctx, ui, events["first_run"])
    return ExplorerTab(**events)
