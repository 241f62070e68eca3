"""Shared timing for the benchmarks: medians over rounds that rotate the variants' order."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_times(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each variant over ``rounds``; each round starts at a different variant, so that
    drift in machine load hits all of them alike. Run a warm-up before."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}
