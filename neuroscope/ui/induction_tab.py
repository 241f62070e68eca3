"""The Induction heads tab: find the heads that complete repeated sequences, and test them by ablation."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import torch

from neuroscope import services
from neuroscope.config import SEED_MAX

from neuroscope import viz
from neuroscope.services.induction import MAX_HALF, MAX_SEQS, InductionResult, find_induction_heads
from neuroscope.model.chat import PromptError
from neuroscope.services import current_session
from neuroscope.types import Progress
from neuroscope.ui.common import AppContext, NumberInput, NumberSlider, on_gpu, user_errors
from neuroscope.ui.sessions import DROPPED, return_free_memory
from neuroscope.analysis.heads import head_label, parse_head_label

GUIDE = (
    "A batch of random token sequences, each repeated once. An **induction head** (Olsson et al. 2022) attends "
    "from a repeated token to the token that followed its earlier occurrence and copies it, so the model "
    "predicts the repeat it has never seen in training. **Induction score**: that attention, averaged over the "
    "repeated half (1 = all of it). The table adds the duplicate-token score (attention to the earlier "
    "occurrence itself), the previous-token score (attention to the token right before) and the copying score "
    "(the head's direct effect on the correct next token's logit, minus the average token's). The causal "
    "check mean-ablates the top heads (each replaced by its mean output on other repeated sequences) and "
    "compares the repeated half's loss increase with random head sets of the same size."
)


def table_rows(result: InductionResult) -> list[list]:
    return [
        [head_label(r["layer"], r["head"]), r["induction"], r["duplicate_token"], r["previous_token"], r["copying"]]
        for r in result.table()
    ]


def ablation_figure(result: InductionResult):
    a, r = result.ablated_increase, result.random_increase
    groups = [f"top {len(result.top)} induction heads"] + ([f"random {len(result.top)} heads"] if r else [])
    rows = [[a.mean]] + ([[r.mean]] if r else [])
    lo = [[a.lo]] + ([[r.lo]] if r else [])
    hi = [[a.hi]] + ([[r.hi]] if r else [])
    fig = viz.rates_with_intervals(
        groups,
        ["mean-ablated"],
        rows,
        lo,
        hi,
        "Repeated half's loss increase when heads are mean-ablated (95% CI)",
        y_label="Loss increase (nats)",
        as_percent=False,
    )
    return fig.update_xaxes(title_text="Heads mean-ablated")


@dataclass(eq=False)
class KeptInduction:
    """What a session keeps of its induction run: the stripes the dropdown offers (the top heads' attention on
    sequence 1, float16 copies), never the whole [L, H, S, S]; the ``RunLedger`` may ``release`` it."""

    tokens: list[str]
    stripes: dict[tuple[int, int], torch.Tensor] | None
    dropped_for: int = 0

    @classmethod
    def of(cls, result: InductionResult) -> "KeptInduction":
        return cls(result.tokens, {(l, h): result.attention[l, h].half().clone() for l, h in result.top})

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.stripes or {}).values())

    def release(self, budget_mb: int = 0) -> None:
        self.stripes, self.dropped_for = None, budget_mb or 1

    def figure(self, layer: int, head: int):
        if self.stripes is None:
            raise PromptError(DROPPED.format(budget=self.dropped_for))
        if (layer, head) not in self.stripes:
            raise PromptError(f"{head_label(layer, head)} is not one of this run's top heads")
        return viz.attention_heatmap(self.stripes[layer, head].float().numpy(), self.tokens, layer, head)


def induction_view(ctx: AppContext, n: object, t: object, kk: object, s: object, progress: Progress) -> tuple:
    """(summary, grid, table, head choices, stripe, loss, causal check, kept stripes): one induction run; only the
    top heads' attention stripes are kept (admitted to the app's memory for runs), the rest is freed."""
    n, t, kk = (services.positive_int(v, name) for v, name in ((n, "sequences"), (t, "length"), (kk, "top heads")))
    result = find_induction_heads(ctx.lm, n_seqs=n, half=t, k=kk, seed=services.as_seed(s), progress=progress)
    l, h = result.top[0]
    choices = [head_label(a, b) for a, b in result.top]
    kept = KeptInduction.of(result)
    ctx.runs.admit(kept, current_session.get())
    grid_fig = viz.head_grid(
        result.induction.numpy(),
        "Induction score (attention to the token after the earlier occurrence)",
        "induction score",
        selected=(l, h),
        outlined=result.top,
        zrange=(0.0, 1.0),  # a score in 0..1: a model without induction heads looks dark, not bright
    )
    out = (
        result.summary(),
        grid_fig,
        table_rows(result),
        gr.update(choices=choices, value=choices[0]),
        kept.figure(l, h),
        viz.loss_by_position(result.loss_by_position.numpy(), result.prefix_len + result.half - 1),
        ablation_figure(result),
        kept,
    )
    del result  # its [L, H, S, S] maps go now (only the top heads' stripes stay, in ``kept``) ...
    return_free_memory()  # ... and their pages go back to the system
    return out


def build_induction_tab(ctx: AppContext) -> None:
    """Adds the Induction heads tab's components and events to the current ``gr.Blocks``."""
    lm = ctx.lm
    state = gr.State(None, time_to_live=1800)  # the last run's top-head stripes (KeptInduction): 30 min at most
    gr.Markdown(GUIDE)
    with gr.Row():
        n_seqs = NumberSlider(1, MAX_SEQS, value=8, step=1, label="Sequences")
        half = NumberSlider(4, min(MAX_HALF, 128), value=48, step=1, label="Repeated length (tokens)")
        k = NumberSlider(
            1,
            min(20, lm.n_layers * lm.n_heads),
            value=min(5, lm.n_layers * lm.n_heads),
            step=1,
            label="Heads to ablate",
        )
        seed = NumberInput(value=0, label="Seed", info=f"a whole number in 0..{SEED_MAX}")
        run = gr.Button("Find induction heads", variant="primary", elem_id="induction-run")
    summary = gr.Markdown(elem_id="induction-summary")
    with gr.Row():
        with gr.Column():
            grid = gr.Plot(label="Induction score per head")
            table = gr.Dataframe(
                headers=["head", "induction", "duplicate token", "previous token", "copying"],
                label="Top induction heads",
                interactive=False,
            )
        with gr.Column():
            with gr.Row():
                pick = gr.Dropdown(label="Open a head's attention stripe", choices=[], interactive=True)
            stripe = gr.Plot(label="Attention (sequence 1)")
    with gr.Row():
        loss = gr.Plot(label="In-context loss")
        ablation = gr.Plot(label="Causal check")

    @on_gpu
    @user_errors
    def on_run(n, t, kk, s, progress=gr.Progress()):
        return induction_view(ctx, n, t, kk, s, progress)

    @user_errors
    def on_pick(choice, kept):
        if kept is None or not choice:
            return gr.update()
        l, h = parse_head_label(choice)
        figure = kept.figure(lm.check_layer(services.as_int(l, "layer")), lm.check_head(services.as_int(h, "head")))
        ctx.runs.touch(kept)
        return figure

    run.click(
        on_run,
        [n_seqs, half, k, seed],
        [summary, grid, table, pick, stripe, loss, ablation, state],
        api_name="induction",
        concurrency_id="model",
    )
    pick.change(on_pick, [pick, state], [stripe], api_name=False)
