"""Disk per app instance and per visitor (#31): each app process has its own scratch folder (removed at exit),
each visitor's experiment folders live under their session and go when their page closes."""

from __future__ import annotations

import subprocess
import sys

from neuroscope.model import _compat  # noqa: F401


def test_each_app_process_has_its_own_scratch_folder_removed_at_exit():
    code = "from neuroscope.ui.common import instance_dir; d = instance_dir(); (d / 'x').write_text('1'); print(d)"
    run = lambda: (
        subprocess.run(  # noqa: E731
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    first, second = run(), run()
    assert first != second
    from pathlib import Path

    assert not Path(first).exists() and not Path(second).exists()  # removed when each process ended


def test_a_visitors_experiment_folders_go_when_their_page_closes():
    from neuroscope.ui.common import instance_dir
    from neuroscope.ui.experiment_tab import release_session_runs, runs_root, session_runs

    mine, theirs = session_runs("alice-123"), session_runs("bob/../../etc")
    assert mine.parent == theirs.parent == runs_root() and runs_root().parent == instance_dir()
    for folder in (mine, theirs):
        (folder / "demo-abc").mkdir(parents=True)
        (folder / "demo-abc" / "report.md").write_text("x")
    release_session_runs("alice-123")
    assert not mine.exists() and (theirs / "demo-abc" / "report.md").exists()
    release_session_runs("bob/../../etc")
    assert not theirs.exists() and instance_dir().exists()
