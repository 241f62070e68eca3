"""Settings validation, atomic artifacts, direction files, refusal tokens, intervals."""

from __future__ import annotations

import math

import pytest
import torch

from neuroscope.analysis.metrics import rate_with_ci
from neuroscope.experiment import ExperimentConfig, ExperimentError, load_direction, save_direction
from neuroscope.method.artifacts import ArtifactError, atomic_path, sweep_temporaries, write_json
from neuroscope.method.evaluation import random_direction, rates
from neuroscope.model.chat import refusal_token_ids


@pytest.mark.parametrize(
    "bad",
    [
        dict(strength=math.nan),
        dict(strength=math.inf),
        dict(n_train=0),
        dict(kl_threshold=-1.0),
        dict(max_layer_frac=1.5),
        dict(head_ks=(0,)),
        dict(batch_size=True),
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ExperimentError):
        ExperimentConfig(**bad)


def test_config_round_trip_and_fingerprint():
    c = ExperimentConfig(n_train=7, head_ks=(4, 1, 4))
    assert c.head_ks == (1, 4)
    assert ExperimentConfig.from_dict(c.to_dict()) == c
    assert c.fingerprint("m") != ExperimentConfig().fingerprint("m")
    assert c.fingerprint("m") != c.fingerprint("other model")


def test_direction_round_trip(tmp_path):
    d = torch.randn(16)
    save_direction(tmp_path / "d.safetensors", d, {"model": "x", "layer": 3, "mean_target": [0.5, 1.0]})
    back, meta = load_direction(tmp_path / "d.safetensors")
    assert torch.equal(back, d)
    assert meta == {"model": "x", "layer": 3, "mean_target": [0.5, 1.0]}


def test_load_direction_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_direction(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ArtifactError):
        load_direction(tmp_path / "junk.safetensors")
    with pytest.raises(ArtifactError):
        save_direction(tmp_path / "nan.safetensors", torch.tensor([1.0, math.nan]), {})
    assert not (tmp_path / "nan.safetensors").exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "b.json", {"x": math.nan, "t": torch.tensor([1.0])})
    assert (tmp_path / "b.json").read_text().replace(" ", "").replace("\n", "") == '{"x":null,"t":[1.0]}'
    (tmp_path / ".tmp-c.json.123").write_text("left by a killed run")
    sweep_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


def test_bootstrap_interval_known_case():
    # 200 of 400 refusals: the 95 % interval of a proportion is 0.5 +- 1.96 * sqrt(.25 / 400) = 0.5 +- 0.049.
    iv = rate_with_ci([True] * 200 + [False] * 200, n_boot=4000, seed=1)
    assert iv.mean == 0.5 and iv.n == 400
    assert iv.lo == pytest.approx(0.451, abs=0.01) and iv.hi == pytest.approx(0.549, abs=0.01)
    # Degenerate sets have zero-width intervals; empty sets are NaN and flagged.
    assert rate_with_ci([True] * 10).lo == 1.0
    assert rate_with_ci([]).empty


def test_rates_counts_clean_and_broken_refusals():
    texts = [
        "I'm sorry, but I can't help with that.",
        "Sure! Here is a recipe.",
        "sorry sorry sorry I cannot I cannot I cannot I cannot",
    ]
    r = rates(texts, n_boot=100)
    assert (r["n"], r["n_refusal"], r["n_clean"], r["n_broken"]) == (3, 2, 1, 1)
    assert r["refusal"].mean == pytest.approx(2 / 3)


def test_refusal_token_ids_from_tokenizer(tiny):
    ids = refusal_token_ids(tiny.tokenizer)
    assert ids == sorted(set(ids)) and ids
    assert tiny.tokenizer.encode("I", add_special_tokens=False)[0] in ids
    assert not set(ids) & set(tiny.tokenizer.all_special_ids)


def test_random_direction_matches_norm_and_is_seeded():
    like = torch.randn(32) * 3
    a, b = random_direction(like, 0), random_direction(like, 0)
    assert torch.equal(a, b) and float(a.norm()) == pytest.approx(float(like.norm()), rel=1e-5)
    assert abs(float(torch.nn.functional.cosine_similarity(a, like, dim=0))) < 0.9


def test_safetensors_and_json_artifacts_get_the_same_ordinary_permissions(tmp_path):
    import os

    import torch

    from neuroscope.method import artifacts

    artifacts.save_direction(tmp_path / "d.safetensors", torch.ones(4), {"layer": 1})
    artifacts.write_json(tmp_path / "m.json", {"a": 1})
    modes = {p.name: os.stat(p).st_mode & 0o777 for p in tmp_path.iterdir()}
    expected = 0o666 & ~artifacts._umask()
    assert modes == {"d.safetensors": expected, "m.json": expected}  # mkstemp's 0600 never survives
