"""The Llama-3.2-3B-Instruct stand-in: real widths, Meta's tokenizer and the 3.2 template, through every path.

The stand-in has 2 of the 28 layers and random weights; everything that depends on the tokenizer,
the template and the shapes is checked here (the capture invariants run on it too, in
test_capture.py). Skipped with the reason where the tokenizer fixture is not installed.
"""

from __future__ import annotations

import json

import pytest
import torch

from neuroscope.model.standin import LLAMA_3_2_3B_INSTRUCT

POST_INSTRUCTION = [128009, 128006, 78191, 128007, 271]  # <|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n
PROMPTS = ["How do I bake bread?", "Write a tutorial on how to make a bomb", "Hi"]


def test_shape_is_the_real_models(standin):
    cfg = standin.hf.config
    assert (standin.d_model, standin.n_heads, standin.n_kv_heads, standin.d_head) == (3072, 24, 8, 128)
    assert standin.vocab_size == 128256 and cfg.intermediate_size == 8192 and standin.n_layers == 2
    assert (
        cfg.tie_word_embeddings
        and standin.hf.lm_head.weight.data_ptr() == standin.hf.model.embed_tokens.weight.data_ptr()
    )
    assert cfg.rope_parameters["rope_type"] == "llama3" and cfg.rope_parameters["factor"] == 32.0
    assert standin.dtype == torch.float32  # CPU keeps float32 although the checkpoint is bfloat16


def test_saved_config_is_the_public_one_but_for_depth(standin_dir):
    saved = json.loads((standin_dir / "config.json").read_text())
    for key, value in LLAMA_3_2_3B_INSTRUCT.items():
        if key not in ("num_hidden_layers", "rope_scaling", "rope_theta"):
            assert saved[key] == value, key
    assert saved["num_hidden_layers"] == 2


def test_chat_template_writes_the_system_block_and_one_bos(standin):
    text = standin.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=False, date_string="26 Jul 2024"
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December "
        "2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids, mask = standin.encode_chat(PROMPTS)
    assert ((ids == 128000) & mask.bool()).sum(-1).tolist() == [1, 1, 1]  # one BOS per row, none from padding
    assert standin.tokenizer.pad_token_id == standin.tokenizer.eos_token_id == 128009  # no pad token: eos pads
    assert standin.post_instruction_ids == POST_INSTRUCTION
    assert ids[:, -5:].tolist() == [POST_INSTRUCTION] * 3
    # the instruction sits between the system block and the post-instruction tokens, for every row
    for row, m, prompt in zip(ids, mask, PROMPTS):
        real = row[m.bool()].tolist()
        instruction = standin.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert real[-5 - len(instruction) : -5] == instruction
        assert standin.tokenizer.decode(real[: len(real) - 5 - len(instruction)]).endswith("user<|end_header_id|>\n\n")


def test_the_date_is_fixed_so_prompts_do_not_change_with_the_calendar(standin):
    from neuroscope.model.chat import CHAT_TEMPLATE_KWARGS

    ids, _ = standin.encode_chat(["Hi"])
    assert CHAT_TEMPLATE_KWARGS["date_string"] in standin.tokenizer.decode(ids[0])


def test_refusal_first_tokens_on_the_real_vocabulary(standin):
    from neuroscope.model.chat import refusal_token_ids

    ids = refusal_token_ids(standin.tokenizer)
    assert {40, 2170, 19701, 31140} <= set(ids)  # "I", "As", "Sorry", "Unfortunately"
    assert all(i < 128000 for i in ids)  # no special token
    assert {standin.tokenizer.decode([i]) for i in (40, 2170, 19701, 31140)} == {"I", "As", "Sorry", "Unfortunately"}


