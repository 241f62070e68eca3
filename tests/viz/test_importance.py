import re

import numpy as np
import pytest

from neuroscope.viz import theme, token_importance_bar, token_importance_html

TOKENS = ["<script>alert('x')</script>", " good", "\n", 'bad"attr']
SCORES = np.array([0.5, 2.0, 0.0, -1.0])


def _spans(html):
    pattern = r'<span title="([^"]*)" data-score="([^"]*)" style="background-color:([^;]*);'
    return re.findall(pattern, html)


def test_html_escapes_tokens_and_tooltips():
    out = token_importance_html(TOKENS, SCORES)
    assert "<script>" not in out and "</script>" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert "bad&quot;attr" in out
    assert len(_spans(out)) == 4  # a quote inside a token did not break the attribute


def test_html_colours_by_sign_and_magnitude():
    spans = _spans(token_importance_html(TOKENS, SCORES))
    red = "rgba({},{},{}".format(*theme.POSITIVE_RGB)
    blue = "rgba({},{},{}".format(*theme.NEGATIVE_RGB)
    assert spans[0][2].startswith(red) and spans[1][2].startswith(red)
    assert spans[3][2].startswith(blue)
    alphas = [float(s[2].rsplit(",", 1)[1].rstrip(")")) for s in spans]
    assert alphas[1] > alphas[3] > alphas[0] > alphas[2] == 0.0  # |2| > |-1| > |0.5| > 0
    assert [float(s[1]) for s in spans] == SCORES.tolist()
    assert "+2" in spans[1][0] and "-1" in spans[3][0] and spans[1][0].startswith("1: ▁good")


def test_html_newline_breaks_line_and_zero_scores_ok():
    out = token_importance_html(["a", "\n", "b"], [0.0, 0.0, 0.0])
    assert "↵<br>" in out


def test_html_rejects_mismatch_and_nan():
    with pytest.raises(ValueError, match="scores"):
        token_importance_html(TOKENS, SCORES[:3])
    with pytest.raises(ValueError, match="NaN"):
        token_importance_html(TOKENS, [np.nan, 0, 0, 0])


def test_bar_data_and_labels():
    fig = token_importance_bar(TOKENS, SCORES)
    bar = fig.data[0]
    np.testing.assert_array_equal(bar.y, SCORES)
    assert bar.x[1] == "1: ▁good" and bar.x[2] == "2: ↵" and len(set(bar.x)) == 4
    assert bar.marker.color[1] != bar.marker.color[3]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    fig.to_json()
