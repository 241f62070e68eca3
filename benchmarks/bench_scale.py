"""The engine at the real model's scale: the Llama-3.2-3B-Instruct stand-in, every path against a baseline.

Loads a stand-in (``python -m neuroscope standin --out DIR``: 28 layers, d_model 3072, vocab 128,256,
random weights) through the normal loader and prints, in one run:

- load time and peak memory (host RSS; GPU peak allocation with ``--device cuda``);
- per prompt length S (``--seq``): what the Explorer costs (``explorer_views``): the submit (one traced
  forward pass, answer excluded), each view on demand (the lens at one position and at the shown ones,
  one layer's attention, gradient x input, PCA, a head's logit lens), every view opened, and the eager
  full capture it replaced, as medians and ratios to a bare HF forward of the same prompt;
- per prompt length S (``--memory-seq``): what one visitor's session holds after a submit with every
  view opened;
- generation of ``--new-tokens`` tokens: bare HF ``generate`` vs the engine's ``generate`` plain,
  with the direction mean-ablated (hooks), added (hooks), and ablated through orthogonalised
  weights (edited in place at the end: a second copy of the weights would not fit a 24 GB host);
- one direction computation (difference of means at every layer and post-instruction position)
  on ``--direction-prompts`` + as many prompts, against bare forwards over the same prompts.

Run from the repository root::

    python -m neuroscope standin --out /tmp/standin28
    python -m benchmarks.bench_scale --model /tmp/standin28 [--device cuda] [--seq 64,128] [--rounds 3] \
        [--memory-seq 128,512,1024] [--views-only] [--json FILE]

``--json FILE`` writes, for each S, the ratios ``submit``, ``lens_one_position``, ``attention_one_layer``,
``gradients`` and ``every_view_no_grad`` (and the others of ``explorer_views.RATIOS``), each to the bare
forward measured in the same run, and the session sizes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from neuroscope.model import _compat  # noqa: F401

import torch


def _rss_gib() -> float:
    """Peak resident set size so far (includes pages of the memory-mapped checkpoint read at load)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)