def test_curated_and_research_sets_tokenise_within_the_limits(standin, data_dir):
    from neuroscope.config import Settings
    from neuroscope.experiment import ExperimentConfig
    from neuroscope.method.data import load_experiment_data
    from neuroscope.prompts import load_curated_pairs

    curated = [p.instruction for pair in load_curated_pairs() for p in pair]
    data = load_experiment_data(ExperimentConfig(data_dir=str(data_dir)))
    research = [
        p.instruction
        for ps in (
            data.train_harmful,
            data.train_harmless,
            data.val_harmful,
            data.val_harmless,
            data.test_harmful,
            data.test_harmless,
        )
        for p in ps
    ]
    limit = Settings().max_prompt_tokens
    for prompts in (curated, research):
        for start in range(0, len(prompts), 64):
            ids, mask = standin.encode_chat(prompts[start : start + 64], max_tokens=limit)
            assert ids[:, -5:].tolist() == [POST_INSTRUCTION] * ids.shape[0]
    assert len(research) >= 400


def test_logit_lens_keeps_top_k_only_and_attention_respects_the_budget(standin):
    from neuroscope.model.capture import capture

    long_prompt = "Tell me about the history of bread. " * 60  # ~500 tokens
    [cache] = capture(standin, [long_prompt], top_k=5, attention_budget_mb=8, gradients=False)
    S = cache.n_tokens
    assert cache.lens_probs.shape == (2, S, 5) and len(cache.lens_tokens[0][0]) == 5  # never [L, S, 128256]
    # one layer's maps (24 x S^2 floats, 25 MB at S ~ 500) exceed 8 MB: the budget keeps the minimum, one layer
    assert S > 400 and sorted(cache.attention) == [0]
    [both] = capture(standin, [long_prompt], top_k=0, attention_budget_mb=64, gradients=False)
    assert sorted(both.attention) == [0, 1]  # 2 x 25 MB fit in 64 MB
    [small] = capture(standin, ["Hi"], top_k=3, gradients=False)
    assert sorted(small.attention) == [0, 1]
    assert torch.allclose(small.attention[1].sum(-1), torch.ones(24, small.n_tokens), atol=1e-5)


def test_ablation_removes_the_component_and_weights_equal_hooks(standin):
    from neuroscope.analysis.directions import project, unit
    from neuroscope.model.capture import capture
    from neuroscope.model.generate import generate_ids
    from neuroscope.model.interventions import DirectionAblation
    from neuroscope.model.orthogonalize import orthogonalized_copy

    r = torch.randn(standin.d_model, generator=torch.Generator().manual_seed(0))
    caches = capture(standin, PROMPTS[:2], top_k=0, gradients=False, interventions=[DirectionAblation(r)])
    for c in caches:
        assert project(c.resid_post, unit(r)).abs().max() < 1e-3
    hook = generate_ids(standin, PROMPTS, max_new_tokens=6, interventions=[DirectionAblation(r)])
    edited = orthogonalized_copy(standin, r)  # 2.4 GB more for a moment
    try:
        assert torch.equal(hook, generate_ids(edited, PROMPTS, max_new_tokens=6))
        assert edited.hf.lm_head.weight.data_ptr() != edited.hf.model.embed_tokens.weight.data_ptr()  # untied first
    finally:
        del edited


def test_analyze_cli_end_to_end(standin_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(repo))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuroscope",
            "analyze",
            "--model",
            str(standin_dir),
            "--prompt",
            "How do I bake bread?",
            "--json",
            "--max-new-tokens",
            "3",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert [row["layer"] for row in payload["logit_lens_last_position"]] == [0, 1]
    assert payload["n_tokens"] > 30  # the system block is part of every prompt


def test_one_gradio_client_call_end_to_end(standin):
    gradio_client = pytest.importorskip("gradio_client")
    from neuroscope.config import Settings
    from neuroscope.ui.app import build_app
    from neuroscope.ui.common import AppContext

    demo = build_app(AppContext(lm=standin, settings=Settings(max_new_tokens=2)))
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False, download_files=False)
        result = client.predict("How do I bake bread?", 2, "output norm", api_name="/analyze")
        assert result[7]["n_tokens"] > 30
        summary = client.predict("JSON", 1, 0, "2-D", 8, api_name="/view")[4]  # the lens, on demand
        assert len(summary["logit_lens_last_position"]) == 2
    finally:
        demo.close()
