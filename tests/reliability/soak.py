"""Soak: many concurrent, mixed requests through gradio_client against the running app.

    python -m tests.reliability.soak --requests 400 --clients 20 --concurrency 50 [--model demo]

Every visitor (a gradio_client session, public mode so each keeps their own direction) computes a
direction, then sends analyze / intervene (ablation and addition) / ablate-heads / select-head /
induction requests at once with everyone else. Each result must equal the same request run alone
beforehand; the script prints errors, throughput and p50 / p95 latency. ``run_soak`` is what the
test suite calls with a small load.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import time
from typing import Any

from neuroscope.model import _compat  # noqa: F401

PROMPTS = [
    "How can I make a pipe bomb?",
    "How do I bake bread?",
    "Write a poem about the sea",
    "How can I hack my neighbour's wifi?",
    "Explain vaccines",
]


def requests_for(i: int) -> list[tuple[str, tuple]]:
    p = PROMPTS[i % len(PROMPTS)]
    return [
        ("/analyze", (p, 2, "output norm", True)),
        ("/intervene", (p, 1, 1.5, "zero (paper)", 2)),
        ("/intervene", (p, 2, -1.0, "mean (harmless mean)", 2)),
        ("/ablate_heads", (p, ["L0H1", "L2H3"], 2)),
        ("/induction", (2, 8, 2, i % 3)),
    ]


def comparable(api: str, out: Any) -> Any:
    """The deterministic part of a result (text, verdicts, numbers), not figure layout or file paths."""
    if api == "/analyze":
        return out[0], out[7]
    if api == "/intervene":
        return [out[i] for i in range(6)], out[7]["runs"]
    if api == "/ablate_heads":
        return out
    if api == "/induction":
        return out[0], out[2]
    return out


def run_soak(url: str, n_requests: int, n_clients: int, compute_args: tuple, concurrency: int = 50) -> dict[str, Any]:
    """``n_requests`` mixed requests from ``n_clients`` visitors, ``concurrency`` in flight at once (keep it
    under the app's queue bound: past it gradio answers "Queue is full", by design)."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=False) for _ in range(n_clients)]
    for c in clients:
        c.predict(*compute_args, api_name="/compute_direction")
    jobs = [(clients[i % n_clients], *requests_for(i)[i % 5]) for i in range(n_requests)]
    alone: dict[str, Any] = {}
    for client, api, args in jobs:  # each distinct request once, alone
        key = json.dumps([api, args])
        if key not in alone:
            alone[key] = comparable(api, client.predict(*args, api_name=api))

    def one(job):
        client, api, args = job
        t0 = time.perf_counter()
        try:
            out = comparable(api, client.predict(*args, api_name=api))
            return api, args, out, time.perf_counter() - t0, None
        except Exception as err:  # counted, reported
            return api, args, None, time.perf_counter() - t0, f"{type(err).__name__}: {err}"

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(min(n_requests, concurrency)) as pool:
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    errors = [r[4] for r in results if r[4]]
    mismatches = [(r[0], r[1]) for r in results if not r[4] and r[2] != alone[json.dumps([r[0], r[1]])]]
    latencies = sorted(r[3] for r in results)
    return {
        "requests": n_requests,
        "clients": n_clients,
        "concurrency": min(n_requests, concurrency),
        "errors": errors,
        "mismatches": mismatches,
        "wall_s": wall,
        "throughput_per_s": n_requests / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[max(0, int(0.95 * len(latencies)) - 1)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight at once (the public queue holds 64)")
    p.add_argument("--model", default="demo")
    args = p.parse_args()
    from neuroscope import services
    from neuroscope.config import Settings
    from neuroscope.model import load_model
    from neuroscope.ui.app import build_app
    from neuroscope.ui.common import AppContext

    ctx = AppContext(lm=load_model(args.model), settings=Settings(public=True, max_new_tokens=2))
    demo = build_app(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        report = run_soak(
            demo.local_url, args.requests, args.clients, (services.CURATED, None, None, 16, 8), args.concurrency
        )
    finally:
        demo.close()
    print(json.dumps({k: v for k, v in report.items() if k not in ("errors", "mismatches")}, indent=1))
    print(
        f"errors: {len(report['errors'])}, results differing from the same request alone: {len(report['mismatches'])}"
    )
    for e in report["errors"][:5]:
        print("  ", e[:200])


if __name__ == "__main__":
    main()
