"""Overhead of the one-pass capture against a bare forward pass on the same model, same run.

Prints medians and ratios (capture / bare). Rotates the variants each round so drift in machine
load hits all of them alike. Run from the repository root:
``python -m benchmarks.bench_capture [--model demo] [--tokens 128] [--rounds 7]``; ``--sweep 32 128 512``
reports the main variants at each prompt length instead; ``--explorer 32 128`` reports what the Explorer does
on one prompt (the submit and each view on demand, ``explorer_views``) at each prompt length.
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
    base = base * (words // len(base) + 2)
    return [" ".join(base[i : i + words]) for i in range(n)]


def prompts_of_length(lm, n: int, tokens: int) -> list[str]:
    """``n`` prompts whose longest chat-encoded form has about ``tokens`` tokens (the fewest words reaching it)."""
    lo, hi = 1, max(2, tokens)
    while lo < hi:  # encode length grows with the word count
        mid = (lo + hi) // 2
        if lm.encode_chat(_prompts(n, mid))[0].shape[1] < tokens:
            lo = mid + 1
        else:
            hi = mid
    return _prompts(n, lo)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None, help="model spec (default: a random 8-layer d=512 Llama)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=128, help="prompt length in tokens (chat template included)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--sweep", type=int, nargs="+", metavar="S", help="prompt lengths for the main variants only")
    p.add_argument("--explorer", type=int, nargs="+", metavar="S", help="prompt lengths for the Explorer's costs")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.model:
        from neuroscope.model import load_model

        lm = load_model(args.model)
    else:
        lm = build_tiny_model("llama", d_model=512, n_layers=8, n_heads=8, n_kv_heads=4, d_mlp=1536)
    if args.explorer:
        explorer(lm, args.explorer, args.rounds)
        return
    if args.sweep:
        sweep(lm, args.batch, args.sweep, args.rounds)
        return
    prompts = prompts_of_length(lm, args.batch, args.tokens)
    S, medians = _measure(lm, prompts, args.rounds)
    base = medians[BARE]
    print(
        f"model: {lm.name} ({lm.n_layers} layers, d_model {lm.d_model}); batch {args.batch} x {S} tokens;"
        f" {args.rounds} rounds, torch threads {torch.get_num_threads()}"
    )
    for name, med in medians.items():
        print(f"{name:<44} median {med * 1000:8.1f} ms   ratio {med / base:5.2f}")


BARE, RESID_Z = "bare HF forward", "capture: resid + z (no lens, top_k=0)"
EVERY_VIEW, GRADIENTS = "capture: + attention (all layers)", "capture: + attention + grad x input"


def _measure(lm, prompts: list[str], rounds: int, only: tuple[str, ...] = ()) -> tuple[int, dict[str, float]]:
    """Prompt length and median seconds of every variant (or of those in ``only``), after a warm-up."""
    ids, mask = lm.encode_chat(prompts)

    def bare():
        with torch.no_grad():
            lm.hf(input_ids=ids, attention_mask=mask)

    variants = {
        BARE: bare,
        "HF output_hidden_states": lambda: _hidden(lm, ids, mask),
        "z only (head experiment statistic)": lambda: post_instruction_z(lm, prompts, batch_size=len(prompts)),
        RESID_Z: lambda: capture(lm, prompts, attention_layers=None, top_k=0, gradients=False),
        "capture: resid + z + lens at last 16": lambda: capture(
            lm, prompts, attention_layers=None, gradients=False, lens_positions=16
        ),
        "capture: resid + z + lens everywhere": lambda: capture(lm, prompts, attention_layers=None, gradients=False),
        EVERY_VIEW: lambda: capture(lm, prompts, gradients=False, lens_positions=16),
        GRADIENTS: lambda: capture(lm, prompts, lens_positions=16),
    }
    if only:
        variants = {k: v for k, v in variants.items() if k in only}
    for fn in variants.values():  # warm-up
        fn()
    return ids.shape[1], median_times(variants, rounds)


def sweep(lm, batch: int, lengths: list[int], rounds: int) -> None:
    """Bare forward vs the capture of every view at each prompt length."""
    print(f"model: {lm.name} ({lm.n_layers} layers, d_model {lm.d_model}); batch {batch}; {rounds} rounds")
    print(f"{'S':>5} {'bare ms':>9} {'resid+z':>8} {'every view':>11} {'+ grad x input':>15}")
    for target in lengths:
        prompts = prompts_of_length(lm, batch, target)
        S, m = _measure(lm, prompts, rounds, only=(BARE, RESID_Z, EVERY_VIEW, GRADIENTS))
        b = m[BARE]
        print(f"{S:>5} {b * 1000:>9.1f} {m[RESID_Z] / b:>8.2f} {m[EVERY_VIEW] / b:>11.2f} {m[GRADIENTS] / b:>15.2f}")


def explorer(lm, lengths: list[int], rounds: int) -> None:
    """The Explorer on one prompt: the submit and each view, as ratios to a bare forward of that prompt."""
    from benchmarks.explorer_views import RATIOS, explorer_costs

    print(f"model: {lm.name} ({lm.n_layers} layers, d_model {lm.d_model}); one prompt; {rounds} rounds")
    print(f"{'S':>5} {'bare ms':>9} " + " ".join(f"{name:>{max(8, len(name))}}" for name in RATIOS))
    for target in lengths:
        costs = explorer_costs(lm, prompts_of_length(lm, 1, target)[0], rounds)
        r = costs["ratios"]
        cells = " ".join(f"{r[name]:>{max(8, len(name))}.3f}" for name in RATIOS)
        print(f"{costs['tokens']:>5} {costs['seconds']['bare'] * 1000:>9.1f} {cells}")


def _hidden(lm, ids, mask):
    with torch.no_grad():
        lm.hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)


if __name__ == "__main__":
    main()
