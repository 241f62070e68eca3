"""ZeroGPU: every model-running handler is wrapped with ``spaces.GPU`` where ``spaces`` is installed,
and the app works the same where it is not (a stub module stands in for the package)."""

from __future__ import annotations

import functools
import sys
import types

import pytest

from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

MODEL_HANDLERS = {
    "on_compute",
    "on_load",
    "on_run",
    "on_intervene",
    "on_causal",
    "on_ablate",
    "on_attention",
    "on_study",
    "on_harmfulness",
    "on_cone",
    "on_jailbreak",
    "on_gcg",
    "on_steer",
    "on_push",
    "on_click",  # a shift-clicked grid cell re-runs the prompt with that head ablated
    "on_view",  # the Explorer's views run the model on demand (attention: one layer; importance: a backward pass)
    "on_open",  # ... when their tab opens
    "on_select",  # opening a head computes its layer's attention and its own logit lens
}


def _stub_spaces(calls: list[str]) -> types.ModuleType:
    module = types.ModuleType("spaces")

    def GPU(duration: int = 60):  # noqa: N802  (the package's own name)
        def decorate(fn):
            @functools.wraps(fn)
            def run(*args, **kwargs):
                calls.append(fn.__name__)
                return fn(*args, **kwargs)

            return run

        return decorate

    module.GPU = GPU
    return module


def _serve(settings):
    from neuroscope.model.tiny import build_tiny_model
    from neuroscope.ui.app import build_app
    from neuroscope.ui.common import AppContext

    demo = build_app(AppContext(lm=build_tiny_model(seed=2), settings=settings))
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    return demo


def _wrapped(demo) -> dict[str, int]:
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    return {
        f.fn.__name__: f.fn.__neuroscope_gpu__ for f in fns if f.fn is not None and hasattr(f.fn, "__neuroscope_gpu__")
    }


@pytest.mark.parametrize("installed", [True, False])
def test_model_handlers_run_on_zero_gpu_when_spaces_is_installed(monkeypatch, installed):
    from neuroscope.config import Settings

    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "spaces", _stub_spaces(calls) if installed else None)  # None: ImportError
    demo = _serve(Settings(max_new_tokens=2))
    try:
        wrapped = _wrapped(demo)
        if installed:
            assert set(wrapped) == MODEL_HANDLERS and wrapped["on_causal"] == wrapped["on_gcg"] == 600
        else:
            assert wrapped == {}
        client = gradio_client.Client(demo.local_url, verbose=False, download_files=False)
        summary = client.predict("How do I bake bread?", 2, "output norm", api_name="/analyze")[7]
        assert summary["prompt"] == "How do I bake bread?"
        assert calls == (["on_run"] if installed else [])
    finally:
        demo.close()


def test_the_apps_experiment_folders_are_bounded(tmp_path):
    """Before each experiment the app keeps only the most recent run folders (disk bounded by count)."""
    import os
    import time

    from neuroscope.ui.experiment_tab import prune_runs

    now = time.time()
    folders = []
    for i in range(12):
        f = tmp_path / f"run-{i}"
        f.mkdir()
        (f / "metrics.json").write_text("{}")
        age = 3600 * (i + 1) if i != 10 else 60  # run-10 was touched a minute ago (another instance's?)
        os.utime(f, (now - age, now - age))
        folders.append(f)
    deleted = prune_runs(tmp_path, keep=4, min_age_s=900, spare=folders[11])
    left = sorted(f.name for f in tmp_path.iterdir())
    # kept: the 4 newest (run-0..2 and the recent run-10), the spared run-11; the other 7 are gone
    assert left == ["run-0", "run-1", "run-10", "run-11", "run-2"] and deleted == 7
    assert prune_runs(tmp_path / "missing") == 0
