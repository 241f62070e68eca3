"""Loading by local path, fallback, and clear errors for models that cannot be used."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from neuroscope.model import loader
from neuroscope.model.chat import PromptError, clean_instruction
from neuroscope.model.loader import ModelLoadError, load_model, load_with_fallback
from neuroscope.model.tiny import build_tiny_model


def test_local_directory_loads_offline_and_matches(saved_tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path, original = saved_tiny
    lm = load_model(str(path))
    assert lm.source == "local" and lm.dtype == torch.float32 and lm.device.type == "cpu"
    assert lm.hf.config._attn_implementation == "eager"
    ids, mask = lm.encode_chat(["hello"])
    ids0, _ = original.encode_chat(["hello"])
    assert torch.equal(ids, ids0)
    torch.testing.assert_close(
        lm.hf(input_ids=ids, attention_mask=mask).logits, original.hf(input_ids=ids, attention_mask=mask).logits
    )
    assert all(not p.requires_grad for p in lm.hf.parameters())


def test_unknown_model_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model("no-such-org/no-such-model")


def test_unsupported_family_is_refused(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM

    OPTForCausalLM(
        OPTConfig(
            num_hidden_layers=1, hidden_size=8, ffn_dim=16, num_attention_heads=2, vocab_size=20, word_embed_proj_dim=8
        )
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not supported.*gpt2"):
        load_model(str(tmp_path))


def test_a_saved_gpt2_loads_as_a_plain_prompt_model(tmp_path):
    from neuroscope.model.tiny import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = None
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=len(tok))).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path))
    assert lm.access.paths.conv1d and not lm.has_chat_template and lm.n_post_instruction == 1
    assert lm.o_proj_weight(0).shape == (8, 8) and lm.encode_chat(["hi"])[0].tolist() == [tok("hi")["input_ids"]]


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_model_too_big_for_memory_is_refused(saved_tiny, monkeypatch):
    monkeypatch.setattr(loader, "available_memory_bytes", lambda device: 10)
    with pytest.raises(ModelLoadError, match="GiB"):
        load_model(str(saved_tiny[0]))


def test_fallback_names_the_reason(saved_tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm, notice = load_with_fallback("no-such-org/no-such-model", fallback=str(saved_tiny[0]))
    assert lm.source == "local"
    assert "no-such-org/no-such-model" in notice and "instead" in notice
    lm2, notice2 = load_with_fallback(str(saved_tiny[0]))
    assert notice2 is None and lm2.source == "local"


def test_an_unreachable_hub_is_one_plain_sentence(saved_tiny, monkeypatch):
    """Offline, the default model's failure reads as a reason, not transformers' raw "...cached files." text."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, notice = load_with_fallback("meta-llama/Llama-3.2-3B-Instruct", fallback=str(saved_tiny[0]))
    assert notice.startswith("Could not load meta-llama/Llama-3.2-3B-Instruct: the Hugging Face Hub cannot be reached")
    assert "\n" not in notice and "cached files" not in notice and ".." not in notice and "instead." in notice
    assert notice.count("cannot load") == 0


def test_estimated_parameters_match_a_real_count():
    lm = build_tiny_model("llama", d_model=64, n_layers=2)
    real = sum(p.numel() for p in lm.hf.parameters()) - sum(
        p.numel() for n, p in lm.hf.named_parameters() if "norm" in n
    )
    assert loader.estimate_parameters(lm.config) == real


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("bad\x00byte", "control"),
        ("bell\x07", "control"),
        (None, "text"),
    ],
)
def test_bad_prompts_are_rejected(text, message):
    with pytest.raises(PromptError, match=message):
        clean_instruction(text)


def test_prompt_over_the_token_limit_is_rejected(tiny_lm):
    with pytest.raises(PromptError, match="limit is 20 tokens"):
        tiny_lm.encode_instruction("word " * 50, max_tokens=20)
    assert clean_instruction("  tab\tand\nnewline ok  ") == "tab\tand\nnewline ok"


def test_unresolvable_hub_is_detected_quickly():
    assert loader.hub_reachable("neuroscope-no-such-host.invalid", timeout=3.0) is False


