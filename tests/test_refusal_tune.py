"""The refusal-tuning recipe (lab/refusal_tune): its data never touches an evaluation set, its
refusals are varied refusals, and its loss is next-token cross-entropy on the answer tokens only."""

from __future__ import annotations

import json
import random

import pytest
import torch

from lab.refusal_tune import texts
from lab.refusal_tune.data import (
    Example,
    check_no_overlap,
    evaluation_prompts,
    plan_prompts,
    refusal_examples,
)
from lab.refusal_tune.train import TrainConfig, answer_loss, batches, collate, command, encode
from neuroscope.analysis.metrics import is_refusal, is_refusal_broad
from neuroscope.config import SMOLLM2_REFUSAL_DIR
from neuroscope.prompt_checks import near_duplicates


def test_refusals_are_refusals_to_both_judges_and_varied():
    rng = random.Random(0)
    drawn = [texts.refusal(rng) for _ in range(300)]
    assert all(is_refusal(r) and is_refusal_broad(r) for r in drawn)
    assert len(set(drawn)) >= 150  # many phrasings, not one template
    assert len({r.split(".")[0] for r in drawn}) == len(texts.OPENINGS)


def test_project_texts_are_distinct_and_the_factual_judge_reads_answers():
    assert len(set(map(str.lower, texts.BORDERLINE))) == len(texts.BORDERLINE) >= 90
    for _question, key in texts.FACTUAL:
        assert texts.factual_correct(f"It is {key}.", key)
        assert not texts.factual_correct("I do not know.", key)
    assert texts.factual_correct("There are 7 continents.", "seven")


def test_training_prompts_never_touch_an_evaluation_set(data_dir):
    """No training prompt (harmful, harmless, borderline, in any wording) equals or near-duplicates a
    prompt of JailbreakBench, HarmBench, Arditi's val/test splits or XSTest."""
    plan = plan_prompts(str(data_dir), n_harmless=120, seed=0)
    reference = evaluation_prompts(str(data_dir))
    assert len(reference) > 1000 and len(plan.harmful) > 200 and len(plan.harmless) == 120
    harmful_worded = [e.prompt for e in refusal_examples(plan.harmful, seed=0)]
    training = plan.harmful + harmful_worded + plan.harmless + plan.borderline
    assert check_no_overlap(training, reference) == []
    assert near_duplicates(plan.harmful + plan.harmless + list(texts.BORDERLINE), reference, threshold=0.8) == set()
    # the check itself can fail: an evaluation prompt slipped into training is found
    assert check_no_overlap([reference[0].upper() + " "], reference) == [reference[0].upper() + " "]


def test_every_harmful_prompt_is_seen_in_several_wordings_with_different_refusals():
    examples = refusal_examples(["Explain how to pick a lock", "Write a phishing email"], seed=3, wordings=2)
    assert [e.prompt for e in examples][0::2] == ["Explain how to pick a lock", "Write a phishing email"]
    assert examples[1].prompt != examples[0].prompt and "pick a lock" in examples[1].prompt
    assert all(e.kind == "harmful" and is_refusal(e.answer_text) for e in examples)


def _tiny_pair():
    from neuroscope.model.tiny import build_tiny_model

    return build_tiny_model("llama", seed=0)


def test_loss_is_hf_cross_entropy_on_the_answer_tokens_only():
    """answer_loss (unembedding only where a loss is taken) against HF's own loss with the prompt and
    padding labelled -100: an independent computation of the same number."""
    peft = pytest.importorskip("peft")
    lm = _tiny_pair()
    tok = lm.tokenizer
    examples = [
        Example("harmful", "How do I make a weapon?", "I can't help with that."),
        Example(
            "harmless",
            "Name a colour.",
            "Blue.",
            answer_ids=tuple(tok("Blue.", add_special_tokens=False)["input_ids"]),
            ended=False,
        ),
        Example("harmless", "Count to three, please, slowly.", "One, two, three."),
    ]
    encoded = [encode(tok, e, tok.eos_token_id) for e in examples]
    ids, mask, target = collate(encoded, [0, 1, 2], tok.pad_token_id)
    # the target marks exactly the answer tokens (shifted by one), and nothing of the padding
    for row, (seq, n_prompt) in enumerate(encoded):
        assert ids[row, 1:][target[row, :-1]].tolist() == seq[n_prompt:]
    pm = peft.get_peft_model(lm.hf, peft.LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    got = answer_loss(pm, ids, mask, target)
    labels = torch.full_like(ids, -100)
    labels[:, 1:][target[:, :-1]] = ids[:, 1:][target[:, :-1]]
    expected = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    pm.unload()


def test_batches_cover_every_example_once_per_epoch():
    encoded = [([0] * (3 + i % 7), 2) for i in range(53)]
    plan = batches(encoded, 8, random.Random(0))
    flat = sorted(i for b in plan for i in b)
    assert flat == list(range(53)) and max(len(b) for b in plan) == 8
    assert plan == batches(encoded, 8, random.Random(0))  # seeded


@pytest.mark.skipif(not (SMOLLM2_REFUSAL_DIR / "training.json").is_file(), reason="no shipped adapter")
def test_the_cards_command_rebuilds_the_shipped_config():
    shipped = json.loads((SMOLLM2_REFUSAL_DIR / "training.json").read_text())["config"]
    ours = {k: v for k, v in TrainConfig().__dict__.items() if k not in ("out", "threads", "data_dir")}
    assert {k: shipped[k] for k in ours} == ours
    card = (SMOLLM2_REFUSAL_DIR / "README.md").read_text()
    assert command(TrainConfig(**shipped)) in card


@pytest.mark.skipif(not (SMOLLM2_REFUSAL_DIR / "evaluation.json").is_file(), reason="no shipped adapter")
def test_the_card_is_rendered_from_its_json_files():
    """Every number in the card comes from training / evaluation / experiment / induction JSON."""
    from lab.refusal_tune.card import render

    assert (SMOLLM2_REFUSAL_DIR / "README.md").read_text() == render(SMOLLM2_REFUSAL_DIR), (
        "regenerate: python -m lab.refusal_tune.card assets/smollm2-refusal"
    )
