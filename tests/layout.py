"""What the browser tests share: Playwright and Chromium (or a skip), and the figure layout check that reads
plotly's own bounding boxes in Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# CI sets NEUROSCOPE_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("NEUROSCOPE_REQUIRE_BROWSER") == "1"


def browser_or_skip():
    """``(playwright.sync_api, chromium path)``; skips the calling test module where either is missing
    (a failure under ``NEUROSCOPE_REQUIRE_BROWSER=1``). Call at module level."""
    if REQUIRED:
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip(
            "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
        )
    chromium = os.environ.get("NEUROSCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        if REQUIRED:
            raise RuntimeError(f"NEUROSCOPE_REQUIRE_BROWSER=1 but Chromium was not found at {chromium}")
        pytest.skip(f"Chromium not found at {chromium} (apt-get install chromium)", allow_module_level=True)
    return sync_api, chromium


# Every visible 2-D plotly figure: its title, axis and colour-bar titles, annotations and legend must not overlap
# each other or the tick labels, and must lie inside the figure (a cut title). 3-D scenes draw their
# axis titles in WebGL, out of reach of the DOM, and are left out.
LAYOUT_CHECK = r"""
() => {
  const problems = [];
  const area = (a, b) => Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left))
                       * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));
  document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
    const root = gd.getBoundingClientRect();
    if (!root.width || !root.height || !gd._fullLayout) return;  // a hidden tab
    const name = ((gd._fullLayout.title || {}).text || `figure ${i}`).slice(0, 60);
    const items = [];
    const add = (selector, kind) => gd.querySelectorAll(selector).forEach((el) => {
      const r = el.getBoundingClientRect();
      const text = (el.textContent || '').trim();
      if (r.width > 0 && r.height > 0 && text) items.push({ kind, text: text.slice(0, 40), r });
    });
    add('.infolayer .gtitle', 'title');
    add('.infolayer text[class$="title"]:not(.gtitle)', 'axis title');
    add('.infolayer .annotation-text', 'annotation');
    add('.infolayer .legend', 'legend');
    const labels = items.length;
    add('.xaxislayer-above text, .yaxislayer-above text', 'tick');
    for (let a = 0; a < labels; a++) {
      const A = items[a];
      if (A.r.left < root.left - 2 || A.r.right > root.right + 2 || A.r.top < root.top - 2 || A.r.bottom > root.bottom + 2)
        problems.push(`${name}: ${A.kind} "${A.text}" is cut by the figure's edge`);
      for (let b = a + 1; b < items.length; b++) {
        const B = items[b];
        if (area(A.r, B.r) > 4) problems.push(`${name}: ${A.kind} "${A.text}" overlaps ${B.kind} "${B.text}"`);
      }
    }
  });
  return problems;
}
"""
