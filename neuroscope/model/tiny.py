"""Tiny random decoder models built from a config: test fixtures and the last-resort fallback.

They look like Llama-3.2-3B in the ways that break code — grouped-query attention, tied
embeddings, randomised RMSNorm gains (gains of 1.0 hide normalisation bugs) — at a size that runs
in milliseconds. The tokenizer is byte-level with no merges, so it needs no training data.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, MistralConfig, PreTrainedTokenizerFast, Qwen2Config
from transformers import LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM

from neuroscope.model.chat import LLAMA3_CHAT_TEMPLATE, LLAMA3_SPECIAL_TOKENS
from neuroscope.model.loaded import wrap

_FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "gpt2": (GPT2Config, GPT2LMHeadModel),  # no chat template: plain prompts
}


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens + Llama-3 specials) with the Llama-3 chat template."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(LLAMA3_SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|end_of_text|>"
    )
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_hf(
    family: str = "llama",
    seed: int = 0,
    n_layers: int = 3,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    vocab_size: int = 261,
    tie: bool = True,
):
    """Builds a random ``*ForCausalLM`` with randomised norm gains. Returns the HF module."""
    config_cls, model_cls = _FAMILIES[family]
    if family == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_embd=d_model,
            n_layer=n_layers,
            n_head=n_heads,
            n_inner=d_mlp,
            n_positions=1024,
            tie_word_embeddings=tie,
            bos_token_id=256,
            eos_token_id=260,
            pad_token_id=257,
        )
        return _randomised(model_cls, config, seed)
    config = config_cls(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        tie_word_embeddings=tie,
        max_position_embeddings=1024,
        bos_token_id=256,
        eos_token_id=260,
        pad_token_id=257,
    )
    return _randomised(model_cls, config, seed)


def _randomised(model_cls, config, seed: int):
    config._attn_implementation = "eager"
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = model_cls(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if (
                name.endswith("norm.weight")
                or "layernorm" in name
                or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
            ):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif name.endswith(("c_proj.bias", "c_attn.bias", "ln_1.bias", "ln_2.bias")):  # GPT-2's biases start at 0
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    return model.eval()


def build_tiny_model(family: str = "llama", seed: int = 0, **shape):
    """A wrapped tiny random model (``LoadedModel``) named so nobody mistakes it for a real one."""
    tok = byte_tokenizer()
    if family == "gpt2":
        tok.chat_template = None  # a base model: plain prompts
        shape = {k: v for k, v in shape.items() if k != "n_kv_heads"}
    hf = build_tiny_hf(family=family, seed=seed, vocab_size=len(tok), **shape)
    return wrap(hf, tok, name=f"tiny random {family} (untrained)", source="tiny")
