"""Stage 1: a stack file's YAML, read as Docker's parser (gopkg.in/yaml.v3) reads it, with the
position of every value.

Only `true`/`false` are booleans, no sexagesimal numbers, `0440` is octal, duplicate keys are an
error (with the line of the first one). A file that cannot be read or parsed is one problem with
the line and column of the mistake.

The document comes with its Positions (swarm/diagnostics.py): the line and column of every value
and mapping key, by path, taken from the nodes the one parse composed, so that every later stage
reports `stacks/prod.yaml:47:5: services.api.deplyo: ...` while knowing only the path. A value
reached through an alias or a `<<: *defaults` merge is placed where its text is (in the anchored
mapping): that is the text to change, and the path in the message says which service got it."""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from swarm.diagnostics import (
    Mark,
    PathElement,
    Positions,
    Problem,
    ProblemPath,
    StackFileError,
    describe_yaml_error,
    display_path,
    yaml_error_mark,
)


class Timestamp(str):
    """A plain scalar that Docker's YAML parser turns into a time (and prints as one)."""


_GO_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")


_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}.*)?")


_KEYWORDS: dict[str, Any] = {
    **dict.fromkeys(("", "~", "null", "Null", "NULL")),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
}


_PLAIN_TAG = "tag:swarm,compose:plain"  # an unquoted scalar, resolved below


_STR_TAG = "tag:yaml.org,2002:str"


_DEFAULT_TAGS = {yaml.SequenceNode: "tag:yaml.org,2002:seq", yaml.MappingNode: "tag:yaml.org,2002:map"}


class _Composer(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Parses into nodes (in C when libyaml is there); plain scalars are left to _resolve."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN_TAG if implicit[0] else _STR_TAG
        return _DEFAULT_TAGS[kind]


def _go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64), falling back to ParseUint, as yaml.v3 tries them."""
    if not _GO_INT.fullmatch(text):
        return None
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        value = sign * int(digits, 8)  # a leading 0 is octal, as in YAML 1.1
    else:
        value = sign * int(digits, 0)
    fits = -(1 << 63) <= value < (1 << 63) or (0 <= value < (1 << 64) and text[0] not in "+-")
    return value if fits else None


def _resolve(text: str) -> Any:
    """A plain scalar's value under yaml.v3's rules: only true/false are booleans (not yes/on),
    no base-60 numbers, Go's integer syntax (0x1F, 0o17, 0440), floats need digits."""
    if text in _KEYWORDS:
        return _KEYWORDS[text]
    if text[0] not in "-+.0123456789":
        return text
    if _TIMESTAMP.fullmatch(text):
        return Timestamp(text)
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_FLOAT.fullmatch(plain if text[0] != "." else text):
        value = float(plain)
        if not math.isinf(value):  # Go's ParseFloat fails on overflow: the scalar stays a string
            return value
    return text


def _construct(node: yaml.Node, built: dict[int, Any], *, scalars: bool = False) -> Any:
    """The value of `node`; `built` keeps shared (anchored) collections shared, and holds the
    value of every scalar node too when `scalars` (the placer looks keys up there)."""
    if isinstance(node, yaml.ScalarNode):
        tag = node.tag
        if tag == _PLAIN_TAG:
            value = _resolve(node.value)
        elif tag == _STR_TAG:
            value = node.value
        else:  # an explicit tag such as !!int: PyYAML's safe constructor knows them
            value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
        if scalars:
            built[id(node)] = value
        return value
    if id(node) in built:
        return built[id(node)]
    if isinstance(node, yaml.SequenceNode):
        value = built[id(node)] = []
        value.extend(_construct(child, built, scalars=scalars) for child in node.value)
        return value
    value = built[id(node)] = {}
    merged: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _PLAIN_TAG and key_node.value == "<<":
            # Merge keys: explicit keys win, then the earlier of several merged mappings.
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):
                mapping = _construct(source, built, scalars=scalars)
                if not isinstance(mapping, dict):
                    raise yaml.constructor.ConstructorError(None, None, "<< merges mappings only", source.start_mark)
                merged |= mapping
            continue
        key = _construct(key_node, built, scalars=scalars)
        try:
            if key in value:  # only explicit keys so far: merged ones are added after the loop
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} is already defined at line {_first_line(node, key, built)}",
                    key_node.start_mark,
                )
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark) from None
        value[key] = _construct(value_node, built, scalars=scalars)
    value.update({key: item for key, item in merged.items() if key not in value})
    return value


