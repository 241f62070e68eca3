"""The harmfulness-vs-refusal map's cost against the forward passes it needs, same run.

The map reads two positions of every layer's input for each prompt (``model.activations.resid_pre_at``).
Its floor is one bare forward pass per batch of prompts; the target is at most 2x that floor for 64 harmful
+ 64 harmless prompts. Prints medians and the ratio; ``--json FILE`` writes them. Run from the repository
root: ``python -m benchmarks.bench_harmfulness [--model demo] [--prompts 64] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json

from neuroscope.model import _compat  # noqa: F401

import torch

from benchmarks.bench_capture import prompts_of_length
from benchmarks.timing import median_times
from neuroscope.model.activations import resid_pre_at
from neuroscope.model.generate import _batches
from neuroscope.model.tiny import build_tiny_model

TARGET = 2.0


def measure(lm, n: int, tokens: int, rounds: int, batch_size: int = 32) -> dict[str, float]:
    prompts = prompts_of_length(lm, 2 * n, tokens)  # 64 harmful + 64 harmless: the same count of prompts
    encoded = [lm.encode_chat(chunk) for chunk in _batches(prompts, batch_size)]

    def bare():
        with torch.no_grad():
            for ids, mask in encoded:
                lm.hf(input_ids=ids, attention_mask=mask)

    def the_map():
        resid_pre_at(lm, prompts, [lm.last_instruction_position, -1], batch_size=batch_size)

    variants = {"bare forward passes": bare, "harmfulness map activations": the_map}
    for fn in variants.values():
        fn()  # warm-up
    medians = median_times(variants, rounds)
    return {
        "prompts": 2 * n,
        "tokens": int(encoded[0][0].shape[1]),
        "bare_s": medians["bare forward passes"],
        "map_s": medians["harmfulness map activations"],
        "ratio": medians["harmfulness map activations"] / medians["bare forward passes"],
        "target": TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None, help="model spec (default: a random 8-layer d=512 Llama)")
    p.add_argument("--prompts", type=int, default=64, help="prompts per side (default 64)")
    p.add_argument("--tokens", type=int, default=32, help="prompt length in tokens, template included (default 32)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default=None, help="write the numbers to this file")
    args = p.parse_args(argv)
    if args.model:
        from neuroscope.model import load_model

        lm = load_model(args.model)
    else:
        lm = build_tiny_model("llama", d_model=512, n_layers=8, n_heads=8, n_kv_heads=4, d_mlp=1536)
    r = measure(lm, args.prompts, args.tokens, args.rounds)
    print(
        f"model: {lm.name}; {r['prompts']} prompts x {r['tokens']} tokens; {args.rounds} rounds\n"
        f"bare forward passes          median {r['bare_s'] * 1000:8.1f} ms\n"
        f"harmfulness map activations  median {r['map_s'] * 1000:8.1f} ms   ratio {r['ratio']:.2f} "
        f"(target <= {TARGET})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
