"""The Explorer tab: type a prompt, see the answer and the model's internals for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from neuroscope import research, viz
from neuroscope.analysis.heads import head_label, parse_head_label
from neuroscope.explorer import Analysis, analyze, head_direction_deltas, head_logit_lens, trajectory_pca
from neuroscope.model.interventions import HeadAblation
from neuroscope.model.chat import PromptError
from neuroscope.ui.common import AppContext, TextInput, on_gpu, user_errors

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


def attention_figure(shown: "Shown", layer: int, head: int):
    if layer not in shown.attention:
        raise PromptError(f"attention for layer {layer} was not captured (prompt too long for the attention budget)")
    return viz.attention_heatmap(shown.attention[layer][head].float().numpy(), shown.tokens, layer, head)


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
    lens = head_logit_lens(lm, shown.z_last, shown.resid_last, layer, head, k)
    lines = [f"**{head_label(layer, head)}** · ‖write‖ at the last position = {lens.norm:.3f}"]
    if shown.deltas is not None:
        lines[0] += f" · Δ along the direction vs harmless = {float(shown.deltas[layer, head]):+.3f}"
    if (layer, head) in shown.ablated:
        lines[0] += " · **mean-ablated in this run** (its write shown is the mean's)"
    row = lambda pairs: " · ".join(f"`{repr(t).replace('`', chr(39))}` {v:+.2f}" for t, v in pairs)  # noqa: E731
    lines += ["", f"Raises: {row(lens.promoted)}", "", f"Lowers: {row(lens.suppressed)}", "", GUIDE["head"]]
    return "\n".join(lines)


def lens_figure(result: Analysis):
    cache = result.cache
    n = cache.n_tokens - cache.lens_start  # every position the capture decoded (Settings.lens_positions)
    tokens = cache.tokens[-n:]
    top_tokens = [[row[0] for row in cache.lens_tokens[l][-n:]] for l in range(cache.n_layers)]
    topk_tokens = [cache.lens_tokens[l][-n:] for l in range(cache.n_layers)]
    probs = cache.lens_probs[:, -n:]
    return viz.logit_lens_heatmap(
        top_tokens,
        probs[..., 0].numpy(),
        tokens,
        topk_tokens=topk_tokens,
        topk_probs=probs.numpy(),
        first_position=cache.n_tokens - n,  # numbered as in the token strip and the attention map
    )


PCA_2D, PCA_3D = "2-D", "3-D"


def pca_view(result: Analysis) -> dict[str, Any]:
    """What the PCA figure is drawn from (kept in the session so 2-D / 3-D switch without a re-run)."""
    coords, ratio, first = trajectory_pca(result.cache)
    S = result.cache.n_tokens
    post = [p - first for p in range(S - result.cache.n_post_instruction, S) if p >= first]
    return {
        "coords": coords.numpy(),
        "ratio": ratio.numpy(),
        "tokens": result.cache.tokens[first:],
        "first": first,
        "post": post,
    }


def pca_figure(view: dict[str, Any], dims: str = PCA_2D):
    draw = viz.pca_trajectory_2d if dims == PCA_2D else viz.pca_trajectory_3d
    k = 2 if dims == PCA_2D else 3
    return draw(
        view["coords"][..., :k],
        view["tokens"],
        view["ratio"][:k],
        highlight_positions=view["post"],
        first_position=view["first"],
    )


def importance_html(result: Analysis) -> str:
    cache = result.cache
    header = f"<p>Importance for the predicted next token <code>{_escape(repr(cache.target_token))}</code></p>"
    return header + viz.token_importance_html(cache.tokens, cache.importance.numpy(), value_label="grad × input")


def _escape(text: str) -> str:
    import html

    return html.escape(text)


@dataclass
class Shown:
    """What a session keeps of its last run: enough to redraw the head grid and attention maps.

    Never the whole cache (residual streams and head outputs are hundreds of MB on a 3B model);
    attention is kept in float16, and the state expires with ``STATE_TTL_S``.
    """

    head_norms: torch.Tensor  # [L, H]
    deltas: torch.Tensor | None  # [L, H] along the direction the run saw, or None
    attention: dict[int, torch.Tensor]  # layer -> [H, S, S] float16
    tokens: list[str]
    pca: dict[str, Any]  # pca_view: [L+1, S, 3] coordinates and their variance ratios (small)
    z_last: torch.Tensor  # [L, H, D] every head's z at the last position (the per-head logit lens)
    resid_last: torch.Tensor  # [d] the last layer's output there (the final norm's scale)
    ablated: tuple[tuple[int, int], ...] = ()  # heads mean-ablated in this run

    @classmethod
    def of(cls, result: Analysis, deltas: torch.Tensor | None, ablated=()) -> "Shown":
        cache = result.cache
        return cls(
            result.head_norms,
            deltas,
            {l: a.half() for l, a in cache.attention.items()},
            cache.tokens,
            pca_view(result),
            cache.z[:, :, -1].clone(),
            cache.resid_post[-1, -1].clone(),
            tuple(ablated),
        )


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
            n_new = gr.Slider(
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
    with gr.Tabs():
        with gr.Tab("Attention"):
            with gr.Row():
                with gr.Column(scale=1):
                    layer = gr.Slider(0, lm.n_layers - 1, value=0, step=1, label="Layer")
                    head = gr.Slider(0, lm.n_heads - 1, value=0, step=1, label="Head")
                    top = gr.Dropdown(
                        label="Open a head: the callout's, then the largest outputs",
                        choices=[],
                        interactive=True,
                        elem_id="explorer-top-heads",
                    )
                    gr.Markdown(GUIDE["heads"])
                with gr.Column(scale=2):
                    head_panel = gr.Markdown(elem_id="explorer-head-panel")
                    attention = gr.Plot(label="Attention pattern")
                    gr.Markdown(GUIDE["attention"])
        with gr.Tab("Logit lens"):
            lens = gr.Plot(label="Logit lens")
            gr.Markdown(GUIDE["lens"])
        with gr.Tab("Importance"):
            importance = gr.HTML()
            gr.Markdown(GUIDE["importance"])
        with gr.Tab("PCA"):
            pca_dims = gr.Radio([PCA_2D, PCA_3D], value=PCA_2D, label="Projection", elem_id="explorer-pca-dims")
            pca = gr.Plot(label="Residual trajectory (PCA)")
            gr.Markdown(GUIDE["pca"])
        with gr.Tab("JSON"):
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
        if shown.deltas is None:
            store.get(lm)  # no direction: says how to get one
            raise PromptError("this run had no direction yet: press Run again to colour by it")
        return shown.deltas

    @on_gpu
    @user_errors
    def on_run(text, max_new_tokens, colour_by=COLOUR_NORM, use_chat=True, ablate=(), progress=gr.Progress()):
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
            chat=research.as_bool(use_chat, "chat template"),
            interventions=[HeadAblation(heads=ablate, means=current.head_means)] if ablate else (),
        )
        progress(0.8, desc="Drawing")
        if result.callout:  # open the head that departs most from the harmless baseline
            l, h = result.callout[0].layer, result.callout[0].head
        else:
            best = result.top_heads(1)[0]
            l, h = best["layer"], best["head"]
        shown = Shown.of(result, None if current is None else head_direction_deltas(lm, result.cache, current), ablate)
        grid = head_figure(shown, l, h, projections(shown, colour_by))
        return (
            result.answer,
            verdict_markdown(result) + ablated_note(ablate),
            grid,
            attention_figure(shown, l, h),
            lens_figure(result),
            importance_html(result),
            pca_figure(shown.pca),
            result.to_json(),
            gr.update(value=l),
            gr.update(value=h),
            gr.update(choices=top_head_choices(result), value=None),
            shown,
            gr.update(value=PCA_2D),  # the figure above is the 2-D one
            head_panel_markdown(lm, shown, l, h),
        )

    @user_errors
    def on_select(l, h, colour_by, shown):
        if shown is None:
            raise PromptError("run a prompt first")
        l, h = lm.check_layer(int(l)), lm.check_head(int(h))
        return (
            head_figure(shown, l, h, projections(shown, colour_by)),
            attention_figure(shown, l, h),
            head_panel_markdown(lm, shown, l, h),
        )

    @on_gpu
    @user_errors
    def on_click(value, text, max_new_tokens, colour_by, use_chat, shown, ablate, progress=gr.Progress()):
        """A click on the grid opens the head; a shift-click toggles its ablation and re-runs the prompt."""
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
    run_inputs = [prompt, n_new, colour, chat, ablated]
    run.click(on_run, run_inputs, outputs, api_name="analyze", concurrency_id="model")
    prompt.submit(on_run, run_inputs, outputs, api_name=False, concurrency_id="model")
    clicked_go.click(
        on_click,
        [clicked, prompt, n_new, colour, chat, state, ablated],
        [*outputs, ablated],
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
    pca_dims.change(
        lambda d, shown: gr.update() if shown is None else pca_figure(shown.pca, d),
        [pca_dims, state],
        [pca],
        api_name=False,
    )
    return ExplorerTab(first_run=dict(fn=on_run, inputs=run_inputs, outputs=outputs))