def _first_line(node: yaml.MappingNode, key: Any, built: dict[int, Any]) -> int:
    """The line of the first explicit `key` of `node` (for the duplicate key message)."""
    for key_node, _ in node.value:
        if not _is_merge(key_node) and ((found := _construct(key_node, built)) is key or found == key):
            return key_node.start_mark.line + 1
    raise AssertionError(f"{key!r} is not a key of the mapping")


# Aliases can make the number of paths grow exponentially with the file (a "billion laughs"
# file): past this many positions, the contents of a node already walked once are not walked
# again, and their paths are placed at the nearest placed ancestor.
_MAX_POSITIONS = 200_000


@dataclass(frozen=True)
class YamlDocument:
    """A YAML document's value and where each of its values and keys is."""

    value: Any
    positions: Positions


def _is_merge(key_node: yaml.Node) -> bool:
    return key_node.tag == _PLAIN_TAG and key_node.value == "<<"


def _entries(node: yaml.MappingNode, built: dict[int, Any], merging: frozenset[int] = frozenset()) -> list:
    """(key, key node, value node) of every entry of a constructed mapping, merged ones
    included, with _construct's precedence: its own keys, then the later `<<`, then the earlier
    of several mappings merged by one `<<`."""
    entries = [(built[id(key)], key, value) for key, value in node.value if not _is_merge(key)]
    taken = {key for key, _, _ in entries}
    merging = merging | {id(node)}  # a mapping merged into itself adds nothing
    for key_node, value_node in reversed(node.value):
        if not _is_merge(key_node):
            continue
        for source in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
            if id(source) in merging:
                continue
            for entry in _entries(source, built, merging):
                if entry[0] not in taken:
                    taken.add(entry[0])
                    entries.append(entry)
    return entries


class _Placer:
    """Walks the composed nodes of a constructed document and records where each path is."""

    def __init__(self, built: dict[int, Any]) -> None:
        self.built = built
        self.values: dict[ProblemPath, Mark] = {}
        self.keys: dict[ProblemPath, Mark] = {}
        self.inside: set[int] = set()  # the collections being walked: a recursive alias stops here
        self.walked: set[int] = set()  # the collections walked at least once

    def place(self, node: yaml.Node, path: ProblemPath, key_node: yaml.Node | None) -> None:
        scalar = isinstance(node, yaml.ScalarNode)
        if key_node is None:
            self.values[path] = _mark(node)
        else:
            self.keys[path] = key = _mark(key_node)
            # A block collection starts on the line after its key, and an absent value (`key:`)
            # after the colon: both are placed at their key, the line that introduces them.
            at_key = node.value == "" and node.tag == _PLAIN_TAG if scalar else node.flow_style is False
            self.values[path] = key if at_key else _mark(node)
        if scalar or id(node) in self.inside or (id(node) in self.walked and len(self.values) >= _MAX_POSITIONS):
            return
        self.walked.add(id(node))
        self.inside.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.place(item, (*path, index), None)
        elif any(_is_merge(key) for key, _ in node.value):
            for key, key_node, value_node in _entries(node, self.built):
                self.place(value_node, (*path, _element(key)), key_node)
        else:  # no merge: the entries as written (most mappings)
            for key_node, value_node in node.value:
                self.place(value_node, (*path, _element(self.built[id(key_node)])), key_node)
        self.inside.discard(id(node))


