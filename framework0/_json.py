"""Small JSON helpers the context, its persistence and the recipe parser share (private)."""

from __future__ import annotations

import math
from typing import Any


def reject_constant(name: str) -> Any:
    """``json.loads(parse_constant=...)``: NaN and Infinity are not JSON data."""
    raise ValueError(f"{name} is not JSON data")


def finite_float(text: str) -> float:
    """``json.loads(parse_float=...)``: a number too large for a float is refused, not inf."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is too large for a float")
    return value


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages (a broken ``__repr__`` gives
    the type's name instead of hiding the real error)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any error of a learner's __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
