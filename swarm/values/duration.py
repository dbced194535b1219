"""Durations, as Go's time.ParseDuration reads them and Duration.String() writes them."""

from __future__ import annotations

import functools

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


_NS_MAX = 1 << 63


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"  # str.isdigit() also accepts other scripts' digits


# A stack repeats a few values in every service (a catalogue in a thousand): each is read once.
@functools.lru_cache(maxsize=4096, typed=True)
def parse_duration(text: str) -> int:
    """Nanoseconds in `text`, as Go's time.ParseDuration reads it ("1m30s", "1.5h", "500ms")."""
    invalid = ValueError(
        f"invalid duration {text!r}: expected a number with a unit (ns, us, ms, s, m, h), like 10s or 1m30s"
    )
    rest, negative = text, False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or _is_digit(rest[0])):
            raise invalid
        i, whole = 0, 0
        while i < len(rest) and _is_digit(rest[i]):
            whole = whole * 10 + int(rest[i])
            if whole > _NS_MAX:
                raise invalid
            i += 1
        has_whole, rest = i > 0, rest[i:]
        fraction, scale, has_fraction = 0, 1.0, False
        if rest[:1] == ".":
            rest, i, overflow = rest[1:], 0, False
            while i < len(rest) and _is_digit(rest[i]):
                # Like Go: digits past int64 precision are consumed but ignored.
                if not overflow:
                    candidate = fraction * 10 + int(rest[i])
                    if fraction > (_NS_MAX - 1) // 10 or candidate > _NS_MAX:
                        overflow = True
                    else:
                        fraction, scale = candidate, scale * 10
                i += 1
            has_fraction, rest = i > 0, rest[i:]
        if not (has_whole or has_fraction):
            raise invalid
        i = 0
        while i < len(rest) and not (rest[i] == "." or _is_digit(rest[i])):
            i += 1
        unit, rest = rest[:i], rest[i:]
        if unit not in _NS_PER_UNIT:
            raise invalid
        multiplier = _NS_PER_UNIT[unit]
        if whole > _NS_MAX // multiplier:
            raise invalid
        value = whole * multiplier
        if fraction:
            value += int(float(fraction) * (float(multiplier) / scale))  # float, as Go does
        total += value
        if value > _NS_MAX or total > _NS_MAX:
            raise invalid
    if negative:
        return -total
    if total > _NS_MAX - 1:
        raise invalid
    return total


def format_duration(nanoseconds: int) -> str:
    """`nanoseconds` as Go's Duration.String() writes it ("1m30s", "500ms", "1h0m0s")."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)

    def split(v: int, precision: int) -> tuple[int, str]:
        digits = f"{v % 10**precision:0{precision}d}".rstrip("0")
        return v // 10**precision, "." + digits if digits else ""

    if value < 1_000:
        return f"{sign}{value}ns"
    if value < 1_000_000:
        whole, fraction = split(value, 3)
        return f"{sign}{whole}{fraction}µs"
    if value < 1_000_000_000:
        whole, fraction = split(value, 6)
        return f"{sign}{whole}{fraction}ms"
    seconds, fraction = split(value, 9)
    text = f"{seconds % 60}{fraction}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text
