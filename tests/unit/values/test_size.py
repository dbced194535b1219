"""Byte sizes read as go-units RAMInBytes reads them (expected values printed by Docker 28)."""

from __future__ import annotations

import pytest

from swarm.compose import (
    parse_memory,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10G", 10737418240),
        ("1.5 GB", 1610612736),
        ("10GiB", 10737418240),
        ("10gb", 10737418240),
        ("1e3", 1000),
        ("10 ", 10),
        ("1kib", 1024),
        ("1KIB", 1024),
        ("1b", 1),
        ("+5", 5),
        (".5g", 536870912),
        ("5.", 5),
        ("1e3k", 1024000),
        ("1_000", 1000),
        ("1.9", 1),
        ("1p", 1125899906842624),
        ("1 k", 1024),
    ],
)
def test_memory_sizes_follow_go_units(text: str, size: int):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "text", [" 10", "5.5.5g", "1bb", "0x10", "10x", "-1", "1  k", "k", "1i", "1ib", "128Mi", "99999999999p"]
)
def test_bad_memory_sizes_are_rejected(text: str):
    with pytest.raises(ValueError):
        parse_memory(text)
