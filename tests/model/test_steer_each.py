"""Steering harmfulness and refusal apart: the probe read-out under each addition equals plain PyTorch hooks
that add the independently computed direction (hand-taken means of hooked residuals) at the same layer."""

from __future__ import annotations

import pytest
import torch

from neuroscope.model.chat import first_token_ids
from neuroscope.services.steer_each import CONDITIONS, PROBE, steer_each_direction, yes_no_log_odds
from tests.reference import chat_ids


def test_yes_no_log_odds_by_hand():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    p = torch.softmax(logits.double(), -1)[0]
    want = torch.log(p[1] + p[2]) - torch.log(p[3])
    assert yes_no_log_odds(logits, [1, 2], [3]).item() == pytest.approx(want.item(), rel=1e-12)


@torch.no_grad()
def _resid(lm, prompt: str, layer: int, at: int) -> torch.Tensor:
    seen = {}

    def grab(_module, args, kwargs):
        seen["x"] = (args[0] if args else kwargs["hidden_states"])[0, at].clone()

    handle = lm.hf.model.layers[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        lm.hf(chat_ids(lm, prompt))
    finally:
        handle.remove()
    return seen["x"].double()


@torch.no_grad()
def _probe_with(lm, prompts, layer: int, vector: torch.Tensor, yes, no) -> float:
    handle = lm.hf.model.layers[layer].register_forward_pre_hook(
        lambda m, args, kwargs: (
            ((args[0] + vector.to(args[0].dtype), *args[1:]), kwargs)
            if args
            else (args, {**kwargs, "hidden_states": kwargs["hidden_states"] + vector.to(kwargs["hidden_states"].dtype)})
        ),
        with_kwargs=True,
    )
    try:
        values = [
            yes_no_log_odds(lm.hf(chat_ids(lm, PROBE.format(prompt=p))).logits[:, -1].float(), yes, no) for p in prompts
        ]
    finally:
        handle.remove()
    return torch.cat(values).mean().item()


def test_each_addition_equals_plain_hooks(tiny_lm, data_dir):
    from neuroscope.method.config import ExperimentConfig
    from neuroscope.method.data import load_experiment_data

    lm, layer, strength = tiny_lm, 1, 2.0
    study = steer_each_direction(
        lm, n_train=4, n_test=3, layer=layer, strength=strength, max_new_tokens=2, data_dir=str(data_dir)
    )
    data = load_experiment_data(
        ExperimentConfig(data_dir=str(data_dir), n_train=4, n_val=1, n_test=3, n_test_harmless=3, n_xstest=0, seed=0)
    )
    harmful, harmless = [p.instruction for p in data.train_harmful], [p.instruction for p in data.train_harmless]
    test = [p.instruction for p in data.test_harmless]
    yes = first_token_ids(lm.tokenizer, ("Yes", " Yes", "yes"))
    no = first_token_ids(lm.tokenizer, ("No", " No", "no"))
    for condition, at in ((CONDITIONS[1], lm.last_instruction_position), (CONDITIONS[2], -1)):
        d = torch.stack([_resid(lm, p, layer, at) for p in harmful]).mean(0) - torch.stack(
            [_resid(lm, p, layer, at) for p in harmless]
        ).mean(0)
        want = _probe_with(lm, test, layer, strength * d.float(), yes, no)
        assert study.probe[condition].mean == pytest.approx(want, abs=1e-3), condition
    assert study.probe[CONDITIONS[0]].mean == pytest.approx(
        _probe_with(lm, test, layer, torch.zeros(lm.d_model), yes, no), abs=1e-3
    )
    record = study.to_json()
    assert set(record["conditions"]) == set(CONDITIONS) and isinstance(record["probe_works"], bool)


@pytest.mark.parametrize(
    "harmful, harmless, works",
    [
        ((2.0, 1.5, 2.5), (-0.5, -1.0, 0.0), True),
        ((-1.39, -1.46, -1.33), (-1.54, -1.58, -1.50), False),  # apart, but by 0.15 log-odds (the demo)
        ((-0.07, -0.22, 0.07), (0.56, 0.23, 0.93), False),  # the wrong way round (the tuned SmolLM2)
        ((2.0, 0.0, 4.0), (0.5, -1.0, 1.0), False),  # intervals overlap
    ],
)
def test_the_probe_counts_only_when_it_tells_harmful_from_harmless(harmful, harmless, works):
    from neuroscope.analysis.metrics import Interval
    from neuroscope.services.steer_each import SteeringStudy

    iv = lambda m, lo, hi: Interval(m, lo, hi, 32)  # noqa: E731
    study = SteeringStudy("m", 1, 1.0, iv(*harmful), iv(*harmless), {}, {}, "", 0.0)
    assert study.probe_works is works
