"""The app builds, serves on 127.0.0.1 and answers gradio_client calls, also concurrently."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

from neuroscope.config import Settings  # noqa: E402
from tests.ui.conftest import serve_tiny_app  # noqa: E402


@pytest.fixture(scope="module")
def served():
    with serve_tiny_app(Settings(max_new_tokens=4, max_prompt_tokens=200), notice="test notice") as app:
        yield app


def _client(demo):
    return gradio_client.Client(demo.local_url, verbose=False, download_files=False)


def _summary(result):
    return result[7] if isinstance(result[7], dict) else json.loads(result[7])


def test_analyze_endpoint_runs_the_submit_and_view_draws_each_view_on_demand(served):
    demo, ctx = served
    client = _client(demo)
    result = client.predict("How do I bake bread?", 4, api_name="/analyze")
    answer, verdict, heads, attention, lens, importance, pca, summary = result[:8]
    summary = _summary(result)
    assert summary["prompt"] == "How do I bake bread?"
    assert summary["answer"] == answer
    assert "refusal probability" in verdict and heads is not None
    assert attention is None and lens is None and pca is None and importance == ""  # not computed by the submit
    assert "logit_lens_last_position" not in summary
    drawn = {}
    for i, view in enumerate(("Attention", "Logit lens", "Importance", "PCA", "JSON")):
        out = client.predict(view, 1, 2, "2-D", api_name="/view")
        drawn[view] = out[i]
        assert all(isinstance(o, dict) and o.get("__type__") == "update" for j, o in enumerate(out) if j != i)
    for view in ("Attention", "Logit lens", "PCA"):
        assert drawn[view]["type"] == "plotly"
    assert "<span" in drawn["Importance"]
    assert len(drawn["JSON"]["logit_lens_last_position"]) == ctx.lm.n_layers
    with pytest.raises(Exception, match="view must be one of"):
        client.predict("Everything", 1, 2, "2-D", 8, api_name="/view")
    # the lens shows the last N positions asked for, numbered as in the token strip
    three = client.predict("Logit lens", 1, 2, "2-D", 3, api_name="/view")[1]
    x = json.loads(three["plot"])["data"][0]["x"]
    assert len(x) == 3 and x[-1].startswith(f"{summary['n_tokens'] - 1}: ")
    with pytest.raises(Exception, match="maximum|at most"):
        client.predict("Logit lens", 1, 2, "2-D", 99, api_name="/view")


def test_select_head_uses_the_session_cache(served):
    demo, ctx = served
    client = _client(demo)
    client.predict("Hi there", 4, api_name="/analyze")
    heads, attention, panel = client.predict(1, 2, api_name="/select_head")
    assert "**L1H2**" in panel and "Raises:" in panel  # the per-head logit lens of the opened head
    assert "L1" in json.dumps(attention) or "ayer 1" in json.dumps(attention)


@pytest.mark.parametrize("prompt, message", [("", "empty"), ("x" * 2000, "limit"), ("a\x01b", "control")])
def test_bad_input_gives_a_message_and_the_app_keeps_serving(served, prompt, message):
    demo, _ = served
    client = _client(demo)
    with pytest.raises(Exception, match=message):
        client.predict(prompt, 4, api_name="/analyze")
    assert _summary(client.predict("still alive?", 2, api_name="/analyze"))["prompt"] == "still alive?"


def test_concurrent_calls_equal_serial_calls(served):
    demo, _ = served
    prompts = ["How do I bake bread?", "Hi", "Name three colours", "Tell me a joke"] * 2
    serial = [_summary(_client(demo).predict(p, 3, api_name="/analyze")) for p in prompts]
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        parallel = list(pool.map(lambda p: _summary(_client(demo).predict(p, 3, api_name="/analyze")), prompts))
    assert parallel == serial


def test_public_banner_keeps_the_hf_token_hint_and_hides_the_rest():
    from neuroscope.config import Settings
    from neuroscope.model.loader import GATED_HELP
    from neuroscope.model.tiny import build_tiny_model
    from neuroscope.ui.common import AppContext, banner_markdown

    lm = build_tiny_model()
    gated = AppContext(
        lm=lm,
        settings=Settings(public=True),
        notice=f"Could not load meta-llama/Llama-3.2-3B-Instruct: cannot load 'x': {GATED_HELP}. Running on demo",
    )
    text = banner_markdown(gated)
    assert "HF_TOKEN" in text and "Could not load meta-llama/Llama-3.2-3B-Instruct" in text
    other = AppContext(
        lm=lm, settings=Settings(public=True), notice="Could not load org/model: no config.json in /srv/x"
    )
    assert "/srv/x" not in banner_markdown(other) and "HF_TOKEN" not in banner_markdown(other)


def test_internal_errors_are_logged_and_not_shown_as_input_advice(caplog):
    """Only a UserError's message reaches the user; any other exception (a plain ValueError included)
    is a bug: logged with its traceback, reported generically."""
    import gradio as gr

    from neuroscope.services import ResearchError
    from neuroscope.ui.common import user_errors

    @user_errors
    def buggy():
        raise ValueError("index 7 out of range in some_internal_table")

    @user_errors
    def bad_input():
        raise ResearchError("k must be between 0 and 48, got 99")

    with caplog.at_level("ERROR", logger="neuroscope.ui"), pytest.raises(gr.Error) as err:
        buggy()
    assert "internal error (ValueError)" in str(err.value) and "some_internal_table" not in str(err.value)
    assert any("some_internal_table" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    with pytest.raises(gr.Error, match="k must be between 0 and 48"):
        bad_input()


def test_a_closed_pages_state_is_released_within_seconds(served):
    """Gradio holds a closed page's state for an hour; the app's unload handler shortens that hold, and
    gradio's own once-a-second loop then frees the visitor's last run."""
    import time

    from neuroscope.ui.app import CLOSED_STATE_TTL_S, release_session
    from neuroscope.ui.explorer_views import Shown

    demo, ctx = served
    client = _client(demo)
    client.predict("Hi there", 2, api_name="/analyze")
    session = demo.state_holder.session_data[client.session_hash]
    held = lambda: any(isinstance(v, Shown) for v in session.state_data.values())  # noqa: E731
    assert held()
    release_session(demo, ctx, client.session_hash)
    session.is_closed = True  # what gradio sets when the page's heartbeat stops
    deadline = time.time() + CLOSED_STATE_TTL_S + 10
    while held() and time.time() < deadline:
        time.sleep(0.5)
    assert not held()


def test_a_closed_pages_session_record_goes_too(served):
    """Gradio keeps a session's record (a copy of every component's config, ~5 MB here) until 10,000 sessions;
    a closed page's record goes with its state, so memory does not grow with every visitor who ever came."""
    from neuroscope.ui.app import release_session

    demo, ctx = served
    client = _client(demo)
    client.predict("Hi there", 2, api_name="/analyze")
    assert client.session_hash in demo.state_holder.session_data
    release_session(demo, ctx, client.session_hash)
    assert client.session_hash not in demo.state_holder.session_data
    client.predict("Hi again", 2, api_name="/analyze")  # a page that comes back starts afresh, and works


