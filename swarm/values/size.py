"""Byte sizes, as go-units RAMInBytes reads them (binary multiples: "10G" is 10737418240)."""

from __future__ import annotations

import functools
import re

# A decimal float as Go's strconv.ParseFloat accepts it (underscores only between digits).
_GO_FLOAT = re.compile(r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?")


_BINARY_PREFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


# A stack repeats a few values in every service (a catalogue in a thousand): each is read once.
@functools.lru_cache(maxsize=4096, typed=True)
def parse_memory(text: str) -> int:
    """Bytes in `text`, as go-units RAMInBytes reads it: binary multiples, "10G" is 10737418240."""
    invalid = ValueError(
        f"invalid size {text!r}: expected a number with an optional unit b, k, m, g, t or p, like 512M or 10G"
    )
    separator = max(text.rfind(char) for char in "0123456789. ")
    if separator < 0:
        raise invalid
    if text[separator] == " ":
        number, suffix = text[:separator], text[separator + 1 :]
    else:
        number, suffix = text[: separator + 1], text[separator + 1 :]
    if not _GO_FLOAT.fullmatch(number):
        raise invalid
    size = float(number)
    if size < 0:
        raise invalid
    suffix = suffix.lower()
    if suffix and suffix != "b":
        multiplier = _BINARY_PREFIXES.get(suffix[0])
        if multiplier is None or len(suffix) > 3 or suffix[1:] not in ("", "b", "ib"):
            raise invalid
        size *= multiplier
    if size >= 1 << 63:
        raise ValueError(f"size {text!r} is too large")
    return int(size)