def _element(key: Any) -> PathElement:
    """A mapping key as a path element: the loader names a non-string key by its text."""
    return key if isinstance(key, str) else str(key)


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _compose(text: str) -> yaml.Node | None:
    composer = _Composer(text)
    try:
        return composer.get_single_node()
    finally:
        composer.dispose()


@contextmanager
def _without_gc() -> Iterator[None]:
    """Reading allocates millions of objects and frees none until the end: the cycle collector
    would scan them again and again for nothing (two thirds of the time of a 1 MB stack file,
    scripts/bench_compose.py). A cycle made here (a recursive alias) is collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_yaml(text: str) -> Any:
    """A YAML document, with scalars resolved as Docker resolves them."""
    with _without_gc():
        return _value(text)


def read_yaml_document(text: str) -> YamlDocument:
    """A YAML document as read_yaml reads it, with the position of each value and key."""
    with _without_gc():
        return _document(text)


# The two below return once the composed nodes (several objects per value of the file) are freed:
# the collector, enabled again after them, then scans only what was built, not the nodes too.


def _value(text: str) -> Any:
    node = _compose(text)
    return None if node is None else _construct(node, {})


def _document(text: str) -> YamlDocument:
    node = _compose(text)
    if node is None:
        return YamlDocument(None, Positions())
    value = _construct(node, {})
    del node
    placement = _Placement(text)
    return YamlDocument(value, Positions(_Marks(placement, keys=False), _Marks(placement, keys=True)))


def _place(text: str) -> tuple[dict[ProblemPath, Mark], dict[ProblemPath, Mark]]:
    """(values, keys): where each value and each mapping key of the document is, by path."""
    node = _compose(text)
    built: dict[int, Any] = {}
    _construct(node, built, scalars=True)
    placer = _Placer(built)
    placer.place(node, (), None)
    return placer.values, placer.keys


class _Placement:
    """A document's positions, placed from its text the first time one is asked for. Most files
    have no problem, and nothing asks: placing 1,000 services' 51,000 paths took a third of
    reading them, and the tables a third of the memory (scripts/bench_compose.py). The text
    parsed once already parses again the same."""

    def __init__(self, text: str) -> None:
        self._text: str | None = text
        self._tables: tuple[dict[ProblemPath, Mark], dict[ProblemPath, Mark]] | None = None

    def table(self, keys: bool) -> dict[ProblemPath, Mark]:
        if self._tables is None:
            with _without_gc():
                self._tables = _place(self._text or "")
            self._text = None
        return self._tables[keys]


class _Marks(Mapping[ProblemPath, Mark]):
    """The value positions or the key positions of a _Placement, as a read-only mapping."""

    def __init__(self, placement: _Placement, *, keys: bool) -> None:
        self._placement = placement
        self._keys = keys

    def __getitem__(self, path: ProblemPath) -> Mark:
        return self._placement.table(self._keys)[path]

    def __contains__(self, path: object) -> bool:
        return path in self._placement.table(self._keys)

    def __iter__(self) -> Iterator[ProblemPath]:
        return iter(self._placement.table(self._keys))

    def __len__(self) -> int:
        return len(self._placement.table(self._keys))

    def __repr__(self) -> str:
        return repr(self._placement.table(self._keys))


def read_stack_file(path: Path) -> YamlDocument:
    """The YAML document at `path`, read as Docker reads it, with its positions; StackFileError
    if it cannot be read or parsed (at the line and column of the mistake)."""
    source = display_path(path)
    try:
        return read_yaml_document(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StackFileError([Problem(source, (), f"cannot be read: {error.strerror or error}")]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        line, column = yaml_error_mark(error) or (None, None)
        message = describe_yaml_error(error, with_mark=False)
        raise StackFileError([Problem(source, (), message, line=line, column=column)]) from None
