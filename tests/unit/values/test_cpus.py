"""CPU counts turned into exact NanoCPUs, as Docker does."""

from __future__ import annotations

import pytest

from swarm.compose import (
    parse_cpus,
)


def test_cpus_are_exact_nano_cpus():
    assert parse_cpus("0.8") == 800_000_000
    assert parse_cpus("1/4") == 250_000_000
    assert parse_cpus("2") == 2_000_000_000
    assert parse_cpus("0.000000001") == 1
    for bad in ("abc", "0.0000000001", "1/3", "-1", "1/0", " 1", "1,5"):
        with pytest.raises(ValueError):
            parse_cpus(bad)
