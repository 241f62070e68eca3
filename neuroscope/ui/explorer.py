"""The Explorer tab: type a prompt, see the answer and the model's internals for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from neuroscope import services, viz
from neuroscope.analysis.heads import head_label, parse_head_label
from neuroscope.services.explorer import LENS_SHOWN, Analysis, analyze, head_direction_deltas
from neuroscope.model.interventions import HeadAblation
from neuroscope.model.chat import PromptError
from neuroscope.services import current_session
from neuroscope.ui.common import AppContext, NumberSlider, TextInput, on_gpu, user_errors
from neuroscope.ui.sessions import DROPPED

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
COLOUR_NORM = "output norm"
COLOUR_DIRECTION = "Δ along the refusal direction vs harmless"

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
    "head": "**Per-head logit lens**: what this head writes at the last position, read through the final norm "
    "(its scale frozen at this position) and the unembedding — the tokens whose logits its write alone raises "
    "and lowers most (direct logit attribution; later layers may still change what it does).",
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


def verdict_markdown(result: Analysis) -> str:
    """The verdict, then the head callout (heads departing most from the harmless baseline)."""
    if result.refused:
        verdict = "🛑 **Refused**" + ("" if result.clean_refusal else " (refusal phrase, but not a clean refusal)")
    else:
        verdict = "✅ **Answered**"
    return (
        f"{verdict} · first-token refusal probability **{result.refusal_probability:.3f}** "
        f"(log-odds {result.refusal_log_odds:+.2f}) · next token predicted: `{result.cache.target_token!r}`"
        f"\n\n{result.callout_markdown()}"
    )


def head_figure(shown: "Shown", layer: int, head: int, projections=None):
    """Norm grid, or (``projections`` [L, H] given) each head's output projected on the refusal direction."""
    if projections is not None:
        return viz.head_grid(
            projections.numpy(),
            "Head output along the refusal direction minus its harmless mean (post-instruction positions)",
            "Δ (residual units)",
            selected=(layer, head),
            signed=True,
            outlined=shown.ablated,
        )
    return viz.head_grid(
        shown.head_norms.numpy(),
        "Head activation (contribution norm, last position)",
        "‖head output‖ (residual units)",
        selected=(layer, head),
        outlined=shown.ablated,
    )


def attention_figure(lm, shown: "Shown", layer: int, head: int):
    """The attention map of one head (its layer's attention computed on demand, then memoised)."""
    probs = shown.run().attention(lm, layer)
    return viz.attention_heatmap(probs[head].float().numpy(), shown.run().cache.tokens, layer, head)


def ablated_note(ablated) -> str:
    """The verdict's line for heads this visitor has mean-ablated (shift-click on the grid)."""
    if not ablated:
        return ""
    names = ", ".join(head_label(l, h) for l, h in ablated)
    return f"\n\n✂️ **Mean-ablated in this run:** {names} (shift-click a cell again to restore it)"


def head_panel_markdown(lm, shown: "Shown", layer: int, head: int, k: int = 8) -> str:
    """The opened head: its write along the direction (when one exists) and its per-head logit lens."""
    if not lm.has_weights:
        return f"**{head_label(layer, head)}** · the per-head logit lens needs the model's weights on this machine"
    lens = shown.run().head_lens(lm, layer, head, k)
    lines = [f"**{head_label(layer, head)}** · ‖write‖ at the last position = {lens.norm:.3f}"]
    if shown.deltas is not None:
        lines[0] += f" · Δ along the direction vs harmless = {float(shown.deltas[layer, head]):+.3f}"
    if (layer, head) in shown.ablated:
        lines[0] += " · **mean-ablated in this run** (its write shown is the mean's)"
    row = lambda pairs: " · ".join(f"`{repr(t).replace('`', chr(39))}` {v:+.2f}" for t, v in pairs)  # noqa: E731
    lines += ["", f"Raises: {row(lens.promoted)}", "", f"Lowers: {row(lens.suppressed)}", "", GUIDE["head"]]
    return "\n".join(lines)


