"""Public mode: no server path reaches a visitor, except gradio's own content-addressed file cache.

Decision: a file a visitor downloads (a direction, the experiment's artifacts) is served the way
every Gradio app serves files, from gradio's cache (``$GRADIO_TEMP_DIR``, default
``<tmp>/gradio/<content hash>/<name>``); that path names no project, data or run folder. Anything
else in any output (Markdown, JSON, plots, messages) holds no path of this machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from neuroscope.model import _compat  # noqa: F401

gradio_client = pytest.importorskip("gradio_client")

from neuroscope import services  # noqa: E402
from neuroscope.config import Settings  # noqa: E402
from neuroscope.ui import experiment_tab  # noqa: E402
from tests.ui.conftest import serve_tiny_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _gradio_cache() -> str:
    return os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")


def _strings(value, key=""):
    """Every (key, string) pair inside an output, however nested."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str):
        if value.lstrip().startswith(("{", "[")):
            try:
                yield from _strings(json.loads(value), key)
                return
            except ValueError:
                pass
        yield key, value


def _server_paths(outputs) -> list[tuple[str, str]]:
    """Strings naming a folder of this machine outside gradio's file cache."""
    cache = _gradio_cache()
    private = [str(ROOT), str(Path.home()), os.environ.get("NEUROSCOPE_DATA_DIR") or "\0", tempfile.gettempdir()]
    found = []
    for key, text in _strings(outputs):
        if key in ("path", "url") and cache in text:
            continue  # gradio's served copy: <cache>/<content hash>/<file name>
        if any(p and p in text for p in private):
            found.append((key, text[:200]))
    return found


@pytest.fixture(scope="module")
def public_client():
    with serve_tiny_app(Settings(public=True, max_new_tokens=3, max_prompt_tokens=200)) as (demo, ctx):
        yield gradio_client.Client(demo.local_url, verbose=False, download_files=False), ctx


def test_direction_download_is_gradios_cache_copy_and_nothing_else_names_a_path(public_client):
    client, _ = public_client
    out = client.predict(services.CURATED, None, None, 6, 3, api_name="/compute_direction")
    download = out[4]
    cache = _gradio_cache()
    assert download["path"].startswith(cache) and Path(download["path"]).parent.parent == Path(cache)
    assert "/" not in download["orig_name"]
    assert _server_paths(out) == []
    assert _server_paths(client.predict(api_name="/current_direction")) == []


def test_experiment_outputs_name_no_run_or_data_folder(public_client):
    client, _ = public_client
    out = client.predict(
        experiment_tab.DEFAULT_SOURCE, None, None, 4, 2, 2, 4, 100, 0, False, api_name="/run_experiment"
    )
    status, report, *rest = out
    files = rest[-2]
    assert "Done" in status and files
    cache = _gradio_cache()
    assert all(f["path"].startswith(cache) and "/" not in f["orig_name"] for f in files)
    assert _server_paths(out) == [], "a server path in a public output"
