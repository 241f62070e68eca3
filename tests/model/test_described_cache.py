"""The shipped direction's description is cached: read back it equals a fresh description exactly, and a
changed model, a corrupt entry or another direction file never returns a stale one."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neuroscope import services
from neuroscope.config import DEMO_MODEL_DIR
from neuroscope.services import described

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "config.json").is_file(), reason="no demo model")


@pytest.fixture(scope="module")
def demo():
    from neuroscope.model import load_model

    return load_model("demo", device="cpu")


def _same(a, b) -> None:
    for f in dataclasses.fields(a):
        if f.name in ("created", "causal"):  # when it was made current; a later, per-visitor record
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f.name
        elif dataclasses.is_dataclass(x):
            _same(x, y)
        else:
            assert (list(x) if isinstance(x, tuple) else x) == (list(y) if isinstance(y, tuple) else y), f.name


def test_the_cached_description_equals_a_fresh_one(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    fresh = services.shipped_direction(demo)  # computed, then stored
    assert len(list((tmp_path / "described").glob("*.safetensors"))) == 1
    calls = []
    monkeypatch.setattr(services.direction, "direction_from_file", lambda *a, **k: calls.append(1))
    again = services.shipped_direction(demo)  # read back, nothing recomputed
    assert calls == [] and again is not fresh
    _same(fresh, again)
    # the app behaves the same with it: the read-back direction frees the harmful prompt as the fresh one does
    assert torch.equal(again.direction, fresh.direction) and again.heads.n_harmful == fresh.heads.n_harmful


def test_a_changed_model_or_a_corrupt_entry_is_described_again(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    services.shipped_direction(demo)
    before = described.weights_fingerprint(demo)
    with torch.no_grad():  # on a copy of one weight's value, restored after: a different model
        w = demo.access.final_norm(demo.hf).weight
        saved = w.clone()
        w.mul_(1.5)
        try:
            assert described.weights_fingerprint(demo) != before
        finally:
            w.copy_(saved)
    for entry in (tmp_path / "described").glob("*.safetensors"):
        entry.write_bytes(b"not a safetensors file")
    calls = []
    real = services.direction.direction_from_file
    monkeypatch.setattr(services.direction, "direction_from_file", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert services.shipped_direction(demo) is not None and calls == [1]  # recomputed, not a crash