def lens_positions(result: Analysis, n: int) -> list[int]:
    """The positions the lens view shows: the last ``n`` (Settings.lens_positions)."""
    S = result.cache.n_tokens
    return list(range(max(0, S - n), S))


def lens_figure(lm, result: Analysis, n_positions: int, k: int):
    """The logit lens at the last ``n_positions`` positions, every layer (computed on demand)."""
    view = result.lens(lm, lens_positions(result, n_positions), k)
    tokens = [result.cache.tokens[p] for p in view.positions]
    return viz.logit_lens_heatmap(
        [[row[0] for row in layer] for layer in view.tokens],
        view.probs[..., 0].numpy(),
        tokens,
        topk_tokens=view.tokens,
        topk_probs=view.probs.numpy(),
        first_position=view.positions[0],  # numbered as in the token strip and the attention map
    )


PCA_2D, PCA_3D = "2-D", "3-D"
VIEW_ATTENTION, VIEW_LENS, VIEW_IMPORTANCE, VIEW_PCA, VIEW_JSON = "Attention", "Logit lens", "Importance", "PCA", "JSON"
VIEWS = (VIEW_ATTENTION, VIEW_LENS, VIEW_IMPORTANCE, VIEW_PCA, VIEW_JSON)  # the order of the views' outputs


def pca_figure(result: Analysis, dims: str = PCA_2D):
    """The residual trajectory's PCA (fitted on demand from the cached stream, then memoised)."""
    coords, ratio, first = result.pca()
    S = result.cache.n_tokens
    post = [p - first for p in range(S - result.cache.n_post_instruction, S) if p >= first]
    draw = viz.pca_trajectory_2d if dims == PCA_2D else viz.pca_trajectory_3d
    k = 2 if dims == PCA_2D else 3
    return draw(
        coords.numpy()[..., :k],
        result.cache.tokens[first:],
        ratio.numpy()[:k],
        highlight_positions=post,
        first_position=first,
    )


def importance_html(lm, result: Analysis) -> str:
    """Gradient x input for the predicted token (a backward pass, computed when its tab opens)."""
    cache = result.cache
    header = f"<p>Importance for the predicted next token <code>{_escape(repr(cache.target_token))}</code></p>"
    return header + viz.token_importance_html(cache.tokens, result.importance(lm).numpy(), value_label="grad × input")


def _escape(text: str) -> str:
    import html

    return html.escape(text)


@dataclass(eq=False)
class Shown:
    """A session's last run: the submit's cache (``Analysis``, with the views computed so far) and what the
    grid shows. Its size is ``nbytes`` (the residual stream in float32 up to ``Settings.session_stream_mb``,
    bfloat16 beyond, plus at most ``explorer.VIEW_MEMO_MB`` of views); the app's ``RunLedger`` may
    ``release`` it for other visitors' runs, and it expires with ``STATE_TTL_S``."""

    result: Analysis | None
    deltas: torch.Tensor | None  # [L, H] along the direction the run saw, or None
    ablated: tuple[tuple[int, int], ...] = ()  # heads mean-ablated in this run
    dropped_for: int = 0  # the ledger's budget (MB) when it released this run; 0: not released

    @property
    def head_norms(self) -> torch.Tensor:
        return self.run().head_norms

    @property
    def nbytes(self) -> int:
        if self.result is None:
            return 0
        return self.result.nbytes + (0 if self.deltas is None else self.deltas.numel() * self.deltas.element_size())

    def run(self) -> Analysis:
        """The run, or a message saying why it is gone."""
        if self.result is None:
            raise PromptError(DROPPED.format(budget=self.dropped_for))
        return self.result

    def release(self, budget_mb: int = 0) -> None:
        self.result, self.deltas, self.dropped_for = None, None, budget_mb or 1


