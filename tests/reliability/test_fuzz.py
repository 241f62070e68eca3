"""Property-based fuzzing of every handler's input validation: any input either passes validation
with a value in range, or raises the project's ``UserError`` with a message; nothing else escapes."""

from __future__ import annotations

import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from neuroscope import services  # noqa: E402
from neuroscope.config import Settings  # noqa: E402
from neuroscope.errors import UserError  # noqa: E402
from neuroscope.services.induction import check_settings  # noqa: E402
from neuroscope.model.chat import MAX_PROMPT_CHARS, clean_instruction  # noqa: E402

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(), st.integers(), max_size=2),
)
FUZZ = hsettings(max_examples=300, deadline=None)


@FUZZ
@given(st.one_of(anything, st.text(alphabet=st.characters(), max_size=300)))
def test_prompt_validation(value):
    try:
        text = clean_instruction(value, max_tokens=64)
    except UserError as err:
        assert str(err)
        return
    assert isinstance(text, str) and text == text.strip() and text and len(text) <= min(MAX_PROMPT_CHARS, 64 * 16)


@FUZZ
@given(anything)
def test_numbers(value):
    for check in (services.as_float, services.as_int):
        try:
            x = check(value, "x")
        except UserError as err:
            assert "x must be" in str(err)
            continue
        assert math.isfinite(x)
        if check is services.as_int:
            assert isinstance(x, int)


@FUZZ
@given(anything)
def test_answer_length(value):
    s = Settings()
    try:
        n = services.check_new_tokens(value, s)
    except UserError:
        return
    assert 1 <= n <= s.max_new_tokens_limit


@FUZZ
@given(st.one_of(anything, st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=5)))
def test_head_labels(value):
    try:
        heads = services.parse_heads(value, 6, 8)
    except UserError as err:
        assert str(err)
        return
    assert heads == sorted(set(heads)) and all(0 <= l < 6 and 0 <= h < 8 for l, h in heads)


@FUZZ
@given(anything, anything, anything, anything)
def test_induction_settings(n, t, k, r):
    try:
        check_settings(n, t, k, r, 54)
    except UserError:
        return
    assert 1 <= n <= 64 and 2 <= t <= 256 and 1 <= k <= 54 and 0 <= r <= 64
