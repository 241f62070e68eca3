"""Wall time of the full experiment (every step, fresh output folder) against one baseline pass.

The baseline, measured in the same run on the same model: one greedy generation of the held-out
harmful prompts with no intervention (what a plain "how often does it refuse?" check costs). The
experiment's time is printed per step and as a multiple of that baseline.
Run from the repository root: ``python -m benchmarks.bench_experiment [--model demo] [--data-dir DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from neuroscope.model import _compat  # noqa: F401

import torch

from neuroscope.experiment import ExperimentConfig, load_experiment_data, run_experiment
from neuroscope.model.generate import generate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="demo", help="model spec ('demo', a folder, a hub id, or 'tiny')")
    p.add_argument("--data-dir", default="", help="research prompt sets (default: $NEUROSCOPE_DATA_DIR, else curated)")
    p.add_argument(
        "--out", default="", help="a new or empty output folder, kept (default: a temporary folder, removed afterwards)"
    )
    args = p.parse_args(argv)
    if args.out and Path(args.out).exists() and (not Path(args.out).is_dir() or any(Path(args.out).iterdir())):
        # every step must run (nothing resumed), and a user's folder is never deleted
        print(f"bench_experiment: error: --out {args.out} must be a new or empty folder", file=sys.stderr)
        return 2
    if args.model == "tiny":
        from neuroscope.model.tiny import build_tiny_model

        lm = build_tiny_model()
    else:
        from neuroscope.model import load_model

        lm = load_model(args.model)
    config = ExperimentConfig(data_dir=args.data_dir)
    data = load_experiment_data(config)
    out = args.out or tempfile.mkdtemp(prefix="bench-experiment-")
    prompts = [q.instruction for q in data.test_harmful]
    t0 = time.perf_counter()
    generate(lm, prompts, config.max_new_tokens, batch_size=config.batch_size)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_experiment(lm, config, out, data=data)
    total = time.perf_counter() - t0
    print(f"model {lm.name}; {torch.get_num_threads()} torch threads; data: {data.description}")
    print(
        f"baseline: one greedy generation of {len(prompts)} held-out harmful prompts "
        f"({config.max_new_tokens} tokens): {baseline:.1f} s"
    )
    for step, seconds in result.seconds.items():
        print(f"  {step:<18} {seconds:7.1f} s  ({seconds / baseline:5.1f}x baseline)")
    print(f"full experiment: {total:.1f} s = {total / 60:.1f} min = {total / baseline:.1f}x baseline")
    if not args.out:  # only the folder this script made
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