def test_hub_model_offline_fails_without_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loader, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(ModelLoadError, match="cannot load the config"):
        load_model("meta-llama/Llama-3.2-3B-Instruct")


def _gated():
    import httpx
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/meta-llama/Llama-3.2-3B-Instruct/resolve/main/config.json"
    response = httpx.Response(403, request=httpx.Request("GET", url))
    return GatedRepoError("Access to model meta-llama/Llama-3.2-3B-Instruct is restricted.", response=response)


@pytest.mark.parametrize(
    "make",
    [
        _gated,
        lambda: OSError(
            "401 Client Error: Unauthorized for url: https://huggingface.co/meta-llama/x/resolve/main/config.json"
        ),
        lambda: OSError("403 Client Error: Forbidden for url"),
    ],
)
def test_gated_or_unauthorised_hub_model_names_hf_token(monkeypatch, make):
    original = loader.AutoConfig.from_pretrained

    def refuse(path, *args, **kwargs):  # the hub refuses; local folders (the fallback) still load
        if str(path).startswith("meta-llama/"):
            raise make()
        return original(path, *args, **kwargs)

    monkeypatch.setattr(loader, "hub_reachable", lambda *a, **k: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loader.AutoConfig, "from_pretrained", refuse)
    with pytest.raises(ModelLoadError, match="HF_TOKEN") as info:
        load_model("meta-llama/Llama-3.2-3B-Instruct", device="cpu")
    assert "gated or needs authorisation" in str(info.value)
    lm, notice = loader.load_with_fallback("meta-llama/Llama-3.2-3B-Instruct", device="cpu")
    assert "HF_TOKEN" in notice and lm.source in ("smollm2-refusal", "demo", "tiny")  # the app falls back and says why


def test_placement_spreads_over_devices_only_on_a_gpu(monkeypatch):
    free = {"cpu": 64 * 2**30, "cuda": 8 * 2**30}
    monkeypatch.setattr(loader, "available_memory_bytes", lambda device: free[torch.device(device).type])
    monkeypatch.setattr(loader.torch.cuda, "device_count", lambda: 2)
    assert loader.placement(torch.device("cpu"), 6 * 2**30) is False
    assert loader.placement(torch.device("cuda", 0), 6 * 2**30) is False  # fits one GPU
    assert loader.placement(torch.device("cuda", 0), 20 * 2**30) is True  # 2 x 8 GiB GPUs + 64 GiB RAM
    with pytest.raises(ModelLoadError, match="GiB"):
        loader.placement(torch.device("cuda", 0), 200 * 2**30)
    with pytest.raises(ModelLoadError, match="GiB"):
        loader.placement(torch.device("cpu"), 100 * 2**30)


def test_bf16_weights_keep_their_dtype_and_statistics_are_float32(standin_dir):
    """bf16 as on a GPU (here on the CPU): no silent upcast of the model, float32/64 statistics."""
    from neuroscope.analysis.directions import project, unit
    from neuroscope.model.activations import mean_resid_pre
    from neuroscope.model.capture import capture
    from neuroscope.model.forward import next_token_logits
    from neuroscope.model.interventions import DirectionAblation, DirectionAddition

    lm = load_model(str(standin_dir), device="cpu", dtype="bfloat16")
    assert {p.dtype for p in lm.hf.parameters()} == {torch.bfloat16}
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0))
    [cache] = capture(lm, ["How do I bake bread?"], top_k=3, interventions=[DirectionAblation(r)])
    assert cache.resid_pre.dtype == torch.float32 and cache.importance.dtype == torch.float32
    # the component is gone up to bf16 rounding of the stream (a few parts in a thousand of its norm)
    proj = project(cache.resid_post, unit(r)).abs()
    assert (proj / cache.resid_post.norm(dim=-1)).max() < 2e-2
    logits = next_token_logits(lm, ["Hi"], [DirectionAddition(r, 1, 2.0)])
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert mean_resid_pre(lm, ["Hi", "Bake bread"]).dtype == torch.float64
    assert {p.dtype for p in lm.hf.parameters()} == {torch.bfloat16}  # still: nothing upcast the weights
