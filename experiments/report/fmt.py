"""Numbers as the report prints them (one place, so table, reading and captions agree)."""

from __future__ import annotations

import math

NOT_MEASURED = "not measured"


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value: object, digits: int = 3) -> str:
    return "–" if missing(value) else f"{float(value):.{digits}f}"


def eps(value: object) -> str:
    """ε spent, rounded up (never shown smaller than it is): 4 decimals below 1, 3 below 10."""
    if missing(value):
        return "–"
    v = float(value)
    digits = 4 if v < 1 else 3 if v < 10 else 2 if v < 100 else 0
    # The small offset keeps float noise (0.5 stored as 0.50000000001) from rounding up a digit.
    return f"{math.ceil(v * 10**digits - 1e-6) / 10**digits:.{digits}f}"


def budget(value: object) -> str:
    """A configured ε budget or δ, as written in the config (1, 0.5, 1e-05)."""
    return "–" if missing(value) else f"{float(value):g}"


def count(value: object) -> str:
    return "–" if missing(value) else f"{int(round(float(value))):,}"


def megabytes(value: object) -> str:
    return "–" if missing(value) else f"{float(value) / 1e6:.2f} MB"


def seconds(value: object) -> str:
    return "–" if missing(value) else f"{float(value):.1f} s"


def percent(value: object, digits: int = 0) -> str:
    return "–" if missing(value) else f"{100 * float(value):.{digits}f}%"


def signed(value: object, digits: int = 3) -> str:
    return "–" if missing(value) else f"{float(value):+.{digits}f}"
