"""Numbers and strings from anywhere: every option a person can set is checked where it enters
(the option groups, the command line, the nodes' validation), NaN and infinities included. Any
value gives a result within its stated range or one sentence naming the option, quickly and in
little memory. The same values through a real ComfyUI server: tests/comfy/test_comfy_values.py."""
from __future__ import annotations

import contextlib
import io
import math
import sys
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpen_cli
from gpen_pipeline import (FEATHER_RANGE, GROW_RANGE, MAX_FACES, MIN_THRESHOLD, EnhanceOptions, PasteOptions,
                           SelectOptions, TrackOptions, detect_faces, enhance_image)
from gpen_pipeline.options import MAX_GAP_LIMIT

import robustness_support as support

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# What a JSON client, a script or a typo can hand over.
any_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.just(10 ** 400), st.just(-(10 ** 400)),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    st.text(max_size=40), st.just("x" * 100_000), st.sampled_from(["nan", "inf", "0.5", "0-3", "1e9", ""]),
    st.binary(max_size=8), st.lists(st.integers(-5, 5), max_size=4), st.just(np.float32("nan")),
    st.just(np.int64(3)), st.just(range(10 ** 20)),
)

# option -> (words its sentence names it by, check of an accepted value)
SELECT_FIELDS = {
    "threshold": ("threshold", lambda v: MIN_THRESHOLD <= v <= 1),
    "order": ("unknown face order", lambda v: isinstance(v, str)),
    "indices": ("face indices", lambda v: True),
    "min_size": ("min_size", lambda v: math.isfinite(v) and v >= 0),
    "max_count": ("max_count", lambda v: isinstance(v, int) and v >= 0),
}
PASTE_FIELDS = {
    "mask_mode": ("unknown mask mode", lambda v: isinstance(v, str)),
    "strength": ("strength", lambda v: 0 <= v <= 1),
    "feather": ("feather", lambda v: v is None or FEATHER_RANGE[0] <= v <= FEATHER_RANGE[1]),
    "grow": ("grow", lambda v: GROW_RANGE[0] <= v <= GROW_RANGE[1]),
    "color_match": ("color_match", lambda v: v is True or v is False),
    "keep_gray": ("unknown keep_gray", lambda v: isinstance(v, str)),
    "regions": ("regions", lambda v: isinstance(v, tuple)),
    "blend": ("unknown blend", lambda v: isinstance(v, str)),
    "grain": ("grain", lambda v: v is True or v is False),
}
ENHANCE_FIELDS = {
    "task": ("unknown task", lambda v: isinstance(v, str)),
    "template": ("unknown template", lambda v: isinstance(v, str)),
    "colorize": ("unknown colorize mode", lambda v: isinstance(v, str)),
    "batch_size": ("batch_size", lambda v: v is None or (isinstance(v, int) and v >= 1)),
    "select": ("select and paste", lambda v: isinstance(v, SelectOptions)),
    "paste": ("select and paste", lambda v: isinstance(v, PasteOptions)),
}
TRACK_FIELDS = {
    "smoothing": ("smoothing", lambda v: 0 <= v <= 1),
    "max_gap": ("max_gap", lambda v: isinstance(v, int) and 0 <= v <= MAX_GAP_LIMIT),
}
GROUPS = {SelectOptions: SELECT_FIELDS, PasteOptions: PASTE_FIELDS, EnhanceOptions: ENHANCE_FIELDS,
          TrackOptions: TRACK_FIELDS}


def one_sentence(message: str, names: str) -> None:
    """One line that names the option at its start."""
    assert names.lower() in message[:60].lower(), message
    assert "\n" not in message and len(message) < 400, message


@contextlib.contextmanager
def bounded(seconds: float = 0.5, bytes_: int = 1_000_000):
    """The block runs within `seconds` and allocates at most `bytes_` at its peak."""
    started = time.perf_counter()
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < seconds and peak < bytes_, (time.perf_counter() - started, peak)


@settings(max_examples=400, **SETTINGS)
@given(group=st.sampled_from(list(GROUPS)), data=st.data(), value=any_value)
def test_any_value_of_any_option_is_taken_within_its_range_or_refused_in_one_sentence(group, data, value):
    name = data.draw(st.sampled_from(sorted(GROUPS[group])))
    words, accepted = GROUPS[group][name]
    try:
        with bounded():
            options = group(**{name: value})
    except ValueError as exc:
        one_sentence(str(exc), words)
        return
    assert accepted(getattr(options, name)), (name, value, getattr(options, name))


@pytest.mark.parametrize("group, name, value", [
    (SelectOptions, "threshold", 0.0), (SelectOptions, "threshold", math.nan), (SelectOptions, "min_size", math.nan),
    (PasteOptions, "feather", math.nan), (PasteOptions, "grow", math.nan), (PasteOptions, "grow", 1e9),
    (PasteOptions, "feather", math.inf), (PasteOptions, "strength", "0.5"), (PasteOptions, "color_match", "no"),
    (EnhanceOptions, "batch_size", 2.5), (TrackOptions, "smoothing", math.nan),
])
def test_values_that_used_to_pass_silently_are_refused(group, name, value):
    """NaN feather or grow restored nothing and reported success; threshold 0 made 750 faces of one."""
    with pytest.raises(ValueError) as info:
        group(**{name: value})
    one_sentence(str(info.value), GROUPS[group][name][0])


