"""Report tables survive tokens that contain the table's own separator."""

from __future__ import annotations

from neuroscope.experiment import report


def test_a_pipe_inside_a_token_stays_in_its_cell_in_markdown_and_html():
    rows = [["-1", "`<|eot_id|>`", "0.50"], ["-2", "a\nb", "x|y"]]
    md = "\n".join(report.markdown_table(["position", "token", "score"], rows))
    html = report.md_to_html(md)
    assert html.count("<tr>") == 3 and html.count("<td>") == 6  # 3 cells per row, never more
    assert "<code>&lt;|eot_id|&gt;</code>" in html and "<td>x|y</td>" in html


def test_the_html_report_escapes_raw_html_in_the_text():
    html = report.md_to_html("**bold** <script>alert(1)</script>")
    assert "<strong>bold</strong>" in html and "<script>" not in html
