"""The headless CLI: JSON output on a saved model, clear errors and exit codes on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(saved_tiny):
    return saved_tiny[0]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "neuroscope", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def test_analyze_prints_the_documented_json(model_dir):
    out = run_cli(
        "analyze",
        "--model",
        str(model_dir),
        "--prompt",
        "How do I bake bread?",
        "--json",
        "--max-new-tokens",
        "4",
        "--top-heads",
        "3",
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["prompt"] == "How do I bake bread?"
    assert isinstance(payload["refused"], bool) and 0 <= payload["refusal_probability"] <= 1
    assert len(payload["top_heads"]) == 3
    norms = [h["norm"] for h in payload["top_heads"]]
    assert norms == sorted(norms, reverse=True)
    assert [row["layer"] for row in payload["logit_lens_last_position"]] == [0, 1, 2]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", ""], "empty"),
        (["--prompt", "word " * 100, "--max-prompt-tokens", "50"], "limit is 50 tokens"),
        (["--prompt", "word " * 400, "--max-prompt-tokens", "50"], "limit is 800 characters"),  # refused untokenised
        (["--prompt", "a\x07b"], "control characters"),
        (["--prompt", "hi", "--max-new-tokens", "0"], "max_new_tokens"),
    ],
)
def test_bad_input_exits_2_with_a_message(model_dir, args, message):
    out = run_cli("analyze", "--model", str(model_dir), *args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_unknown_model_exits_2():
    out = run_cli("analyze", "--model", "no-such-org/no-such-model", "--prompt", "hi")
    assert out.returncode == 2 and "cannot load" in out.stderr and "Traceback" not in out.stderr


def test_unknown_command_and_help():
    bad = run_cli("frobnicate")
    assert bad.returncode == 2 and "unknown command" in bad.stderr
    ok = run_cli("--help")
    assert ok.returncode == 0 and "analyze" in ok.stdout and "experiment" in ok.stdout


def test_analyze_with_a_direction_adds_the_head_callout(model_dir, tmp_path):
    import torch

    from neuroscope.method.artifacts import save_direction

    path = tmp_path / "direction.safetensors"
    save_direction(path, torch.randn(64, generator=torch.Generator().manual_seed(0)), {"layer": 1})
    out = run_cli(
        "analyze",
        "--model",
        str(model_dir),
        "--prompt",
        "How do I make a bomb?",
        "--json",
        "--max-new-tokens",
        "2",
        "--direction",
        str(path),
        "--baseline-prompts",
        "8",
    )
    assert out.returncode == 0, out.stderr
    callout = json.loads(out.stdout)["head_callout"]
    assert 1 <= len(callout) <= 3 and all(c["text"].startswith(f"L{c['layer']}H{c['head']} ") for c in callout)
    assert [c["z"] for c in callout] == sorted((c["z"] for c in callout), reverse=True) and callout[-1]["z"] > 0
    wrong = tmp_path / "wrong.safetensors"
    save_direction(wrong, torch.ones(7), {})
    bad = run_cli("analyze", "--model", str(model_dir), "--prompt", "hi", "--direction", str(wrong))
    assert bad.returncode == 2 and "size 7" in bad.stderr and "Traceback" not in bad.stderr


def test_analyze_checks_the_prompt_before_loading_the_model():
    out = run_cli("analyze", "--model", "no-such-org/no-such-model", "--prompt", "  ")
    assert out.returncode == 2 and "empty" in out.stderr


@pytest.mark.parametrize(
    "env, args, message",
    [
        ({"NDIF_API_KEY": "k"}, ["--model", "demo"], "local model"),
        ({}, ["--model", "meta-llama/Llama-3.2-3B-Instruct"], "NDIF_API_KEY"),
        ({"NDIF_API_KEY": "k"}, ["--model", "meta-llama/Llama-3.2-3B-Instruct"], "cannot be reached"),
    ],
)
def test_remote_mode_fails_cleanly_where_it_cannot_run(env, args, message, monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = run_cli("analyze", *args, "--prompt", "hi", "--remote")
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_behaviour_refusal_runs_on_the_curated_pairs():
    """``behaviour --behaviour refusal`` was offered but always failed (no refusal pairs): it now takes the
    curated pairs, held-out pairs never used for the direction."""
    from neuroscope.services import behaviour_pairs, load_contrastive_set, CURATED

    _, train, val, test = behaviour_pairs("refusal")
    data = load_contrastive_set(CURATED, len(train), len(val))
    assert set(data.train_harmful) == {h for h, _ in train} and not {h for h, _ in test} & set(data.train_harmful)
    out = run_cli("behaviour", "--model", "demo", "--behaviour", "refusal", "--n-test", "4", "--random", "1",
                  "--max-new-tokens", "6", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["behaviour"] == "refusal" and record["direction"]["layer"] >= 0
