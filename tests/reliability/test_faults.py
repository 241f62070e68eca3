"""Faults: an experiment killed mid-run resumes without redoing finished steps and ends where an
uninterrupted run ends; an out-of-memory error inside a capture is a message, and the app serves on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroscope.model import _compat  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
from tests.experiment.test_cli import SMALL  # noqa: E402  (the same small run as the CLI tests)


def _experiment(out: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env["NEUROSCOPE_DATA_DIR"] = "none"  # the curated pairs: the same data in both runs, fast
    return subprocess.Popen(
        [sys.executable, "-m", "neuroscope", "experiment", *SMALL, "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "second" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_sigkill_mid_experiment_resumes_and_ends_identical(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    ref = _experiment(reference)
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    run = _experiment(killed)
    deadline = time.time() + 300
    while not (killed / "selection.json").is_file() and time.time() < deadline:  # a step finished, others not
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    assert (killed / "candidates.safetensors").is_file() and not (killed / "metrics.json").is_file()
    done = {p.name: p.stat().st_mtime_ns for p in killed.iterdir() if p.suffix in (".json", ".safetensors")}
    resumed = _experiment(killed)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    for name in ("candidates.safetensors", "selection.json", "direction.safetensors", "data.json"):
        assert (killed / name).stat().st_mtime_ns == done[name], f"{name} was recomputed"
    ours = json.loads((killed / "metrics.json").read_text())
    theirs = json.loads((reference / "metrics.json").read_text())
    assert _without_timings(ours) == _without_timings(theirs)


gradio_client = pytest.importorskip("gradio_client")


def test_out_of_memory_in_a_capture_is_a_message_and_the_app_serves_on(monkeypatch):
    import torch

    import neuroscope.services.explorer as explorer
    from neuroscope.config import Settings
    from tests.ui.conftest import serve_tiny_app

    real = explorer.capture_stream
    calls = {"n": 0}

    def exhausted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(explorer, "capture_stream", exhausted)
    with serve_tiny_app(Settings(max_new_tokens=2)) as (demo, _ctx):
        client = gradio_client.Client(demo.local_url, verbose=False, download_files=False)
        with pytest.raises(Exception, match="ran out of memory"):
            client.predict("How do I bake bread?", 2, "output norm", True, api_name="/analyze")
        assert client.predict("How do I bake bread?", 2, "output norm", True, api_name="/analyze")[0] is not None
