"""Memory held for visitors: N public visitors each run the largest induction and an Explorer prompt (with a
view opened); then their pages close. Prints the app process's resident memory before, with them, and at
intervals after they leave, and what the app's run ledger holds.

Run from the repository root::

    python -m benchmarks.bench_visitors [--model demo] [--visitors 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from neuroscope.model import _compat  # noqa: F401


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def visitors(url: str, n: int, half: int, sequences: int, conn) -> None:
    """The visitors, in their own process as browsers would be (their client objects are not the app's memory):
    a warm-up visit, then ``n`` visitors each running the largest induction and an Explorer prompt with a view
    opened. Sends their session ids and exits when told, which closes their connections."""
    import gradio_client

    warm = gradio_client.Client(url, verbose=False, download_files=False)
    warm.predict("How do I bake bread?", 8, api_name="/analyze")  # first-call allocations are not visitors'
    warm.predict(2, 16, 2, 0, api_name="/induction")
    conn.send("warm")
    conn.recv()
    clients = []
    for i in range(n):
        c = gradio_client.Client(url, verbose=False, download_files=False)
        c.predict(sequences, half, 5, i, api_name="/induction")
        c.predict(f"How do I bake bread, step {i}?", 8, api_name="/analyze")
        c.predict("Attention", 1, 1, "2-D", api_name="/view")
        clients.append(c)
    conn.send([c.session_hash for c in clients])
    conn.recv()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--visitors", type=int, default=30)
    p.add_argument("--wait", type=float, default=60.0, help="seconds to watch memory after the pages close")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import multiprocessing

    from neuroscope.config import Settings
    from neuroscope.services.induction import MAX_SEQS
    from neuroscope.ui.app import build_app, create_context, release_session

    ctx = create_context(Settings(model=args.model, public=True, max_new_tokens=8))
    demo = build_app(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    half = 128  # the induction slider's largest length
    spawn = multiprocessing.get_context("spawn")
    conn, child_end = spawn.Pipe()
    child = spawn.Process(target=visitors, args=(demo.local_url, args.visitors, half, MAX_SEQS, child_end))
    try:
        child.start()
        assert conn.recv() == "warm"
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        conn.send("go")
        sessions = conn.recv()
        gc.collect()
        during, held = rss_mb(), ctx.runs.held_bytes() / 2**20
        print(
            f"{args.visitors} visitors in {time.perf_counter() - t0:.0f} s: RSS {before:.0f} -> {during:.0f} MB "
            f"(+{during - before:.0f} MB); runs held {held:.1f} MB (budget {ctx.runs.budget_mb} MB)",
            flush=True,
        )
        conn.send("bye")
        child.join(60)
        for session_hash in sessions:  # their pages close: the unload handler's release, and gradio's closed flag
            release_session(demo, ctx, session_hash)
            session = demo.state_holder.session_data.get(session_hash)
            if session is not None:
                session.is_closed = True
        after, start = [], time.perf_counter()
        while time.perf_counter() - start < args.wait:
            time.sleep(5)
            gc.collect()
            after.append((round(time.perf_counter() - start), rss_mb(), ctx.runs.held_bytes() / 2**20))
            print(f"  {after[-1][0]:>3} s after closing: RSS {after[-1][1]:.0f} MB, runs held {after[-1][2]:.1f} MB")
        record = {
            "model": ctx.lm.name,
            "visitors": args.visitors,
            "induction": {"sequences": MAX_SEQS, "half": half},
            "rss_before_mb": before,
            "rss_with_visitors_mb": during,
            "added_mb": during - before,
            "runs_held_mb": held,
            "after_close": [{"s": s, "rss_mb": r, "runs_held_mb": h} for s, r, h in after],
            "back_within_mb": after[-1][1] - before if after else None,
        }
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(record, fh, indent=2)
        return 0
    finally:
        if child.is_alive():
            child.kill()
        demo.close()


if __name__ == "__main__":
    raise SystemExit(main())
