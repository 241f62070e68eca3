"""One memory budget for every visitor's kept runs (#31): the least recently used go first, other visitors'
before the asker's, the run in use never; a dropped run says why; gradio dropping a state frees its entry."""

from __future__ import annotations

import gc

import pytest
import torch

from neuroscope.ui.sessions import RunLedger


class Run:
    def __init__(self, n_floats: int) -> None:
        self.data: torch.Tensor | None = torch.zeros(n_floats)
        self.released_for = 0

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else self.data.numel() * 4

    def release(self, budget_mb: int = 0) -> None:
        self.data, self.released_for = None, budget_mb


MB = 2**20 // 4  # floats per MB


def test_past_the_budget_the_least_recently_used_runs_of_other_visitors_go_first():
    ledger = RunLedger(budget_mb=3)
    a, b, c = Run(MB), Run(MB), Run(MB)
    ledger.admit(a, "alice")
    ledger.admit(b, "bob")
    ledger.admit(c, "carol")
    assert ledger.held_bytes() == 3 * 2**20 and ledger.released == 0
    ledger.touch(a)  # alice looked at a view: bob's run is now the oldest
    d = Run(MB)
    ledger.admit(d, "carol")  # carol's new run: bob's goes, not carol's own older one
    assert b.data is None and b.released_for == 3
    assert all(r.data is not None for r in (a, c, d)) and ledger.held_bytes() == 3 * 2**20
    e = Run(MB)
    ledger.admit(e, "alice")  # next: carol's older run (c), then carol's d would follow before alice's own a
    assert c.data is None and a.data is not None and d.data is not None


def test_a_run_larger_than_the_budget_is_kept_and_everything_else_goes():
    ledger = RunLedger(budget_mb=1)
    small = Run(MB // 2)
    ledger.admit(small, "alice")
    big = Run(2 * MB)
    ledger.admit(big, "bob")
    assert big.data is not None and small.data is None  # the run being used now is never dropped


def test_views_growing_a_run_count_when_it_is_touched():
    ledger = RunLedger(budget_mb=2)
    a, b = Run(MB // 2), Run(MB // 2)
    ledger.admit(a, "alice")
    ledger.admit(b, "bob")
    b.data = torch.zeros(int(1.8 * MB))  # bob opened views: his run grew
    ledger.touch(b)
    assert a.data is None and b.data is not None


def test_a_state_gradio_dropped_leaves_the_ledger():
    ledger = RunLedger(budget_mb=1)
    run = Run(MB // 2)
    ledger.admit(run, "alice")
    assert ledger.held_bytes() == 2**19
    del run
    gc.collect()
    assert ledger.held_bytes() == 0 and not ledger._runs


def test_a_dropped_explorer_run_says_why():
    from neuroscope.model.chat import PromptError
    from neuroscope.ui.explorer_views import Shown

    shown = Shown(result=object(), deltas=None)  # type: ignore[arg-type]
    shown.release(512)
    assert shown.nbytes == 0
    with pytest.raises(PromptError, match="dropped to make room for other visitors.*512 MB.*press Run again"):
        shown.run()
