"""Choosing which detected faces to restore. Pure functions of the `Face` list.

    select_faces(faces, order="left-right", indices="0,2", min_size=64, max_count=0)

Steps, in this order:
  1. min_size: drop faces whose box is smaller than `min_size` px on its shorter side.
  2. order: sort what is left (ORDERS); ties keep the higher score first, then the
     input order.
  3. indices: keep the faces at these positions of the sorted list ("0,2", "0, 2",
     ranges "1-3" inclusive, or a sequence of ints), in the order given, each once.
     Positions past the end (and negative ones) are ignored. None or "" keeps all.
  4. max_count: keep at most this many (0 = no limit).

"largest" is a shortcut accepted as `order`: it means order "large-small" with
max_count 1, i.e. the single largest face (after min_size and indices).
"""
from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, Sequence

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
_ITEM = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")


def face_size(face: Face) -> float:
    """The shorter side of the face's box, the measure `min_size` applies to."""
    return max(0.0, min(face.width, face.height))


def parse_indices(indices: str | Sequence[int] | None) -> list[int] | None:
    """"0,2", "0, 2", "1-3" or a sequence of ints -> a list (duplicates removed, order
    kept); None or a blank string -> None (all faces). Raises ValueError if malformed."""
    if indices is None:
        return None
    if isinstance(indices, str):
        if not indices.strip():
            return None
        out: list[int] = []
        for item in indices.split(","):
            item = item.strip()
            if not item:  # tolerate "0,2," and "0,,2"
                continue
            m = _ITEM.match(item)
            if m is None:
                raise ValueError(
                    f"face indices {indices!r}: {item!r} is not an index or a range; "
                    f"write positions from 0 separated by commas, e.g. '0', '0,2' or '1-3'")
            start, end = int(m.group(1)), int(m.group(2) or m.group(1))
            if end < start:
                raise ValueError(f"face indices {indices!r}: the range {item!r} runs backwards; write "
                                 f"'{end}-{start}'")
            out.extend(range(start, end + 1))
    else:
        try:
            out = [operator.index(i) for i in indices]
        except TypeError as exc:
            raise ValueError(f"face indices must be a string like '0,2' or a sequence of ints, "
                             f"got {indices!r}") from exc
    return list(dict.fromkeys(out))


def select_faces(faces: Sequence[Face], order: str = "score", indices: str | Sequence[int] | None = None,
                 min_size: float = 0, max_count: int = 0) -> list[Face]:
    """The faces to process; see the module docstring for the steps."""
    if order == LARGEST:
        order, max_count = "large-small", 1
    if order not in _KEYS:
        raise ValueError(f"unknown face order {order!r}; choose one of {', '.join(ORDERS)} or {LARGEST!r}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size}")
    if max_count < 0:
        raise ValueError(f"max_count must be >= 0 (0 = no limit), got {max_count}")
    wanted = parse_indices(indices)
    key = _KEYS[order]
    kept = [f for f in faces if face_size(f) >= min_size]
    ranked = sorted(kept, key=lambda f: (key(f), -f.score))  # sorted() is stable
    if wanted is not None:
        ranked = [ranked[i] for i in wanted if 0 <= i < len(ranked)]
    return ranked[:max_count] if max_count else ranked
