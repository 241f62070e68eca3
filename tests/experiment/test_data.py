"""Prompt sets of the experiment: curated default, research sets, user files, determinism, lengths."""

from __future__ import annotations

import json

import pytest

from neuroscope.experiment import ExperimentConfig, ExperimentError, length_report, load_experiment_data
from neuroscope.method.data import ExperimentData


def _instructions(data, name):
    return [p.instruction for p in getattr(data, name)]


def test_curated_default_is_deterministic_and_disjoint(monkeypatch, tiny):
    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    a = load_experiment_data(ExperimentConfig())
    b = load_experiment_data(ExperimentConfig())
    assert a.to_dict() == b.to_dict()
    assert "curated" in a.description and not a.xstest_safe
    for side in ("harmful", "harmless"):
        sets = [set(_instructions(a, f"{split}_{side}")) for split in ("train", "val", "test")]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert len(a.pairs) == len(a.train_harmful)
    report = length_report(a, tiny.tokenizer)
    assert "pairs" in report and report["per_set"]["train_harmful"]["n"] == len(a.train_harmful)
    assert ExperimentData.from_dict(json.loads(json.dumps(a.to_dict()))).to_dict() == a.to_dict()


def test_seed_changes_the_split(monkeypatch):
    monkeypatch.setenv("NEUROSCOPE_DATA_DIR", "none")
    a, b = load_experiment_data(ExperimentConfig(seed=0)), load_experiment_data(ExperimentConfig(seed=1))
    assert _instructions(a, "test_harmful") != _instructions(b, "test_harmful")


def test_research_sets(data_dir):
    d = load_experiment_data(
        ExperimentConfig(data_dir=str(data_dir), n_train=20, n_val=8, n_test_harmless=10, n_xstest=6)
    )
    assert len(d.test_harmful) == 100 and len({p.category for p in d.test_harmful}) == 10
    assert len(d.train_harmful) <= 20 and len(d.val_harmless) == 8 and len(d.test_harmless) == 10
    assert len(d.xstest_safe) == 6 and not any(p.harmful for p in d.xstest_safe)
    assert all(p.harmful for p in d.xstest_unsafe)


def test_user_files_and_errors(tmp_path):
    harmful = tmp_path / "h.csv"
    harmful.write_text("goal\n" + "\n".join(f"harmful request {i}" for i in range(20)) + "\n")
    harmless = tmp_path / "b.json"
    harmless.write_text(json.dumps([{"instruction": f"harmless request {i}"} for i in range(20)]))
    d = load_experiment_data(ExperimentConfig(harmful_file=str(harmful), harmless_file=str(harmless)))
    assert (len(d.train_harmful), len(d.val_harmful), len(d.test_harmful)) == (12, 4, 4)
    with pytest.raises(ExperimentError, match="both"):
        load_experiment_data(ExperimentConfig(harmful_file=str(harmful)))
    tiny_file = tmp_path / "one.txt"
    tiny_file.write_text("just one prompt\n")
    with pytest.raises(ExperimentError, match="empty"):
        load_experiment_data(ExperimentConfig(harmful_file=str(tiny_file), harmless_file=str(harmless)))
    with pytest.raises(ExperimentError, match="not a directory"):
        load_experiment_data(ExperimentConfig(data_dir=str(tmp_path / "nope")))