STATE_TTL_S = 1800  # a session's last run is dropped after 30 minutes without a visit


def top_head_choices(result: Analysis, k: int = 10) -> list[str]:
    """The called-out heads first (Δ and z vs harmless), then the heads with the largest output norm."""
    called = [f"{head_label(d.layer, d.head)} (callout: Δ {d.delta:+.2f}, z {d.z:+.1f})" for d in result.callout or []]
    return called + [f"{head_label(h['layer'], h['head'])} (norm {h['norm']:.3f})" for h in result.top_heads(k)]


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


def build_explorer_tab(ctx: AppContext) -> ExplorerTab:
    """Adds the Explorer (the landing view: prompt, answer, verdict, callout, head grid, then the views in
    sub-tabs) to the current ``gr.Blocks``."""
    lm, settings, store = ctx.lm, ctx.settings, ctx.directions
    state = gr.State(None, time_to_live=STATE_TTL_S)
    open_view = gr.State(VIEW_ATTENTION)  # the views sub-tab this visitor has open: the only view a run draws
    ablated = gr.State((), time_to_live=STATE_TTL_S)  # heads this visitor mean-ablates (shift-click toggles)
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
                value=COLOUR_DIRECTION if store.peek(lm) is not None else COLOUR_NORM,
                label="Colour heads by",
            )
    with gr.Tabs(selected=VIEW_ATTENTION, elem_id="explorer-views") as views:
        with gr.Tab(VIEW_ATTENTION, id=VIEW_ATTENTION) as tab_attention:
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
        with gr.Tab(VIEW_LENS, id=VIEW_LENS) as tab_lens:
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
        with gr.Tab(VIEW_IMPORTANCE, id=VIEW_IMPORTANCE) as tab_importance:
            importance = gr.HTML(elem_id="explorer-importance")
            gr.Markdown(GUIDE["importance"])
        with gr.Tab(VIEW_PCA, id=VIEW_PCA) as tab_pca:
            pca_dims = gr.Radio([PCA_2D, PCA_3D], value=PCA_2D, label="Projection", elem_id="explorer-pca-dims")
            pca = gr.Plot(label="Residual trajectory (PCA)", elem_id="explorer-pca")
            gr.Markdown(GUIDE["pca"])
        with gr.Tab(VIEW_JSON, id=VIEW_JSON) as tab_json:
            gr.Markdown("What `python -m neuroscope analyze --json` prints for this prompt.")
            summary = gr.JSON()
    for chip, (_, text, use_chat) in zip(chips, EXAMPLES):
        chip.click(
            lambda t=text, c=use_chat: (t, c and lm.has_chat_template),
            None,
            [prompt, chat],
            api_name=False,
            queue=False,
        )

    def projections(shown: Shown, colour_by: str):
        if colour_by != COLOUR_DIRECTION:
            return None
        if shown.run() is not None and shown.deltas is None:
            store.get(lm)  # no direction: says how to get one
            raise PromptError("this run had no direction yet: press Run again to colour by it")
        return shown.deltas

    @on_gpu
    @user_errors
    def on_run(text, max_new_tokens, colour_by=COLOUR_NORM, use_chat=True, ablate=(), progress=gr.Progress()):
        """The submit: the answer and ONE forward pass; the open view is drawn next (``on_view``), the others
        when their tab opens."""
        progress(0.1, desc="Running the model")
        current = store.peek(lm)
        ablate = tuple(ablate or ())
        if ablate and current is None:
            raise PromptError(
                "head ablation uses the heads' mean output on harmless prompts: compute a direction first"
            )
        result = analyze(
            lm,
            text,
            settings,
            max_new_tokens=max_new_tokens,  # checked there: 2.5 is refused, not truncated
            direction=None if current is None else current.direction,
            head_stats=None if current is None else current.heads,
            chat=services.as_bool(use_chat, "chat template"),
            interventions=[HeadAblation(heads=ablate, means=current.head_means)] if ablate else (),
        )
        progress(0.8, desc="Drawing")
        if result.callout:  # open the head that departs most from the harmless baseline
            l, h = result.callout[0].layer, result.callout[0].head
        else:
            best = result.top_heads(1)[0]
            l, h = best["layer"], best["head"]
        shown = Shown(result, None if current is None else head_direction_deltas(lm, result.cache, current), ablate)
        ctx.runs.admit(shown, current_session.get())  # within the app's memory for runs: older runs may go
        grid = head_figure(shown, l, h, projections(shown, colour_by))
        return (
            result.answer,
            verdict_markdown(result) + ablated_note(ablate),
            grid,
            None,  # the views: drawn on demand (the open one right after this)
            None,
            "",
            None,
            result.to_json(),
            gr.update(value=l),
            gr.update(value=h),
            gr.update(choices=top_head_choices(result), value=None),
            shown,
            gr.update(value=PCA_2D),
            head_panel_markdown(lm, shown, l, h),
        )

    def draw_view(view, shown, l, h, dims, n_lens=LENS_SHOWN):
        """(attention, lens, importance, pca, summary): the one view asked for, the others left as they are."""
        out = [gr.update()] * len(VIEWS)
        n_lens = services.positive_int(n_lens, "lens positions")  # checked whichever view is asked for
        if n_lens > settings.lens_positions:
            raise PromptError(f"lens positions must be at most {settings.lens_positions}, got {n_lens}")
        shown.run()  # says so if it was dropped for room
        if view == VIEW_ATTENTION:
            out[0] = attention_figure(
                lm, shown, lm.check_layer(services.as_int(l, "layer")), lm.check_head(services.as_int(h, "head"))
            )
        elif view == VIEW_LENS:
            out[1] = lens_figure(lm, shown.run(), n_lens, settings.lens_top_k)
        elif view == VIEW_IMPORTANCE:
            out[2] = importance_html(lm, shown.run())
        elif view == VIEW_PCA:
            out[3] = pca_figure(shown.run(), PCA_3D if dims == PCA_3D else PCA_2D)
        elif view == VIEW_JSON:
            out[4] = shown.run().to_json(lm, lens_k=settings.lens_top_k)
        else:
            raise PromptError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        ctx.runs.touch(shown)  # used now; its views count against the budget
        return tuple(out)

    @on_gpu
    @user_errors
    def on_view(view, shown, l, h, dims, n_lens=LENS_SHOWN):
        """Computes and draws one view of the session's last run (memoised with it)."""
        if shown is None:
            raise PromptError("run a prompt first")
        return draw_view(view, shown, l, h, dims, n_lens)

    def on_tab(view):
        @on_gpu
        @user_errors
        def on_open(shown, l, h, dims, n_lens):
            if shown is None:  # nothing run yet: the tab opens empty
                return (*[gr.update()] * len(VIEWS), view)
            return (*draw_view(view, shown, l, h, dims, n_lens), view)

        return on_open

    @on_gpu  # the attention map (one layer) and the head's logit lens run on the model's device
    @user_errors
    def on_select(l, h, colour_by, shown):
        if shown is None:
            raise PromptError("run a prompt first")
        l, h = lm.check_layer(services.as_int(l, "layer")), lm.check_head(services.as_int(h, "head"))
        out = (
            head_figure(shown, l, h, projections(shown, colour_by)),
            attention_figure(lm, shown, l, h),
            head_panel_markdown(lm, shown, l, h),
        )
        ctx.runs.touch(shown)
        return out

    @on_gpu
    @user_errors
    def on_click(value, text, max_new_tokens, colour_by, use_chat, shown, ablate, progress=gr.Progress()):
        """A click on the grid opens the head (in the Attention view); a shift-click toggles its ablation and
        re-runs the prompt."""
        label, _, action = str(value or "").strip().partition(" ")
        try:
            l, h = parse_head_label(label)
        except ValueError as err:
            raise PromptError(str(err)) from None
        l, h = lm.check_layer(l), lm.check_head(h)
        if action == "ablate":
            ablate = tuple(sorted(set(ablate or ()) ^ {(l, h)}))
            out = dict(zip(outputs, on_run(text, max_new_tokens, colour_by, use_chat, ablate, progress)))
            shown = out[state]
        elif shown is None:
            raise PromptError("run a prompt first")
        else:
            out = {}
        out[heads], out[attention], out[head_panel] = on_select(l, h, colour_by, shown)
        out[layer], out[head] = gr.update(value=l), gr.update(value=h)  # the clicked head stays open
        out[ablated] = ablate
        out[views], out[open_view] = gr.Tabs(selected=VIEW_ATTENTION), VIEW_ATTENTION
        return out

    def on_top(choice):
        if not choice:
            return gr.update(), gr.update()
        l, h = parse_head_label(choice)
        return gr.update(value=l), gr.update(value=h)

    outputs = [
        answer,
        verdict,
        heads,
        attention,
        lens,
        importance,
        pca,
        summary,
        layer,
        head,
        top,
        state,
        pca_dims,
        head_panel,
    ]
    view_outputs = [attention, lens, importance, pca, summary]
    view_inputs = [state, layer, head, pca_dims, lens_n]
    open_view_event = dict(fn=on_view, inputs=[open_view, *view_inputs], outputs=view_outputs, concurrency_id="model")
    run_inputs = [prompt, n_new, colour, chat, ablated]
    run.click(on_run, run_inputs, outputs, api_name="analyze", concurrency_id="model").success(
        **open_view_event, api_name=False
    )
    prompt.submit(on_run, run_inputs, outputs, api_name=False, concurrency_id="model").success(
        **open_view_event, api_name=False
    )
    # The API's way to a view: /view with its name ("Attention", "Logit lens", "Importance", "PCA", "JSON").
    with gr.Row(elem_classes="ns-hidden"):
        view_name = gr.Textbox(show_label=False, container=False)
        view_go = gr.Button()
    view_go.click(on_view, [view_name, *view_inputs], view_outputs, api_name="view", concurrency_id="model")
    for tab, name in (
        (tab_attention, VIEW_ATTENTION),
        (tab_lens, VIEW_LENS),
        (tab_importance, VIEW_IMPORTANCE),
        (tab_pca, VIEW_PCA),
        (tab_json, VIEW_JSON),
    ):
        tab.select(on_tab(name), view_inputs, [*view_outputs, open_view], api_name=False, concurrency_id="model")
    clicked_go.click(
        on_click,
        [clicked, prompt, n_new, colour, chat, state, ablated],
        [*outputs, ablated, views, open_view],
        api_name="click_head",
        concurrency_id="model",
    )
    select_event = dict(fn=on_select, inputs=[layer, head, colour, state], outputs=[heads, attention, head_panel])
    layer.release(**select_event, api_name="select_head")
    head.release(**select_event, api_name=False)
    colour.change(
        lambda l, h, c, r: (gr.update(),) * 3 if r is None else on_select(l, h, c, r),
        [layer, head, colour, state],
        [heads, attention, head_panel],
        api_name=False,
    )
    top.select(on_top, [top], [layer, head], api_name=False).then(**select_event, api_name=False)

    lens_n.release(
        on_view,
        [gr.State(VIEW_LENS), *view_inputs],
        view_outputs,
        api_name=False,
        concurrency_id="model",
    )

    @user_errors
    def on_dims(dims, shown):
        return gr.update() if shown is None else pca_figure(shown.run(), dims)

    pca_dims.change(on_dims, [pca_dims, state], [pca], api_name=False)
    return ExplorerTab(first_run=dict(fn=on_run, inputs=run_inputs, outputs=outputs), open_view=open_view_event)
