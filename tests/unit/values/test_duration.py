"""Durations parsed and printed as Go does (expected values printed by Docker 28)."""

from __future__ import annotations

import pytest

from swarm.compose import (
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "nanoseconds", "printed"),
    [
        ("1m30s", 90 * 10**9, "1m30s"),
        ("1.5h", 5400 * 10**9, "1h30m0s"),
        ("500ms", 5 * 10**8, "500ms"),
        ("250us", 250_000, "250µs"),
        ("100µs", 100_000, "100µs"),
        ("1.5s", 1_500_000_000, "1.5s"),
        ("0", 0, "0s"),
        ("3600s", 3600 * 10**9, "1h0m0s"),
        ("2h45m", 9900 * 10**9, "2h45m0s"),
        ("1.000000001s", 1_000_000_001, "1.000000001s"),
        (".5m", 30 * 10**9, "30s"),
        ("7ns", 7, "7ns"),
    ],
)
def test_durations_follow_go(text: str, nanoseconds: int, printed: str):
    assert parse_duration(text) == nanoseconds
    assert format_duration(nanoseconds) == printed


@pytest.mark.parametrize("text", ["", "10", "10x", "1m30", "h", ".s", "1.2.3s", "- 1s", "9999999999999999999h"])
def test_bad_durations_are_rejected(text: str):
    with pytest.raises(ValueError):
        parse_duration(text)
