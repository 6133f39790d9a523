"""Fuzzing what users hand the library: photos of any shape, dtype, channel count and value
(NaN and inf included), clicks and boxes of every form, and edit settings. Every call gives a
result or a clear error (ValueError or TypeError with a message), never anything else.

``CLIPMAT_FUZZ_EXAMPLES`` sets the examples per test (see conftest.py; bench/fuzz.py
runs many more and reports the counts)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import editing

CLEAR = (ValueError, TypeError)
# Python's own messages, which tell a user nothing about what the call accepts
UNCLEAR = ("object is not iterable", "unsupported operand", "object is not subscriptable")


def _clear(err: Exception) -> None:
    """A refusal says what was wrong in the call's own words."""
    message = str(err)
    assert message and not any(u in message for u in UNCLEAR), repr(err)


dtypes = st.sampled_from(
    [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.bool_, np.float16]
)
sides = st.one_of(st.integers(1, 48), st.sampled_from([1, 2, 3, 300]))
shapes = st.one_of(
    st.tuples(sides, sides),
    st.tuples(sides, sides, st.sampled_from([1, 2, 3, 4, 5])),
    st.tuples(st.integers(1, 4)),
    st.tuples(sides, sides, st.just(3), st.just(2)),
)


@st.composite
def photos(draw) -> np.ndarray:
    """Arrays of any shape and dtype, with NaN, inf and out-of-range values among them."""
    dtype = draw(dtypes)
    shape = draw(shapes)
    if np.prod(shape) > 30_000:
        shape = (shape[0], 2) + tuple(shape[2:])
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(
            allow_nan=True, allow_infinity=True, width=16 if dtype == np.float16 else 32
        )
    elif dtype == np.bool_:
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(info.min, -(2**31)), min(info.max, 2**31))
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=elements))


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)
on_photo = st.tuples(st.floats(0, 56), st.floats(0, 40), st.booleans())
points = st.one_of(
    st.none(),
    st.lists(on_photo, min_size=1, max_size=4),
    st.lists(st.tuples(numbers, numbers, st.one_of(st.booleans(), numbers)), max_size=4),
    st.lists(st.lists(numbers, max_size=4), max_size=3),
    numbers,
)
boxes = st.one_of(
    st.none(), st.tuples(numbers, numbers, numbers, numbers), st.lists(numbers, max_size=5), numbers
)


@pytest.fixture(scope="module")
def predictor(tiny_model):
    from helpers import random_tiny_predictor

    return random_tiny_predictor(tiny_model)


@given(photo=photos())
def test_predict_on_any_array(predictor, photo):
    try:
        result = predictor.predict(photo, "the thing")
    except CLEAR as err:
        _clear(err)
        event(f"refused: {type(err).__name__}")
        return
    event("answered")
    assert result.alpha.shape == photo.shape[:2] and np.isfinite(result.alpha).all()
    assert 0.0 <= result.alpha.min() and result.alpha.max() <= 1.0


@given(points=points, box=boxes, text=st.sampled_from(["the thing", ""]))
def test_predict_with_any_clicks_and_box(predictor, points, box, text):
    photo = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    try:
        result = predictor.predict(photo, text, points=points, box=box)
    except CLEAR as err:
        _clear(err)
        event(f"refused: {type(err).__name__}")
        return
    event("answered")
    assert result.alpha.shape == (40, 56) and np.isfinite(result.alpha).all()


colours = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["#ff0000", "rgb(1, 2, 3)", "orange", "#abc", "hsl(1,2%,3%)", "rgb(999,0,0)"]),
    st.tuples(numbers, numbers, numbers),
    numbers,
)


@given(
    effect=st.one_of(st.text(max_size=8), st.sampled_from(list(editing.EFFECTS))),
    strength=numbers,
    color=colours,
    background=st.one_of(photos(), colours, st.just("blur")),
    alpha=photos(),
)
def test_edits_with_any_settings(effect, strength, color, background, alpha):
    rgb = np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    matte = alpha if alpha.shape[:2] == (24, 32) else np.linspace(0, 1, 24 * 32).reshape(24, 32)
    calls = [
        lambda: editing.highlight(rgb, matte, effect=effect, strength=strength, color=color),
        lambda: editing.fill_color(rgb, matte, color),
        lambda: editing.replace_background(rgb, matte, background),
    ]
    for call in calls:
        try:
            out = call()
        except CLEAR as err:
            _clear(err)
            event(f"refused: {type(err).__name__}")
            continue
        event("answered")
        assert out.shape[:2] == (24, 32) and out.dtype == np.uint8
