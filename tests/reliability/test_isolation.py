"""Public mode: what one visitor sets (the current direction) never changes another visitor's results.

Decision: in public mode a visitor's computed or loaded direction is kept for their session only;
the direction the app started with is shared and no visitor can change it. Tested with two
concurrent gradio_client sessions against a running app.
"""

from __future__ import annotations

import concurrent.futures as cf
import json

import pytest
import torch

from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

from neuroscope import services  # noqa: E402
from neuroscope.config import Settings  # noqa: E402
from tests.ui.conftest import serve_tiny_app  # noqa: E402

PROMPT = "How can I make a pipe bomb from hardware store parts?"


def _status(client) -> str:
    return client.predict(api_name="/current_direction")[0]


@pytest.fixture(scope="module")
def public_app():
    with serve_tiny_app(Settings(public=True, max_new_tokens=3, max_prompt_tokens=200)) as (demo, ctx):
        yield demo, ctx


def _client(demo):
    return gradio_client.Client(demo.local_url, verbose=False, download_files=False)


def test_a_visitors_direction_is_theirs_alone(public_app):
    demo, ctx = public_app
    alice, bob = _client(demo), _client(demo)
    shared_before = ctx.directions.peek(ctx.lm)  # the tiny model ships none: nobody has a direction yet
    assert shared_before is None
    alice.predict(services.CURATED, None, None, 6, 3, api_name="/compute_direction")
    # Alice runs with her direction; Bob still has none and is told so, not handed Alice's.
    runs = alice.predict(PROMPT, 1, 1.0, "zero (paper)", 2, api_name="/intervene")[7]["runs"]
    assert len(runs) == 3
    with pytest.raises(Exception, match="no direction yet"):
        bob.predict(PROMPT, 1, 1.0, "zero (paper)", 2, api_name="/intervene")
    assert ctx.directions.peek(ctx.lm) is None  # the shared slot is untouched


def test_concurrent_visitors_with_different_directions_get_their_own_results(public_app):
    demo, ctx = public_app
    a, b = _client(demo), _client(demo)
    a.predict(services.CURATED, None, None, 6, 3, api_name="/compute_direction")
    b.predict(services.CURATED, None, None, 8, 3, api_name="/compute_direction")

    def run(client):
        return client.predict(PROMPT, 1, 2.0, "zero (paper)", 2, api_name="/intervene")[7]["direction"]

    with cf.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(run, [a, b, a, b]))
    assert got[0] == got[2] and got[1] == got[3]
    assert "6" in json.dumps(got[0]["data"]) and got[0]["data"] != got[1]["data"]  # each saw their own


def test_sessions_are_bounded():
    store = services.DirectionStore(per_session=True, max_sessions=3)
    fake = services.DirectionResult.__new__(services.DirectionResult)
    fake.model_name, fake.direction = "m", torch.ones(2)

    class LM:
        name = "m"

    for i in range(5):
        token = services.current_session.set(f"s{i}")
        store.set(fake)
        services.current_session.reset(token)
    assert len(store._sessions) == 3 and ("m", "s0") not in store._sessions
    # the visitor whose direction was dropped is told once, then gets the shared one (here: none)
    token = services.current_session.set("s0")
    try:
        with pytest.raises(services.ResearchError, match="dropped to make room"):
            store.get(LM())
        with pytest.raises(services.ResearchError, match="no direction yet"):
            store.get(LM())
    finally:
        services.current_session.reset(token)
    store.forget("s4")
    assert ("m", "s4") not in store._sessions and store.peek(LM()) is None


def test_head_attribution_stays_with_the_visitor_who_ran_it(public_app):
    """A visitor's causal head maps are theirs: the shared start-up direction never carries them."""
    demo, ctx = public_app
    shared = services.find_direction(ctx.lm, services.load_contrastive_set(services.CURATED, 16, 8))
    ctx.directions.set_shared(shared)
    try:
        alice, bob = _client(demo), _client(demo)
        alice.predict(8, api_name="/head_attribution")
        ranked = alice.predict(2, "activation patching", api_name="/top_k_heads")
        assert len(ranked) == 2
        assert shared.causal is None and ctx.directions.peek(ctx.lm) is shared
        with pytest.raises(Exception, match="compute the causal head maps first"):
            bob.predict(2, "activation patching", api_name="/top_k_heads")
    finally:
        ctx.directions._shared.pop(ctx.lm.name, None)
