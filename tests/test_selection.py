"""Face selection: ordering, index strings, min_size, max_count, "largest"."""
from __future__ import annotations

import re
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpen_pipeline.face import Face
from gpen_pipeline.selection import LARGEST, ORDERS, parse_indices, select_faces


def face(x1, y1, x2, y2, score=0.9) -> Face:
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    points = np.array([[cx - 5, cy - 5], [cx + 5, cy - 5], [cx, cy], [cx - 4, cy + 5], [cx + 4, cy + 5]], np.float32)
    return Face(box=(float(x1), float(y1), float(x2), float(y2)), score=float(score), landmarks=points)


# a: left, small, top; b: middle, large, bottom; c: right, medium, middle
A = face(0, 0, 20, 30, score=0.7)
B = face(100, 200, 200, 330, score=0.95)
C = face(300, 100, 350, 160, score=0.8)
FACES = [A, B, C]


def test_orders():
    assert ORDERS == ("left-right", "right-left", "top-bottom", "bottom-top", "large-small", "small-large", "score")
    expected = {
        "left-right": [A, B, C], "right-left": [C, B, A],
        "top-bottom": [A, C, B], "bottom-top": [B, C, A],
        "large-small": [B, C, A], "small-large": [A, C, B],
        "score": [B, C, A],
    }
    for order, result in expected.items():
        assert select_faces(FACES, order=order) == result, order
        assert select_faces(FACES[::-1], order=order) == result, order


def test_ties_go_to_the_higher_score_then_input_order():
    low, high, same = face(0, 0, 50, 50, 0.6), face(0, 0, 50, 50, 0.99), face(0, 0, 50, 50, 0.6)
    assert select_faces([low, high, same], order="left-right") == [high, low, same]
    assert select_faces([same, high, low], order="large-small") == [high, same, low]


def test_indices_refer_to_sorted_positions():
    assert select_faces(FACES, order="left-right", indices="0,2") == [A, C]
    assert select_faces(FACES, order="right-left", indices="0, 2") == [C, A]
    assert select_faces(FACES, order="left-right", indices="1-2") == [B, C]
    assert select_faces(FACES, order="left-right", indices=" 2 ,0 ") == [C, A]  # order as given
    assert select_faces(FACES, order="left-right", indices=[2, np.int64(0)]) == [C, A]
    assert select_faces(FACES, order="left-right", indices="0,0,0-1") == [A, B]  # each once
    assert select_faces(FACES, order="left-right", indices="0,2,") == [A, C]
    assert select_faces(FACES, order="left-right", indices="") == [A, B, C]
    assert select_faces(FACES, order="left-right", indices=None) == [A, B, C]


def test_out_of_range_indices_are_ignored():
    assert select_faces(FACES, order="left-right", indices="1,7") == [B]
    assert select_faces(FACES, order="left-right", indices="2-9") == [C]
    assert select_faces(FACES, order="left-right", indices=[5, -1]) == []
    assert select_faces([], indices="0") == []


@pytest.mark.parametrize("bad", ["a", "0;2", "1-", "-1", "1.5", "3-1", "0 2", "1--2"])
def test_malformed_indices_raise(bad):
    with pytest.raises(ValueError, match="face indices"):
        select_faces(FACES, indices=bad)


def test_min_size_filters_before_indices():
    # A is 20x30 (size 20), C is 50x60 (size 50), B is 100x130 (size 100)
    assert select_faces(FACES, order="left-right", min_size=20) == [A, B, C]
    assert select_faces(FACES, order="left-right", min_size=21) == [B, C]
    assert select_faces(FACES, order="left-right", min_size=21, indices="0") == [B]
    assert select_faces(FACES, min_size=1000) == []


def test_max_count_and_largest():
    assert select_faces(FACES, order="left-right", max_count=2) == [A, B]
    assert select_faces(FACES, order="left-right", max_count=0) == [A, B, C]
    assert select_faces(FACES, order=LARGEST) == [B]
    assert select_faces(FACES, order="largest", min_size=200) == []
    assert select_faces(FACES, order="largest", indices="1") == [C]  # the second largest


