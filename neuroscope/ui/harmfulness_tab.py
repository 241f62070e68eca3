"""The Harmfulness vs refusal tab (Zhao et al. 2025): are "this is harmful" and "I refuse" one signal or two?"""

from __future__ import annotations

import gradio as gr

from neuroscope import research, viz
from neuroscope.research.harmfulness import MAX_PROMPTS, default_layer, harmfulness_vs_refusal
from neuroscope.ui.common import AppContext, on_gpu, user_errors

GUIDE = (
    "Zhao et al. (2025) find that chat models encode **harmfulness** and **refusal** separately: harmfulness at "
    "the last token of the user's instruction, refusal at the template tokens after it. Here both are "
    "difference-of-means directions (harmful minus harmless training prompts), one per layer and position. "
    "**Left**: their cosine at every layer (1 = one signal, 0 = unrelated; the band is a 95 % bootstrap "
    "interval over prompts). **Right**: held-out prompts placed on both at one layer, on a scale where 0 is the "
    "harmless training mean and 1 the harmful one; × = the model refused (its greedy answer), ○ = it answered. "
    "A group that sits high on harmfulness but low on refusal is read as harmful yet not refused — where the two "
    "come apart (jailbreaks may do this). What it cannot show: a projection is correlational; whether steering "
    "each direction changes refusal and the model's own harmfulness judgement is a separate, causal test."
)


def build_harmfulness_tab(ctx: AppContext) -> None:
    """Adds the tab's components and events to the current ``gr.Blocks``."""
    lm = ctx.lm
    gr.Markdown(GUIDE)
    layer0, why = default_layer(lm)
    with gr.Row():
        n_train = gr.Slider(2, MAX_PROMPTS, value=64, step=1, label="Training prompts per side")
        n_group = gr.Slider(1, 128, value=32, step=1, label="Held-out prompts per group")
        layer = gr.Slider(0, lm.n_layers - 1, value=layer0, step=1, label="Map's layer", info=f"default: {why}")
        run = gr.Button("Compare the two directions", variant="primary", elem_id="harmfulness-run")
    summary = gr.Markdown(elem_id="harmfulness-summary")
    with gr.Row():
        cosine = gr.Plot(label="Cosine per layer")
        points = gr.Plot(label="Prompts on both directions")
    with gr.Accordion("The study as JSON", open=False):
        record = gr.JSON()

    @on_gpu
    @user_errors
    def on_harmfulness(n, g, l, progress=gr.Progress()):
        n, g = research.positive_int(n, "training prompts per side"), research.positive_int(g, "prompts per group")
        study = harmfulness_vs_refusal(
            lm,
            n_train=n,
            n_per_group=g,
            layer=lm.check_layer(int(l)),
            max_new_tokens=min(24, ctx.settings.max_new_tokens),
            progress=progress,
        )
        groups = [
            {
                "name": x.name,
                "x": x.coords[:, 0],
                "y": x.coords[:, 1],
                "refused": x.refused,
                "texts": x.texts,
            }
            for x in study.groups
        ]
        text = (
            f"**{study.model}** · layer {study.layer} · {study.data}\n\n"
            + "\n\n".join(study.summary().splitlines())
            + f"\n\nHarmfulness is read at {study.positions['harmfulness']}; refusal at {study.positions['refusal']}."
        )
        return (
            text,
            viz.cosine_by_layer(study.cosines, study.cosine_lo, study.cosine_hi, study.layer),
            viz.prompt_map(groups, study.layer),
            study.to_json(),
        )

    run.click(
        on_harmfulness,
        [n_train, n_group, layer],
        [summary, cosine, points, record],
        api_name="harmfulness",
        concurrency_id="model",
    )
