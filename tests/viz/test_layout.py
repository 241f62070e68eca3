"""Figures read at normal size: drawn by plotly.js in Chromium at the app's widths, no title, axis title or
annotation overlaps another or a tick label, or runs off the figure (``tests.layout.LAYOUT_CHECK``).

The figures are the app's own builders with the app's titles and real template tokens (Llama-3's
``<|end_header_id|>``), at a half-width (620 px) and a full-width (1300 px) container. The browser
test runs the same check on the running app. Skipped where Playwright or Chromium is missing
(a failure under ``NEUROSCOPE_REQUIRE_BROWSER=1``, as in CI).
"""

from __future__ import annotations


import numpy as np
import pytest

from neuroscope import viz
from tests.layout import LAYOUT_CHECK, browser_or_skip

sync_api, CHROMIUM = browser_or_skip()

TOKENS = [
    "<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>", "\n\n", "How", " can", " I", " make",
    " a", " pipe", " bomb", "?", "<|eot_id|>", "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n",
]  # fmt: skip
L, H = 28, 24  # Llama-3.2-3B's grid
rng = np.random.default_rng(0)


def _figures():
    S = len(TOKENS)
    lens_n = 15  # starts at "<|end_header_id|>", whose slanted label once ran into the y axis title
    for n_layers in (6, L):  # the demo model's short figure, where the y axis title is longest for its axis
        top = [[TOKENS[(l + p) % S] for p in range(lens_n)] for l in range(n_layers)]
        yield (
            f"logit lens, {n_layers} layers",
            viz.logit_lens_heatmap(top, rng.random((n_layers, lens_n)), TOKENS[-lens_n:], first_position=S - lens_n),
        )
    coords = rng.normal(size=(L + 1, S - 1, 2))
    coords[-1, -5:] = coords[-1, -1] + rng.normal(scale=0.01, size=(5, 2))  # the post-instruction ends bunch up
    yield (
        "PCA 2-D",
        viz.pca_trajectory_2d(coords, TOKENS[1:], np.array([0.62, 0.11]), range(S - 6, S - 1), first_position=1),
    )
    yield (
        "head grid",
        viz.head_grid(
            rng.normal(size=(L, H)),
            "Head output along the refusal direction minus its harmless mean (post-instruction positions)",
            "Δ (residual units)",
            selected=(3, 6),
            signed=True,
        ),
    )
    yield (
        "head Δ",
        viz.head_grid(
            rng.normal(size=(L, H)),
            "Head Δ along the refusal direction: harmful − harmless, post-instruction positions (dotted = ticked for ablation)",
            "Δ (residual units)",
            signed=True,
            outlined=[(1, 2)],
        ),
    )
    positions = ["<|eot_id|>", "<|start_header_id|>", "assistant", "<|end_header_id|>", "\n\n"]
    layers = list(range(22))
    yield (
        "candidates",
        viz.candidate_scores(
            layers,
            positions,
            *(rng.normal(size=(22, 5)) for _ in range(3)),
            chosen=(12, 1),
            max_layer=18,
            kl_threshold=0.1,
        ),
    )
    ks = np.array([1, 2, 4, 8, 16, 32])
    yield "top-k", viz.topk_ablation_curve(
        ks, -ks * 0.3, -ks * 0.05, -ks * 0.1, ks * 0.0,
        "Refusal score of held-out harmful prompts (log-odds)",
        title="Mean-ablating the top-k heads by activation patching vs k random heads",
        baseline=4.0,
    )  # fmt: skip
    yield "rates", viz.rates_with_intervals(
        ["harmful"], ["baseline", "ablation", "mean_ablation", "random_ablation"],
        rng.random((1, 4)), np.zeros((1, 4)), np.ones((1, 4)),
        "Necessity: refusal of held-out HARMFUL prompts (95% bootstrap CI)",
    )  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"], headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("width", [620, 1300])
def test_every_figure_reads_without_collisions(browser, width):
    page = browser.new_page(viewport={"width": width + 40, "height": 1000})
    problems = []
    for name, fig in _figures():
        html = fig.to_html(include_plotlyjs=True, full_html=True, default_width=f"{width}px")
        page.set_content(html, wait_until="load")
        page.wait_for_selector(".js-plotly-plot .infolayer")
        page.wait_for_timeout(200)
        problems += [f"{name} @ {width}px: {p}" for p in page.evaluate(LAYOUT_CHECK)]
    page.close()
    assert not problems, "\n".join(problems)
