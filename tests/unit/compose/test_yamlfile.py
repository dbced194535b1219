"""YAML read as Docker's parser (yaml.v3) reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.compose import (
    StackFileError,
    go_string,
    load_stack_file,
    read_yaml,
    read_yaml_document,
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


def test_every_value_and_key_is_placed_at_its_line_and_column_counted_from_one():
    positions = read_yaml_document(
        "services:\n"
        "  api:\n"
        "    image: x            # a scalar: its first character\n"
        "    ports: [80, '81']   # a flow list: its bracket; items: their own\n"
        "    deploy:             # a block mapping: its key, the line that introduces it\n"
        "      replicas: 2\n"
        "    command:\n"
        "      - run\n"
        "    init:               # no value: its key\n"
        "    1: numeric key      # a non-string key is named by its text, as the loader names it\n"
    ).positions
    assert {path: positions.values[path] for path in positions.values} == {
        (): (1, 1),
        ("services",): (1, 1),
        ("services", "api"): (2, 3),
        ("services", "api", "image"): (3, 12),
        ("services", "api", "ports"): (4, 12),
        ("services", "api", "ports", 0): (4, 13),
        ("services", "api", "ports", 1): (4, 17),
        ("services", "api", "deploy"): (5, 5),
        ("services", "api", "deploy", "replicas"): (6, 17),
        ("services", "api", "command"): (7, 5),
        ("services", "api", "command", 0): (8, 9),
        ("services", "api", "init"): (9, 5),
        ("services", "api", "1"): (10, 8),
    }
    assert positions.keys[("services", "api", "image")] == (3, 5)
    assert ("services", "api", "ports", 0) not in positions.keys  # a list item has no key


def test_a_merged_or_aliased_value_is_placed_where_its_text_is_under_every_path_that_reaches_it():
    positions = read_yaml_document(
        "x-defaults: &defaults\n"
        "  image: base\n"
        "  deploy: {replicas: 2}\n"
        "services:\n"
        "  api:\n"
        "    <<: *defaults\n"
        "    image: own          # an explicit key wins over the merged one\n"
        "  web:\n"
        "    deploy: *defaults\n"
    ).positions
    assert positions.of(("services", "api", "image")) == (7, 12)
    assert positions.of(("services", "api", "deploy", "replicas")) == (3, 22)  # in x-defaults
    assert positions.of(("services", "api", "deploy", "replicas"), key=True) == (3, 12)
    assert positions.of(("services", "web", "deploy")) == (9, 5)  # the alias's key: a block mapping
    assert positions.of(("services", "web", "deploy", "image")) == (2, 10)


def test_a_recursive_alias_is_placed_without_walking_forever():
    document = read_yaml_document("a: &a\n  b: *a\n  c: 1\n")
    assert document.value["a"]["b"] is document.value["a"]
    assert document.positions.of(("a", "c")) == (3, 6)
    # Below the alias that recurses, paths are not walked: they are at the alias's key.
    assert document.positions.of(("a", "b", "c")) == document.positions.of(("a", "b", "b", "b", "c")) == (2, 3)


def test_a_yaml_mistake_in_a_stack_file_is_placed_at_the_mistake(tmp_path: Path):
    path = tmp_path / "stack.yml"
    path.write_text("services:\n  api:\n    image: x\n   deploy: {}\n")
    with pytest.raises(StackFileError) as raised:
        load_stack_file(path, stack=STACK)
    (problem,) = raised.value.problems
    assert str(problem) == f"{path}:4:4: is not valid YAML: did not find expected key (while parsing a block mapping)"


def test_aliases_that_multiply_paths_are_placed_within_a_bound_and_every_written_node_keeps_its_line():
    # 10^9 paths through aliases (a "billion laughs" file): walking them all would never end.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    positions = read_yaml_document("\n".join([*lines, "last: 1"]) + "\n").positions
    assert len(positions.values) < 201_000
    assert [positions.of((f"a{i}",)) for i in (0, 8)] == [(1, 5), (9, 5)]  # the anchor starts the value
    assert positions.of(("last",)) == (10, 7)
    assert positions.of(("a8", 0)) == (8, 5)  # an alias: where the anchored value is written
