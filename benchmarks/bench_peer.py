"""The capture beside TransformerLens's ``run_with_cache`` on the same weights, in the same run.

    python -m benchmarks.bench_peer [--words 16] [--rounds 7]

TransformerLens 4.x (``TransformerBridge.boot_transformers`` over the same Hugging Face module) is
not a dependency of NeuroScope: without it the benchmark says so and exits 0. Reports median time
and the bytes each cache holds (every tensor it keeps), as ratios to a bare forward timed in the
same rounds, on a random 8-layer d512 Llama saved to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile

from neuroscope.model import _compat  # noqa: F401

from benchmarks.timing import median_times

import torch

from neuroscope.model.capture import capture
from neuroscope.model.loader import load_model
from neuroscope.model.tiny import build_tiny_model


def _bytes(obj) -> int:
    if hasattr(obj, "cache_dict"):  # TransformerLens's ActivationCache
        return _bytes(obj.cache_dict)
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_bytes(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_bytes(getattr(obj, f)) for f in obj.__dataclass_fields__)
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--words", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        print("TransformerLens 4.x is not installed (pip install transformer-lens): nothing to compare; skipped.")
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tempfile.mkdtemp(prefix="neuroscope-peer-")
    tiny = build_tiny_model("llama", d_model=512, n_layers=8, n_heads=8, n_kv_heads=4, d_mlp=1536)
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    lm = load_model(folder)
    # A second copy of the same weights: booting the bridge rewires the module it is given.
    peer = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    bridge = TransformerBridge.boot_transformers(folder, hf_model=peer, tokenizer=AutoTokenizer.from_pretrained(folder))
    base = "explain how the residual stream of a transformer carries information between layers and heads".split()
    prompts = [" ".join((base * 8)[i : i + args.words]) for i in range(args.batch)]
    ids, mask = lm.encode_chat(prompts)
    wanted = ("hook_resid_pre", "hook_z", "hook_pattern", "hook_attn_out", "hook_resid_post")

    def bare():
        with torch.no_grad():
            return lm.hf(input_ids=ids, attention_mask=mask).logits

    def tl(names_filter=None):
        with torch.no_grad():
            return bridge.run_with_cache(ids, attention_mask=mask, names_filter=names_filter)[1]

    variants = {
        "bare HF forward": bare,
        "NeuroScope capture: resid + z + attention + lens at last 16": lambda: capture(
            lm, prompts, gradients=False, lens_positions=16
        ),
        "NeuroScope capture: resid + z only": lambda: capture(
            lm, prompts, attention_layers=None, top_k=0, gradients=False
        ),
        "TransformerLens run_with_cache (every hook)": tl,
        "TransformerLens run_with_cache (resid, z, pattern, attn_out)": lambda: tl(lambda n: n.endswith(wanted)),
    }
    held = {name: _bytes(fn()) for name, fn in variants.items()}  # warm-up, and what each keeps
    names = list(variants)
    medians = median_times(variants, args.rounds)
    b = medians["bare HF forward"]
    print(f"same weights (random 8-layer d512 Llama); batch {args.batch} x {ids.shape[1]} tokens; {args.rounds} rounds")
    for name in names:
        med = medians[name]
        print(f"{name:<62} {med * 1000:8.1f} ms  x{med / b:5.2f}   holds {held[name] / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