def _rss_now_gib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _prompt_of_length(lm, target: int) -> str:
    """A user message whose chat-formatted prompt is ``target`` tokens long (or just under)."""
    words = "the residual stream carries information between layers and heads of a transformer".split()
    n = 1
    while True:
        text = " ".join((words * (target // len(words) + 2))[: n + 1])
        ids, _ = lm.encode_chat([text])
        if ids.shape[1] > target:
            return " ".join((words * (target // len(words) + 2))[:n])
        n += 1


def _timed(fn, rounds: int) -> float:
    fn()  # warm-up (allocations, nnsight set-up)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _write(path: str | None, record: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(record, fh, indent=2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="stand-in folder (or any local Llama-family chat model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16")
    p.add_argument("--seq", default="64,128", help="prompt lengths in tokens for the timings, comma-separated")
    p.add_argument("--memory-seq", default="128,512,1024", help="prompt lengths for the session sizes ('' = none)")
    p.add_argument("--views-only", action="store_true", help="only the Explorer rows (no generation, no direction)")
    p.add_argument("--json", default=None, help="also write the Explorer's ratios and session sizes here")
    p.add_argument("--rounds", type=int, default=3, help="timed repetitions per variant (median reported)")
    p.add_argument("--new-tokens", type=int, default=8, help="generated tokens in the generation rows")
    p.add_argument("--direction-prompts", type=int, default=32, help="prompts per side for the direction row")
    args = p.parse_args()

    from benchmarks.explorer_views import RATIOS, explorer_costs, session_bytes
    from neuroscope.method.direction import compute_candidates
    from neuroscope.model import load_model
    from neuroscope.model.generate import generate_ids
    from neuroscope.model.interventions import DirectionAblation, DirectionAddition
    from neuroscope.model.orthogonalize import orthogonalize_weights
    from neuroscope.prompts import load_curated_pairs

    t0 = time.perf_counter()
    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    on_gpu = lm.device.type == "cuda"
    rows: list[tuple[str, float, str]] = []

    def row(name: str, secs: float, ratio: str) -> None:  # printed as it comes: a long run keeps what it measured
        rows.append((name, secs, ratio))
        print(f"| {name} | {secs:.2f} | {ratio} |", flush=True)

    def gpu_peak() -> str:
        return f", GPU peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if on_gpu else ""

    print(
        f"model: {args.model}: {lm.n_layers} layers, d_model {lm.d_model}, {lm.n_heads}/{lm.n_kv_heads} heads, "
        f"vocab {lm.vocab_size}, {lm.dtype} on {lm.device}; torch threads {torch.get_num_threads()}"
    )
    print(f"load: {load_s:.1f} s; peak RSS after load {_rss_gib():.1f} GiB (now {_rss_now_gib():.1f} GiB){gpu_peak()}")
    print("\n| what | median (s) | ratio to its baseline |\n|---|---|---|", flush=True)

    record: dict = {
        "model": args.model,
        "layers": lm.n_layers,
        "d_model": lm.d_model,
        "vocab": lm.vocab_size,
        "dtype": str(lm.dtype).replace("torch.", ""),
        "device": str(lm.device),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "by_seq": {},
        "session": {},
    }
    for S in [int(s) for s in args.seq.split(",") if s]:
        costs = explorer_costs(lm, _prompt_of_length(lm, S), args.rounds)
        record["by_seq"][str(S)] = costs
        _write(args.json, record)  # what is measured so far survives a later failure
        n, sec = costs["tokens"], costs["seconds"]
        row(f"bare HF forward, S={n}", sec["bare"], "1.00")
        for name in RATIOS:
            row(f"Explorer {name}, S={n}", sec[name], f"{costs['ratios'][name]:.3f}")
    for S in [int(s) for s in args.memory_seq.split(",") if s]:
        held = session_bytes(lm, _prompt_of_length(lm, S))
        record["session"][str(S)] = held
        print(
            f"session after a submit with every view but gradient x input opened, S={held['tokens']}: {held['session_mb']:.1f} MB "
            f"(stream {held['stream_mb']:.1f} MB in {held['stream_dtype']}, views {held['views_mb']:.1f} MB)",
            flush=True,
        )
        _write(args.json, record)
    _write(args.json, record)
    if args.views_only:
        print(f"\npeak RSS {_rss_gib():.1f} GiB (now {_rss_now_gib():.1f} GiB){gpu_peak()}")
        return

    prompt = _prompt_of_length(lm, 32)
    ids, mask = lm.encode_chat([prompt])
    n = args.new_tokens
    r = torch.randn(lm.d_model, generator=torch.Generator().manual_seed(0)) * 10
    target = torch.zeros(lm.n_layers)

    def bare_generate():
        with torch.no_grad():
            lm.hf.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=lm.tokenizer.pad_token_id,
            )

    base = _timed(bare_generate, args.rounds)
    row(f"bare HF generate, {n} tokens", base, "1.00")
    for name, ivs in (
        ("engine generate, no intervention", []),
        ("engine generate, direction mean-ablated (hooks)", [DirectionAblation(r, target=target)]),
        ("engine generate, direction added at the middle layer (hooks)", [DirectionAddition(r, lm.n_layers // 2, 1.0)]),
    ):
        t = _timed(lambda ivs=ivs: generate_ids(lm, [prompt], n, ivs), args.rounds)
        row(name, t, f"{t / base:.2f}")

    pairs = load_curated_pairs()[: args.direction_prompts]
    harmful, harmless = [h.instruction for h, _ in pairs], [b.instruction for _, b in pairs]
    t_dir = _timed(lambda: compute_candidates(lm, harmful, harmless, batch_size=16), 1)

    def bare_forwards():
        for chunk in (harmful, harmless):
            for start in range(0, len(chunk), 16):
                i, m = lm.encode_chat(chunk[start : start + 16])
                with torch.no_grad():
                    lm.hf(input_ids=i, attention_mask=m)

    t_fw = _timed(bare_forwards, 1)
    row(
        f"direction: means at every layer x position, {len(harmful)}+{len(harmless)} prompts",
        t_dir,
        f"{t_dir / t_fw:.2f} (vs bare forwards {t_fw:.1f} s)",
    )

    print(f"(peak RSS so far {_rss_gib():.1f} GiB, now {_rss_now_gib():.1f} GiB{gpu_peak()})", flush=True)
    with lm.lock:
        orthogonalize_weights(lm, r)  # in place: the run ends here
    t = _timed(lambda: generate_ids(lm, [prompt], n), args.rounds)
    row("engine generate, orthogonalised weights (ablated, no hooks)", t, f"{t / base:.2f}")

    print(
        f"\npeak RSS {_rss_gib():.1f} GiB (now {_rss_now_gib():.1f} GiB){gpu_peak()}; medians of {args.rounds} "
        "rounds after a warm-up"
    )


if __name__ == "__main__":
    main()