# --------------------------------------------------------------------------- the command line


CLI_OPTIONS = {"--threshold": "threshold", "--feather": "feather", "--grow": "grow", "--faces": "face indices"}


def parse_restore(option: str, text: str):
    """(parsed value, None) or (None, the one line argparse prints), as `gpen restore` parses it."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = gpen_cli.build_parser().parse_args(["restore", "in.png", "--model", "m.pth", "-o", "out.png",
                                                       option, text])
        except SystemExit as exc:
            assert exc.code == 2
            return None, stderr.getvalue()
    return getattr(args, option[2:]), None


@settings(max_examples=150, **SETTINGS)
@given(option=st.sampled_from(sorted(CLI_OPTIONS)),
       text=st.one_of(st.text(alphabet="0123456789.-+eEinfatyINFAN ,;_x", max_size=30), st.text(max_size=20),
                      st.sampled_from(["nan", "-inf", "1e400", "0", "0-99999999999999", "9" * 5000])))
def test_any_command_line_value_parses_within_range_or_exits_with_one_line(option, text):
    if text.startswith("-") and not text[1:2].isdigit():
        return  # argparse reads "-x" as another option, not as this one's value
    value, error = parse_restore(option, text)
    if error is not None:
        lines = error.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"gpen restore: error: argument {option}:"), error
        assert len(lines[0]) < 400, lines[0]
        return
    if option == "--faces":
        SelectOptions(indices=value)
    else:
        group, name = (SelectOptions, "threshold") if option == "--threshold" else (PasteOptions, option[2:])
        assert GROUPS[group][name][1](value), (option, text, value)


@pytest.mark.parametrize("option, text, words", [
    ("--threshold", "0", f"threshold must be a number from {MIN_THRESHOLD:g} to 1, got 0.0"),
    ("--threshold", "nan", "got nan"), ("--feather", "nan", "feather"), ("--grow", "inf", "grow"),
    ("--grow", "abc", "'abc' is not a number"), ("--faces", "1;2", "is not an index or a range"),
])
def test_command_line_refuses_what_the_options_refuse(option, text, words):
    value, error = parse_restore(option, text)
    assert value is None and words in error, error


def test_command_line_takes_a_range_past_any_face_count_without_expanding_it():
    with bounded(seconds=2.0):
        value, error = parse_restore("--faces", "0-99999999999999")
    assert error is None and value == "0-99999999999999"


# --------------------------------------------------------------------------- threshold floor, candidate cap


def test_a_detector_asked_for_everything_keeps_the_best_max_faces(detector):
    """At threshold 0 the bundled RetinaFace reports 750 candidates on one portrait; each would be
    restored and pasted. The detection keeps the best MAX_FACES, the real face first."""
    photo = support.astronaut()
    faces = detect_faces(detector, photo, threshold=0.0)
    assert len(faces) == MAX_FACES
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.9
    useful = detect_faces(detector, photo, threshold=MIN_THRESHOLD)
    assert [f.box for f in useful] == [f.box for f in faces[:len(useful)]]  # the same best ones


def test_the_lowest_threshold_restores_the_face_and_not_the_background(s64_model, detector):
    photo = support.astronaut()
    result = enhance_image(photo, s64_model, detector, EnhanceOptions(select=SelectOptions(threshold=MIN_THRESHOLD)))
    assert 1 <= len(result.faces) <= 3
    assert (np.asarray(result.mask) > 0).mean() < 0.2  # the face and a speck or two, not the picture


# --------------------------------------------------------------------------- the nodes' validation


NODE_INPUTS = {  # node -> the inputs its VALIDATE_INPUTS checks
    "GPENDetectFaces": ("threshold", "indices", "smoothing"),
    "GPENPasteBack": ("keep_gray", "strength", "feather", "grow"),
    "GPENFaceRestore": ("strength", "threshold", "smoothing"),
}


@settings(max_examples=250, **SETTINGS)
@given(node=st.sampled_from(sorted(NODE_INPUTS)), data=st.data(),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.integers(),
                       st.just("0-99999999999999"), st.just("x" * 100_000)))
def test_node_validation_accepts_what_runs_or_says_why_in_one_sentence(comfy, node, data, value):
    """ComfyUI skips its own min/max for inputs a node validates, so these answers are the only check."""
    name = data.draw(st.sampled_from(NODE_INPUTS[node]))
    cls = comfy.nodes.NODE_CLASS_MAPPINGS[node]
    extra = {"model_name": "GPEN-robust-64.pth"} if node == "GPENFaceRestore" else {}
    with bounded(seconds=1.0, bytes_=2_000_000):
        answer = cls.VALIDATE_INPUTS(**extra, **{name: value})
    if answer is not True:
        assert isinstance(answer, str) and "\n" not in answer and len(answer) < 400, answer
        return
    paste_options = sys.modules[comfy.pack.__name__ + ".nodes.paste_back"].paste_options
    if name in ("strength", "feather", "grow", "keep_gray"):
        paste_options(**{name: value})  # what the node builds when it runs
    elif name == "smoothing":
        TrackOptions(smoothing=value)
    else:
        SelectOptions(**{name: value})
