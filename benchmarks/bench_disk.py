"""Disk left by experiments: N public visitors (separate sessions) each run an experiment from the app and
take its downloads; then their pages close. Prints what the app's runs folder and gradio's cache hold before,
with them, and after they leave.

Run from the repository root::

    python -m benchmarks.bench_disk [--model demo] [--experiments 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from neuroscope.model import _compat  # noqa: F401


def folder_mb(folder: str | Path | None) -> float:
    if folder is None or not Path(folder).is_dir():
        return 0.0
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--experiments", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import os
    import tempfile

    # This app's own gradio cache (the default /tmp/gradio is shared with every other gradio process), and the
    # visitors' downloads kept apart from it, as a browser on another machine would keep them.
    scratch = Path(tempfile.mkdtemp(prefix="bench-disk-"))
    os.environ["GRADIO_TEMP_DIR"] = str(scratch / "server")
    import gradio_client

    from neuroscope.config import Settings
    from neuroscope.ui.app import build_app, create_context, release_session
    from neuroscope.ui.experiment_tab import DEFAULT_SOURCE, runs_root

    ctx = create_context(Settings(model=args.model, public=True, max_new_tokens=8))
    demo = build_app(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    cache = demo.GRADIO_CACHE
    try:
        before = {"runs_mb": folder_mb(runs_root()), "gradio_cache_mb": folder_mb(cache)}
        clients, t0 = [], time.perf_counter()
        for i in range(args.experiments):
            c = gradio_client.Client(demo.local_url, verbose=False, download_files=str(scratch / f"visitor-{i}"))
            # small sizes that still select a direction, a different seed each: every run writes its own files
            c.predict(DEFAULT_SOURCE, None, None, 32, 16, 8, 8, 100, i, False, api_name="/run_experiment")
            clients.append(c)
            print(f"  experiment {i + 1}/{args.experiments} done", flush=True)
        during = {"runs_mb": folder_mb(runs_root()), "gradio_cache_mb": folder_mb(cache)}
        print(f"{args.experiments} experiments in {time.perf_counter() - t0:.0f} s: {during}", flush=True)
        for c in clients:  # their pages close: the unload handler's release
            release_session(demo, ctx, c.session_hash)
        after = {"runs_mb": folder_mb(runs_root()), "gradio_cache_mb": folder_mb(cache)}
        left = sum(after.values()) - sum(before.values())
        print(f"after their pages closed: {after}; left on disk: {left:.1f} MB")
        record = {
            "model": ctx.lm.name,
            "experiments": args.experiments,
            "before": before,
            "with_visitors": during,
            "after_close": after,
            "left_mb": left,
        }
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(record, fh, indent=2)
        return 0
    finally:
        demo.close()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
