"""Scalars printed as Go's fmt.Sprint prints them: how Docker turns YAML numbers into strings."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def go_string(value: Any) -> str:
    """A YAML scalar as Go's fmt.Sprint prints it: how Docker turns numbers into strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    # Go's %v for float64: shortest round-trip digits; exponent form when the decimal exponent
    # is below -4 or at least 6 (so 100000.0 is "100000" but 1000000.0 is "1e+06").
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    value = abs(value)
    if value == 0:
        return sign + "0"
    digits_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()[1:]
    digits = "".join(map(str, digits_tuple))
    point = len(digits) + exponent  # value = 0.<digits> * 10**point
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"
