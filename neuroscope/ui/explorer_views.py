"""The Explorer's views and its handlers' work, apart from the layout: what a submit, a view, an opened head
and a clicked cell compute and show. ``ui/explorer.py`` lays the tab out and wires these to its components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from neuroscope import services, viz
from neuroscope.analysis.heads import head_label, parse_head_label
from neuroscope.model.chat import PromptError
from neuroscope.model.interventions import HeadAblation
from neuroscope.services import current_session
from neuroscope.services.explorer import Analysis, analyze, head_direction_deltas
from neuroscope.types import Progress
from neuroscope.ui.common import AppContext
from neuroscope.ui.sessions import DROPPED

COLOUR_NORM = "output norm"
COLOUR_DIRECTION = "Δ along the refusal direction vs harmless"
HEAD_GUIDE = (
    "**Per-head logit lens**: what this head writes at the last position, read through the final norm "
    "(its scale frozen at this position) and the unembedding — the tokens whose logits its write alone raises "
    "and lowers most (direct logit attribution; later layers may still change what it does)."
)


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
    lines += ["", f"Raises: {row(lens.promoted)}", "", f"Lowers: {row(lens.suppressed)}", "", HEAD_GUIDE]
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


@dataclass
class Submitted:
    """What a submit shows: the answer, the verdict and callout, the grid, the JSON, the head opened, the
    dropdown's heads, the head panel, and the session's run (``Shown``)."""

    answer: str
    verdict: str
    grid: Any
    summary: dict
    layer: int
    head: int
    choices: list[str]
    shown: Shown
    panel: str


def colour_deltas(ctx: AppContext, shown: Shown, colour_by: str) -> torch.Tensor | None:
    """The grid's colours: None for output norms, else each head's Δ along the direction this run saw."""
    if colour_by != COLOUR_DIRECTION:
        return None
    if shown.run() is not None and shown.deltas is None:
        ctx.directions.get(ctx.lm)  # no direction: says how to get one
        raise PromptError("this run had no direction yet: press Run again to colour by it")
    return shown.deltas


def submit(
    ctx: AppContext,
    text: object,
    max_new_tokens: object,
    colour_by: str,
    use_chat: object,
    ablate: Any,
    progress: Progress,
) -> Submitted:
    """The submit: the answer and ONE forward pass (the views are drawn when asked for), with the heads in
    ``ablate`` mean-ablated; the run is admitted to the app's memory for runs."""
    lm = ctx.lm
    progress(0.1, "Running the model")
    current = ctx.directions.peek(lm)
    ablate = tuple(ablate or ())
    if ablate and current is None:
        raise PromptError("head ablation uses the heads' mean output on harmless prompts: compute a direction first")
    result = analyze(
        lm,
        text,
        ctx.settings,
        max_new_tokens=max_new_tokens,  # checked there: 2.5 is refused, not truncated
        direction=None if current is None else current.direction,
        head_stats=None if current is None else current.heads,
        chat=services.as_bool(use_chat, "chat template"),
        interventions=[HeadAblation(heads=ablate, means=current.head_means)] if ablate else (),
    )
    progress(0.8, "Drawing")
    if result.callout:  # open the head that departs most from the harmless baseline
        l, h = result.callout[0].layer, result.callout[0].head
    else:
        best = result.top_heads(1)[0]
        l, h = best["layer"], best["head"]
    shown = Shown(result, None if current is None else head_direction_deltas(lm, result.cache, current), ablate)
    ctx.runs.admit(shown, current_session.get())  # within the app's memory for runs: older runs may go
    return Submitted(
        answer=result.answer,
        verdict=verdict_markdown(result) + ablated_note(ablate),
        grid=head_figure(shown, l, h, colour_deltas(ctx, shown, colour_by)),
        summary=result.to_json(),
        layer=l,
        head=h,
        choices=top_head_choices(result),
        shown=shown,
        panel=head_panel_markdown(lm, shown, l, h),
    )


def draw_view(ctx: AppContext, view: object, shown: Shown, l: object, h: object, dims: object, n_lens: object) -> tuple:
    """(attention, lens, importance, pca, summary): the one view asked for, the others left as they are."""
    lm, settings = ctx.lm, ctx.settings
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


def open_head(ctx: AppContext, l: object, h: object, colour_by: str, shown: Shown | None) -> tuple:
    """(grid, attention map, head panel) with head ``l``.``h`` opened."""
    lm = ctx.lm
    if shown is None:
        raise PromptError("run a prompt first")
    l, h = lm.check_layer(services.as_int(l, "layer")), lm.check_head(services.as_int(h, "head"))
    out = (
        head_figure(shown, l, h, colour_deltas(ctx, shown, colour_by)),
        attention_figure(lm, shown, l, h),
        head_panel_markdown(lm, shown, l, h),
    )
    ctx.runs.touch(shown)
    return out


def clicked_head(ctx: AppContext, value: object) -> tuple[int, int, bool]:
    """A grid click from the page script ("L3H6", or "L3H6 ablate" on shift-click): (layer, head, ablate)."""
    label, _, action = str(value or "").strip().partition(" ")
    try:
        l, h = parse_head_label(label)
    except ValueError as err:
        raise PromptError(str(err)) from None
    return ctx.lm.check_layer(l), ctx.lm.check_head(h), action == "ablate"
