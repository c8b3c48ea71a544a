"""Argument checks with one wording, so every function rejects a bad count the same way,
and :func:`shown`: how an error message quotes a value that a client sent."""

from __future__ import annotations

import math
import numbers

__all__ = ["non_negative_int", "positive_float", "positive_int", "shown"]


def positive_int(value: object, name: str) -> int:
    """``value`` as an int when it is a whole number >= 1 (bools refused), else ValueError.

    Accepts Python and NumPy integers; the message names the argument:
    ``"{name} must be an int >= 1, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def non_negative_int(value: object, name: str) -> int:
    """``value`` as an int when it is a whole number >= 0 (bools refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def positive_float(value: object, name: str) -> float:
    """``value`` as a float when it is a finite real number > 0 (bools refused), else ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters and ASCII only.

    A message must never echo a whole hostile input, nor fail to be built: an int over
    Python's digit limit has no ``repr`` (shown as ``<int of too many digits>``), and a lone
    surrogate or other non-ASCII text is escaped so that any encoder can send it.
    """
    try:
        text = ascii(value)
    except ValueError:
        text = f"<{type(value).__name__} of too many digits>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