@pytest.mark.parametrize("kwargs", [{"order": "random"}, {"min_size": -1}, {"max_count": -2},
                                    {"indices": 3}, {"indices": [0.5]}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        select_faces(FACES, **kwargs)


def test_parse_indices_gives_spans_in_the_order_written():
    assert parse_indices("0, 2, 4-6") == ((0, 0), (2, 2), (4, 6))
    assert parse_indices("  ") is None
    assert parse_indices((1, 1, 0)) == ((1, 1), (1, 1), (0, 0))


@pytest.mark.parametrize("text", ["0-3000000", "0-99999999999999", "1-" + "9" * 900])
def test_a_huge_range_costs_what_the_faces_found_cost(text):
    """The range is cut to the faces there are, never expanded into a list of its numbers."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        picked = select_faces(FACES, order="left-right", indices=text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert picked == ([A, B, C] if text.startswith("0") else [B, C])
    assert time.perf_counter() - started < 0.1 and peak < 100_000


@pytest.mark.parametrize("indices, words", [
    ("0," * 600, "1200 characters is more than the 1000 accepted"),
    (list(range(1001)), "1001 positions is more than the 1000 accepted"),
    (range(10 ** 20), "must be a string like '0,2' or a list of positions"),
    ((i for i in range(3)), "must be a string like '0,2' or a list of positions"),
    ([0, float("nan")], "must be whole numbers"),
    ("1" * 1001, "1001 characters"),
])
def test_oversized_indices_are_refused_with_one_sentence(indices, words):
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        select_faces(FACES, indices=indices)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("kwargs, words", [({"min_size": float("nan")}, "min_size must be a number of at least 0"),
                                           ({"min_size": float("inf")}, "min_size"),
                                           ({"max_count": 1.5}, "max_count (0 = no limit) must be a whole number"),
                                           ({"order": ["score"]}, "unknown face order")])
def test_nan_and_wrong_types_in_the_selection_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        select_faces(FACES, **kwargs)


index_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.integers(0, 10 ** 30).map(str),
                       st.tuples(st.integers(0, 10 ** 30), st.integers(0, 10 ** 30)).map(lambda t: f"{t[0]}-{t[1]}"),
                       st.text(alphabet=" -,0123456789", max_size=6)), max_size=8).map(",".join),
    st.integers(1, 3000).map(lambda n: "9" * n),
)


@settings(max_examples=300, deadline=None, database=None)
@given(text=index_text, count=st.integers(0, 6))
def test_any_index_text_selects_or_says_why_at_the_cost_of_the_faces(text, count):
    faces = [face(10 * i, 0, 10 * i + 5, 5) for i in range(count)]
    started = time.perf_counter()
    tracemalloc.start()
    try:
        picked = select_faces(faces, order="left-right", indices=text)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith("face indices") and "\n" not in message and len(message) < 400, message
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5 and peak < 200_000
    spans = parse_indices(text)
    if spans is None:
        assert picked == faces
        return
    positions = []  # the plain reading, with every range cut to the faces there are
    for first, last in spans:
        positions += [i for i in range(first, min(last, count - 1) + 1) if i not in positions]
    assert picked == [faces[i] for i in positions]


def test_inputs_are_not_modified():
    faces = [C, A, B]
    select_faces(faces, order="left-right", indices="0")
    assert faces == [C, A, B]


boxes = st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200),
                  st.floats(0, 1)).map(lambda t: face(t[0], t[1], t[0] + t[2], t[1] + t[3], t[4]))


@settings(max_examples=200, deadline=None, database=None)
@given(faces=st.lists(boxes, max_size=8), order=st.sampled_from(ORDERS), min_size=st.floats(0, 150),
       max_count=st.integers(0, 5), indices=st.none() | st.lists(st.integers(-2, 10), max_size=6))
def test_properties(faces, order, min_size, max_count, indices):
    out = select_faces(faces, order=order, indices=indices, min_size=min_size, max_count=max_count)
    assert all(any(o is f for f in faces) for o in out)  # a subset of the input
    assert len({id(o) for o in out}) == len(out)  # no face twice
    assert all(min(o.width, o.height) >= min_size for o in out)
    if max_count:
        assert len(out) <= max_count
    if indices is None:
        full = select_faces(faces, order=order, min_size=min_size)
        assert out == full[:max_count or None]
        key = {"left-right": lambda f: f.box[0] + f.box[2], "right-left": lambda f: -(f.box[0] + f.box[2]),
               "top-bottom": lambda f: f.box[1] + f.box[3], "bottom-top": lambda f: -(f.box[1] + f.box[3]),
               "large-small": lambda f: -f.area, "small-large": lambda f: f.area, "score": lambda f: -f.score}[order]
        assert all(key(a) <= key(b) for a, b in zip(full, full[1:]))
        assert len(full) == sum(min(f.width, f.height) >= min_size for f in faces)
