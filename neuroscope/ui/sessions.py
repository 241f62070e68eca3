"""One memory budget for the runs every visitor keeps (the Explorer's last prompt, the last induction run).

Each kept run is an object with ``nbytes`` (what it holds now, views included) and ``release()`` (drop the
tensors, remember that it was dropped). The ledger holds weak references only: when gradio drops a session's
state (its page closed, or it expired) the run leaves the ledger by itself. Past the budget the least recently
used runs are released, other visitors' first; their holders then tell their visitor why (``DROPPED``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from typing import Any

log = logging.getLogger("neuroscope.ui")

DROPPED = (
    "your last run was dropped to make room for other visitors' runs (the app keeps {budget} MB of runs for "
    "everyone together): press Run again"
)


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def tune_allocator() -> bool:
    """Fixes glibc's mmap threshold at 1 MB, so that every large buffer (a tensor of a visitor's run) is its own
    mapping, handed back to the system when freed. glibc otherwise raises the threshold after each large free
    (up to 32 MB), and later large tensors land in the heap, where the holes they leave keep the process at
    its high-water mark. Call once at start-up; True where it applied (glibc), False elsewhere."""
    libc = _libc()
    try:
        return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except AttributeError:  # not glibc
        return False


def return_free_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc ``malloc_trim``). A large run's transient
    tensors (an induction batch's attention, ~0.8 GB on the demo model at the largest sizes) are freed when
    it ends, but glibc keeps the pages, so the process would stay at its high-water mark; a no-op elsewhere."""
    libc = _libc()
    try:
        if libc is not None:
            libc.malloc_trim(0)
    except AttributeError:
        pass


class RunLedger:
    """The runs kept by every session, least recently used first, within ``budget_mb`` together."""

    def __init__(self, budget_mb: int) -> None:
        self.budget_mb = int(budget_mb)
        self._lock = threading.Lock()
        self._runs: dict[int, tuple[weakref.ref, str | None, int]] = {}  # id -> (run, session, last use)
        self._clock = itertools.count()
        self.released = 0  # runs released for room so far

    def admit(self, run: Any, session: str | None) -> None:
        """Registers a new run (most recently used), then releases the oldest runs while over budget."""
        with self._lock:
            self._runs[id(run)] = (weakref.ref(run), session, next(self._clock))
            self._fit(keep=run)

    def touch(self, run: Any) -> None:
        """Marks a run used now (a view of it was opened), and re-checks the budget (its views grew it)."""
        with self._lock:
            entry = self._runs.get(id(run))
            if entry is not None and entry[0]() is run:
                self._runs[id(run)] = (entry[0], entry[1], next(self._clock))
                self._fit(keep=run)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(run.nbytes for run in self._live())

    def _live(self) -> list[Any]:
        dead = [key for key, (ref, _, _) in self._runs.items() if ref() is None]
        for key in dead:
            del self._runs[key]
        return [ref() for ref, _, _ in self._runs.values()]

    def _fit(self, keep: Any) -> None:
        budget = self.budget_mb * 2**20
        live = self._live()
        total = sum(run.nbytes for run in live)
        if total <= budget:
            return
        _, session, _ = self._runs[id(keep)]
        # Oldest first, other sessions before the one that asked; the run being used now is never released.
        order = sorted(
            (entry for entry in self._runs.items() if entry[1][0]() is not keep),
            key=lambda item: (item[1][1] == session, item[1][2]),
        )
        for key, (ref, _, _) in order:
            if total <= budget:
                break
            run = ref()
            if run is None:
                continue
            total -= run.nbytes
            run.release(self.budget_mb)
            del self._runs[key]
            self.released += 1
        return_free_memory()
        if self.released:
            log.info("run memory: %.0f MB held after releasing old runs (budget %d MB)", total / 2**20, self.budget_mb)
