"""50 concurrent mixed requests from 10 visitors: no errors, every result equal to the same request
alone, nobody waits forever; past the queue's bound a visitor gets a clear "busy" answer."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

from neuroscope import services  # noqa: E402
from neuroscope.config import Settings  # noqa: E402
from tests.reliability.soak import run_soak  # noqa: E402
from tests.ui.conftest import serve_tiny_app  # noqa: E402


def test_fifty_concurrent_mixed_requests(capsys):
    with serve_tiny_app(Settings(public=True, max_new_tokens=2, max_prompt_tokens=200)) as (demo, _ctx):
        report = run_soak(demo.local_url, 50, 10, (services.CURATED, None, None, 6, 3))
    assert report["errors"] == [] and report["mismatches"] == []
    with capsys.disabled():
        print(
            f"\nsoak: 50 requests, {report['throughput_per_s']:.1f}/s, p50 {report['p50_s']:.2f} s, "
            f"p95 {report['p95_s']:.2f} s"
        )


def test_past_the_queue_bound_a_visitor_is_told_the_app_is_busy(monkeypatch):
    import neuroscope.ui.app as app_module

    monkeypatch.setattr(app_module, "PUBLIC_QUEUE_SIZE", 2)
    with serve_tiny_app(Settings(public=True, max_new_tokens=2)) as (demo, _ctx):
        clients = [gradio_client.Client(demo.local_url, verbose=False, download_files=False) for _ in range(8)]

        def one(client):
            try:
                client.predict(4, 16, 2, 0, api_name="/induction")
                return None
            except Exception as err:
                return str(err)

        with cf.ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, clients))
    refused = [o for o in outcomes if o]
    assert refused and all("queue is full" in o.lower() for o in refused)
    assert len(refused) < len(outcomes)  # the ones inside the bound were served
