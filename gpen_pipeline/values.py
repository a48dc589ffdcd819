"""Checking the numbers people send, where they enter: one sentence naming the value and its range.

NaN passes every comparison unnoticed (`nan < 0` and `nan > 50` are both False, so ComfyUI's
own min/max checks let it through) and then quietly selects or pastes nothing, so every range
here refuses NaN and infinities as well as values outside it.
"""
from __future__ import annotations

import math
import numbers
import operator

SHOWN_CHARS = 40  # of a refused value in a message: a megabyte of text must not come back whole


def shown(value: object) -> str:
    """`value` as a message quotes it, cut to SHOWN_CHARS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _range_words(low: float, high: float) -> str:
    if math.isinf(high):
        return f"a number of at least {low:g}"
    return f"a number from {low:g} to {high:g}"


def number_in(name: str, value: object, low: float, high: float = math.inf) -> float:
    """`value` as a float within [low, high]; ValueError naming `name` otherwise (NaN, inf and
    anything that is not a number included)."""
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            pass
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be {_range_words(low, high)}, got {shown(value)}")
    return number


def whole_number_in(name: str, value: object, low: int, high: float = math.inf) -> int:
    """`value` as an int within [low, high]; ValueError naming `name` otherwise (1.5, NaN, True)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or not low <= number <= high:
        words = f"a whole number of at least {low}" if math.isinf(high) else f"a whole number from {low} to {high}"
        raise ValueError(f"{name} must be {words}, got {shown(value)}")
    return number
