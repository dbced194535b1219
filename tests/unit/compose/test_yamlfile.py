"""YAML read as Docker's parser (yaml.v3) reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.compose import (
    StackFileError,
    go_string,
    load_stack_file,
    read_yaml,
)
from tests.unit.compose.stackfiles import (
    STACK,
)


def test_yaml_scalars_resolve_as_in_docker():
    document = read_yaml(
        "a: {on: on, yes: yes, t: TRUE, o: 0440, n: ~, p: 22:22, f: 1e3, h: 0x1F, big: 18446744073709551616}"
    )
    assert document["a"] == {
        "on": "on",
        "yes": "yes",
        "t": True,
        "o": 288,
        "n": None,
        "p": "22:22",
        "f": 1000.0,
        "h": 31,
        "big": 1.8446744073709552e19,
    }
    assert [go_string(value) for value in (1.10, 1e6, 100000.0, 1.2e-05, 12, 0.1)] == [
        "1.1",
        "1e+06",
        "100000",
        "1.2e-05",
        "12",
        "0.1",
    ]


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path):
    path = tmp_path / "stack.yml"
    path.write_text("services:\n  a: {image: x}\n  a: {image: y}\n")
    with pytest.raises(StackFileError, match="already defined at line 2"):
        load_stack_file(path, stack=STACK)
