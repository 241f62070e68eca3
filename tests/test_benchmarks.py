"""The benchmark scripts never delete what a user gave them."""

from __future__ import annotations


def test_bench_experiment_keeps_a_user_folder(tmp_path, capsys):
    from benchmarks.bench_experiment import main

    out = tmp_path / "my-results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["--model", "tiny", "--out", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "mine"  # the old script removed the whole folder
    assert "new or empty folder" in capsys.readouterr().err


def test_peer_benchmark_says_when_transformerlens_is_missing(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # importing it fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "transformer_lens.model_bridge", None)
    monkeypatch.setattr(sys, "argv", ["bench_peer"])
    from benchmarks.bench_peer import main

    main()
    assert "TransformerLens 4.x is not installed" in capsys.readouterr().out


def test_harmfulness_benchmark_writes_its_ratio(tmp_path, capsys):
    import json

    from benchmarks.bench_harmfulness import main

    out = tmp_path / "h.json"
    assert main(["--prompts", "4", "--tokens", "16", "--rounds", "1", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["prompts"] == 8 and record["ratio"] == record["map_s"] / record["bare_s"]
    assert "ratio" in capsys.readouterr().out


def test_scale_benchmark_writes_the_explorers_ratios(standin_dir, tmp_path, monkeypatch, capsys):
    """``bench_scale --json`` gives, per prompt length, each view's ratio to the bare forward of the same run."""
    import json
    import sys

    from benchmarks import bench_scale

    out = tmp_path / "scale.json"
    argv = ["bench_scale", "--model", str(standin_dir), "--seq", "24", "--memory-seq", "40", "--rounds", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--views-only", "--json", str(out)])
    bench_scale.main()
    record = json.loads(out.read_text())
    costs = record["by_seq"]["24"]
    for name in ("submit", "lens_one_position", "attention_one_layer", "gradients", "every_view_no_grad"):
        assert costs["ratios"][name] == costs["seconds"][name] / costs["seconds"]["bare"] > 0
    held = record["session"]["40"]
    assert held["stream_dtype"] == "float32" and 0 < held["stream_mb"] < held["session_mb"]
    assert "Explorer submit" in capsys.readouterr().out
