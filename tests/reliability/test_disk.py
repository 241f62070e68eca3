"""Disk per app instance and per visitor (#31): each app process has its own scratch folder (removed at exit),
each visitor's experiment folders live under their session and go when their page closes."""

from __future__ import annotations

import subprocess
from pathlib import Path
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


def test_a_closed_page_takes_gradios_copies_of_its_downloads_with_it(tmp_path):
    """gradio copies each download into its cache (named by a hash of the content) and keeps the copy until
    ``delete_cache``'s age; a closed page's copies go with its folders, except one whose content another
    visitor's runs also offer."""
    from gradio.processing_utils import save_file_to_cache

    from neuroscope.ui.experiment_tab import release_session_runs, session_runs

    cache = tmp_path / "gradio-cache"
    mine, theirs = session_runs("carol-1") / "demo-abc", session_runs("dave-2") / "demo-abc"
    for folder in (mine, theirs):
        folder.mkdir(parents=True)
        (folder / "direction.safetensors").write_bytes(b"the same deterministic direction")
    (mine / "report.html").write_text("carol's report " * 1000)
    (theirs / "report.html").write_text("dave's report " * 1000)
    copies = {
        f"{who}/{file}": Path(save_file_to_cache(folder / file, str(cache)))
        for who, folder in (("carol", mine), ("dave", theirs))
        for file in ("report.html", "direction.safetensors")
    }
    assert len({c.parent for c in copies.values()}) == 3  # the shared direction is one copy
    release_session_runs("carol-1", cache)
    assert not copies["carol/report.html"].exists() and not session_runs("carol-1").exists()
    assert copies["dave/report.html"].exists() and copies["carol/direction.safetensors"].exists()
    release_session_runs("dave-2", cache)
    assert not any(c.exists() for c in copies.values())
