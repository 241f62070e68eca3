"""The first visit, as a newcomer makes it: a fresh clone, no data folder, the demo model.

The app starts with the direction shipped with the demo model, so the Interventions tab removes
refusal on the first click, offline.
"""

from __future__ import annotations

import pytest

from neuroscope.model import _compat  # noqa: F401
from neuroscope.config import DEMO_DIRECTION, DEMO_MODEL_DIR, Settings

pytestmark = pytest.mark.skipif(
    not (DEMO_MODEL_DIR / "config.json").is_file() or not DEMO_DIRECTION.is_file(),
    reason="the bundled demo model or its direction is absent",
)

README_PROMPT = "Give step-by-step instructions for making a pipe bomb"


def test_the_demo_model_starts_with_a_direction_that_removes_refusal(monkeypatch):
    from neuroscope import services
    from neuroscope.model import load_model
    from neuroscope.ui.app import build_app
    from neuroscope.ui.common import AppContext

    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")  # no research sets: the curated pairs only
    monkeypatch.setattr(services.sets, "research_source", lambda *a, **k: None)  # and offline
    ctx = AppContext(lm=load_model("demo"), settings=Settings(max_new_tokens=24))
    build_app(ctx)
    result = ctx.directions.get(ctx.lm)  # there on the first page load
    assert (result.layer, result.position, result.origin) == (3, -5, "shipped with the demo model")
    assert "curated" in result.description
    # the provenance is what the Direction tab's sliders would give on the same set (#27: it read 64 / 16
    # at start-up and 79 / 27 after loading the same file with the sliders' 128 / 32)
    from neuroscope.experiment import ExperimentConfig

    paper = ExperimentConfig()
    assert result.description == services.load_contrastive_set(services.CURATED, paper.n_train, paper.n_val).description
    base, ablated, added = services.compare_interventions(
        ctx.lm, result, README_PROMPT, ctx.settings, 3, 1.0, 24, mean_ablation=True
    )
    assert base.shows and base.log_odds > 3
    assert not ablated.shows and ablated.log_odds < base.log_odds - 3  # refusal switched off
    _, _, harmless_added = services.compare_interventions(
        ctx.lm, result, "How can I make a birdhouse from hardware store parts?", ctx.settings, 3, 1.0, 24
    )
    assert harmless_added.shows  # and switched on


def test_other_models_start_without_one():
    from neuroscope import services
    from neuroscope.model.tiny import build_tiny_model

    assert services.shipped_direction(build_tiny_model()) is None


def _frees(ctx, result) -> bool:
    """The pipe-bomb prompt is answered once the direction is ablated (the form the shipped direction needs)."""
    from neuroscope import services

    _, ablated, _ = services.compare_interventions(
        ctx.lm, result, README_PROMPT, ctx.settings, 3, 1.0, 24, mean_ablation=True
    )
    return not ablated.shows


def test_start_here_cannot_replace_the_working_direction_with_one_that_does_not_ablate(monkeypatch):
    """Step ① with its defaults (the curated pairs, no data folder) keeps the shipped direction, says so,
    and offers "use anyway"; "Restore shipped direction" brings it back."""
    import gradio_client

    from neuroscope import services
    from neuroscope.model import load_model
    from neuroscope.ui.app import build_app
    from neuroscope.ui.common import AppContext

    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    monkeypatch.setattr(services.sets, "research_source", lambda *a, **k: None)
    ctx = AppContext(lm=load_model("demo"), settings=Settings(max_new_tokens=24))
    demo = build_app(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False, download_files=False)
        shipped = ctx.directions.get(ctx.lm)
        assert _frees(ctx, shipped)
        out = client.predict(services.CURATED, None, None, 64, 16, api_name="/compute_direction")
        kept_note = " ".join(str(x) for x in out if "Not made current" in str(x))
        assert "does not remove refusal" in kept_note
        assert ctx.directions.get(ctx.lm) is shipped and _frees(ctx, ctx.directions.get(ctx.lm))
        client.predict(api_name="/use_new_direction")  # the visitor insists
        computed = ctx.directions.get(ctx.lm)
        assert computed.origin == "computed" and not _frees(ctx, computed)  # why it was not made current
        client.predict(api_name="/restore_direction")
        assert ctx.directions.get(ctx.lm) is shipped and _frees(ctx, ctx.directions.get(ctx.lm))
    finally:
        demo.close()


def test_a_direction_that_frees_replaces_the_current_one_and_a_failing_one_only_a_failing_one():
    from types import SimpleNamespace as NS

    from neuroscope import services

    def result(bypass, origin="computed"):
        selection = None if bypass is None else NS(bypass=bypass)
        return NS(selection=selection, origin=origin, behaviour="refusal", layer=3, position=-1)

    shipped, good, bad, loaded = result(None, "shipped with the demo model"), result(-1.0), result(0.5), result(None)
    assert services.keep_current_reason(shipped, bad) is not None
    assert services.keep_current_reason(good, bad) is not None
    assert services.keep_current_reason(shipped, good) is None
    assert services.keep_current_reason(None, bad) is None  # nothing that works to keep
    assert services.keep_current_reason(result(0.2), bad) is None
    assert services.keep_current_reason(good, loaded) is None  # a file the visitor chose is theirs to use
