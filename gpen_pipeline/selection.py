"""Choosing which detected faces to restore. Pure functions of the `Face` list.

    select_faces(faces, order="left-right", indices="0,2", min_size=64, max_count=0)

Steps, in this order:
  1. min_size: drop faces whose box is smaller than `min_size` px on its shorter side.
  2. order: sort what is left (ORDERS); ties keep the higher score first, then the
     input order.
  3. indices: keep the faces at these positions of the sorted list ("0,2", "0, 2",
     ranges "1-3" inclusive, or a sequence of ints), in the order given, each once.
     Positions past the end (and negative ones) are ignored. None or "" keeps all.
     A range is applied to the faces found, never expanded: "0-99999999" costs what "0-2"
     does, and means "every face from the first on".
  4. max_count: keep at most this many (0 = no limit).

"largest" is a shortcut accepted as `order`: it means order "large-small" with
max_count 1, i.e. the single largest face (after min_size and indices).
"""
from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, Sequence

from .values import number_in, shown, whole_number_in

if TYPE_CHECKING:  # annotations only: the command line's --help reads ORDERS without torch
    from .face import Face

ORDERS = ("left-right", "right-left", "top-bottom", "bottom-top", "large-small", "small-large", "score")
LARGEST = "largest"

_KEYS = {
    "left-right": lambda f: (f.box[0] + f.box[2]) / 2,
    "right-left": lambda f: -(f.box[0] + f.box[2]) / 2,
    "top-bottom": lambda f: (f.box[1] + f.box[3]) / 2,
    "bottom-top": lambda f: -(f.box[1] + f.box[3]) / 2,
    "large-small": lambda f: -f.area,
    "small-large": lambda f: f.area,
    "score": lambda f: 0.0,  # the tie-breaker (score, descending) does it all
}
_ITEM = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")
# Far more than any real choice of faces; keeps parsing (and the numbers in it) small.
MAX_INDEX_CHARS = 1000
MAX_INDEX_ITEMS = 1000

Span = tuple[int, int]  # the first and the last position of a range, inclusive


def face_size(face: Face) -> float:
    """The shorter side of the face's box, the measure `min_size` applies to."""
    return max(0.0, min(face.width, face.height))


def parse_indices(indices: str | Sequence[int] | None) -> tuple[Span, ...] | None:
    """"0,2", "0, 2", "1-3" or a sequence of ints -> the (first, last) spans, in the order given;
    None or a blank string -> None (all faces). Raises ValueError with one sentence when malformed
    or longer than MAX_INDEX_CHARS characters / MAX_INDEX_ITEMS items."""
    if indices is None:
        return None
    if isinstance(indices, str):
        return _parse_text(indices)
    try:
        count = len(indices)
    except (TypeError, OverflowError):  # a number, a generator, range(10**20)
        count = None
    if count is None or isinstance(indices, (bytes, bytearray)):
        raise ValueError(f"face indices must be a string like '0,2' or a list of positions, got {shown(indices)}")
    if count > MAX_INDEX_ITEMS:
        raise ValueError(f"face indices: {count} positions is more than the {MAX_INDEX_ITEMS} accepted; "
                         "give ranges in a string instead, e.g. '0-9'")
    try:
        positions = [operator.index(i) for i in indices]
    except TypeError:
        raise ValueError(f"face indices must be whole numbers (positions from 0), got {shown(indices)}") from None
    return tuple((i, i) for i in positions)


def _parse_text(indices: str) -> tuple[Span, ...] | None:
    if len(indices) > MAX_INDEX_CHARS:
        raise ValueError(f"face indices: {len(indices)} characters is more than the {MAX_INDEX_CHARS} accepted; "
                         "write ranges such as '0-9' instead of every position")
    if not indices.strip():
        return None
    spans: list[Span] = []
    for item in indices.split(","):
        item = item.strip()
        if not item:  # tolerate "0,2," and "0,,2"
            continue
        m = _ITEM.fullmatch(item)
        if m is None:
            raise ValueError(
                f"face indices {shown(indices)}: {shown(item)} is not an index or a range; "
                f"write positions from 0 separated by commas, e.g. '0', '0,2' or '1-3'")
        start, end = int(m.group(1)), int(m.group(2) or m.group(1))
        if end < start:
            raise ValueError(f"face indices {shown(indices)}: the range {shown(item)} runs backwards; write "
                             f"'{end}-{start}'")
        spans.append((start, end))
    return tuple(spans)


def pick(ranked: Sequence[Face], spans: Sequence[Span]) -> list[Face]:
    """The faces of `ranked` at the positions of `spans`, in the order given, each once: each span
    is cut to the faces there are, so its cost is the faces found, not the numbers written."""
    picked: list[Face] = []
    seen: set[int] = set()
    for first, last in spans:
        for i in range(max(first, 0), min(last, len(ranked) - 1) + 1):
            if i not in seen:
                seen.add(i)
                picked.append(ranked[i])
    return picked


def select_faces(faces: Sequence[Face], order: str = "score", indices: str | Sequence[int] | None = None,
                 min_size: float = 0, max_count: int = 0) -> list[Face]:
    """The faces to process; see the module docstring for the steps."""
    if order == LARGEST:
        order, max_count = "large-small", 1
    if not isinstance(order, str) or order not in _KEYS:
        raise ValueError(f"unknown face order {shown(order)}; choose one of {', '.join(ORDERS)} or {LARGEST!r}")
    min_size = number_in("min_size", min_size, 0.0)
    max_count = whole_number_in("max_count (0 = no limit)", max_count, 0)
    wanted = parse_indices(indices)
    key = _KEYS[order]
    kept = [f for f in faces if face_size(f) >= min_size]
    ranked = sorted(kept, key=lambda f: (key(f), -f.score))  # sorted() is stable
    if wanted is not None:
        ranked = pick(ranked, wanted)
    return ranked[:max_count] if max_count else ranked
