"""Overhead of the one-pass capture against a bare forward pass on the same model, same run.

Prints medians and ratios (capture / bare). Rotates the variants each round so drift in machine
load hits all of them alike. Run from the repository root: ``python -m benchmarks.bench_capture [--model demo] [--rounds 7]``.
"""

from __future__ import annotations

import argparse

from neuroscope.model import _compat  # noqa: F401

from benchmarks.timing import median_times

import torch

from neuroscope.model.activations import post_instruction_z
from neuroscope.model.capture import capture
from neuroscope.model.tiny import build_tiny_model


def _prompts(n: int, words: int) -> list[str]:
    base = "explain how the residual stream of a transformer carries information between layers and heads".split()
    return [" ".join((base * 8)[i : i + words]) for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None, help="model spec (default: a random 8-layer d=512 Llama)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--words", type=int, default=40)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.model:
        from neuroscope.model import load_model

        lm = load_model(args.model)
    else:
        lm = build_tiny_model("llama", d_model=512, n_layers=8, n_heads=8, n_kv_heads=4, d_mlp=1536)
    prompts = _prompts(args.batch, args.words)
    ids, mask = lm.encode_chat(prompts)

    def bare():
        with torch.no_grad():
            lm.hf(input_ids=ids, attention_mask=mask)

    variants = {
        "bare HF forward": bare,
        "HF output_hidden_states": lambda: _hidden(lm, ids, mask),
        "z only (head experiment statistic)": lambda: post_instruction_z(lm, prompts, batch_size=args.batch),
        "capture: resid + z (no lens, top_k=0)": lambda: capture(
            lm, prompts, attention_layers=None, top_k=0, gradients=False
        ),
        "capture: resid + z + lens at last 16": lambda: capture(
            lm, prompts, attention_layers=None, gradients=False, lens_positions=16
        ),
        "capture: resid + z + lens everywhere": lambda: capture(lm, prompts, attention_layers=None, gradients=False),
        "capture: + attention (all layers)": lambda: capture(lm, prompts, gradients=False, lens_positions=16),
        "capture: + attention + grad x input": lambda: capture(lm, prompts, lens_positions=16),
    }
    for fn in variants.values():  # warm-up
        fn()
    names = list(variants)
    medians = median_times(variants, args.rounds)
    base = medians["bare HF forward"]
    print(
        f"model: {lm.name} ({lm.n_layers} layers, d_model {lm.d_model}); batch {args.batch} x {ids.shape[1]} tokens;"
        f" {args.rounds} rounds, torch threads {torch.get_num_threads()}"
    )
    for name in names:
        med = medians[name]
        print(f"{name:<44} median {med * 1000:8.1f} ms   ratio {med / base:5.2f}")


def _hidden(lm, ids, mask):
    with torch.no_grad():
        lm.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)


if __name__ == "__main__":
    main()