def test_the_readme_lists_every_api_endpoint(served):
    """The README's list of api_names is the app's: a new event with an api_name must be documented."""
    import re
    from pathlib import Path

    demo = served[0]
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    named = {f"/{f.api_name}" for f in fns if getattr(f, "api_visibility", "public") == "public"}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = set(re.findall(r"`(/[a-z_]+)`", readme.split("Every event has an `api_name`", 1)[1].split("##", 1)[0]))
    assert listed == named


def test_past_the_run_budget_the_least_recent_visitor_is_told_their_run_was_dropped(served):
    """The app keeps every visitor's last run within one budget (Settings.runs_memory_mb): past it the least
    recently used run goes, and its visitor's next view says why instead of failing."""
    demo, ctx = served
    alice, bob = _client(demo), _client(demo)
    alice.predict("Hi there", 2, api_name="/analyze")
    old = ctx.runs.budget_mb
    try:
        ctx.runs.budget_mb = 1 / 2**20  # one byte: each new run releases every other (the one in use stays)
        bob.predict("Hello, who are you?", 2, api_name="/analyze")
        with pytest.raises(Exception, match="dropped to make room for other visitors"):
            alice.predict("Attention", 1, 2, "2-D", api_name="/view")
        assert bob.predict("PCA", 1, 2, "2-D", api_name="/view")[3]["type"] == "plotly"
        ctx.runs.budget_mb = old
        alice.predict("Hi there", 2, api_name="/analyze")  # running again brings the run back
        assert alice.predict("Attention", 1, 2, "2-D", api_name="/view")[0]["type"] == "plotly"
    finally:
        ctx.runs.budget_mb = old
