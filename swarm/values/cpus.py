"""CPU counts, as Docker's opts.ParseCPUs reads them: exact rationals turned into NanoCPUs."""

from __future__ import annotations

import functools
import re
from fractions import Fraction

_RATIONAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+/\d+")


# A stack repeats a few values in every service (a catalogue in a thousand): each is read once.
@functools.lru_cache(maxsize=4096, typed=True)
def parse_cpus(text: str) -> int:
    """NanoCPUs in `text` ("0.5" is 500000000), as Docker's opts.ParseCPUs reads it."""
    if not _RATIONAL.fullmatch(text) or text.endswith("/0"):
        raise ValueError(f"invalid CPU count {text!r}: expected a number of CPUs as a string, like '0.5' or '2'")
    nano = Fraction(text) * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError(f"CPU count {text!r} is too precise: at most 9 decimal places")
    if nano < 0:
        raise ValueError(f"CPU count {text!r} must not be negative")
    return int(nano)
