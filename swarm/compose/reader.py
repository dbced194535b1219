"""The reader every section uses: walks the document once, collects every problem and warning,
and checks each key against the Compose file version that introduced it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from swarm.compose.model import NAME, Declared
from swarm.compose.yamlfile import Timestamp
from swarm.diagnostics import Collector, PathElement, Positions, Problem
from swarm.suggest import did_you_mean
from swarm.values import go_string, parse_duration

Version = tuple[int, int]


V30, V31, V32, V33, V34, V35, V36, V37, V38, V39 = ((3, minor) for minor in range(10))


V310, V312, V313 = (3, 10), (3, 12), (3, 13)


DEFAULT_VERSION = (3, 13)


LATEST_MINOR = 13


PROVIDER = "not supported by the Docker provider this program deploys with (pulumi-docker 5.2)"


_DOLLAR = re.compile(r"\$\$|\$")


Where = tuple[PathElement, ...]  # a path in the stack file: ("services", "api", "ports", 0)


def join(path: Where | str, *keys: PathElement) -> Where:
    """`path` with `keys` appended; a string `path` is one top-level key ("" for none)."""
    if isinstance(path, str):
        path = (path,) if path else ()
    return (*path, *keys)


def version_text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


class Reader:
    def __init__(self, source: str, base_dir: Path, stack: str, positions: Positions | None = None):
        self.source = source
        self.base_dir = base_dir
        self.stack = stack
        self.version: Version = DEFAULT_VERSION
        self.declared = Declared({}, {}, {}, {})  # the top-level objects, once read (services use them)
        self.found = Collector(source, positions=positions)  # each problem at its line and column
        self.problems: list[Problem] = self.found.problems
        self.warnings: list[Problem] = self.found.warnings

    def problem(self, path: Where | str, message: str, *, key: bool = False) -> None:
        """A problem at `path`; `key`: about the key itself (unknown, too new), placed at the key."""
        self.found.problem(join(path), message, key=key)

    def warn(self, path: Where | str, message: str, *, key: bool = False) -> None:
        self.found.warn(join(path), message, key=key)

    # -- structure

    def mapping(self, value: Any, path: Where, keys: dict[str, Version], extensions: Version | None = V37) -> dict:
        """`value` as a mapping whose unknown or too-new keys are reported; {} if not a mapping."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, not {kind_of(value)}")
            return {}
        for key in value:
            if key in keys and isinstance(key, str) and not key.startswith("x-") and self.version >= keys[key]:
                continue  # a known key of this version: most of them (no path built for nothing)
            key_path = join(path, str(key))
            if not isinstance(key, str):
                self.problem(key_path, f"keys must be strings, not {kind_of(key)}: quote the key", key=True)
            elif key.startswith("x-") and extensions is not None:
                self.require(extensions, key_path, "extension fields (x-)")
            elif key in keys:
                self.require(keys[key], key_path, f"`{key}`")
            else:
                hint = did_you_mean(key, keys) or f"; expected one of: {', '.join(sorted(keys))}"
                self.problem(key_path, f"unknown key{hint}", key=True)
        return value

    def require(self, version: Version, path: Where, what: str) -> None:
        if self.version < version:
            self.problem(
                path,
                f"{what} needs Compose file version {version_text(version)} or later, and this file says "
                f"{version_text(self.version)}: raise `version` (at most 3.{LATEST_MINOR}) or remove it",
                key=True,
            )

    def named_entries(self, value: Any, path: Where) -> list[tuple[str, Any]]:
        """Entries of a section keyed by name (services, networks, ...), with names checked."""
        if value is None:
            return []
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of names to definitions, not {kind_of(value)}")
            return []
        entries = []
        for name, definition in value.items():
            if not isinstance(name, str) or not NAME.match(name):
                self.problem(join(path, str(name)), "names are letters, digits, '.', '_' and '-' only", key=True)
            else:
                entries.append((name, definition))
        return entries

    # -- scalars

    def string(self, value: Any, path: Where) -> str | None:
        if isinstance(value, Timestamp):
            self.problem(path, f"Docker reads the unquoted {value} as a timestamp: quote it")
        elif isinstance(value, str):
            return value
        else:
            self.problem(path, f"must be a string, not {kind_of(value)}: quote it")
        return None

    def boolean(self, value: Any, path: Where) -> bool | None:
        if isinstance(value, bool):
            return value
        self.problem(path, f"must be true or false, not {kind_of(value)}")
        return None

    def integer(self, value: Any, path: Where, minimum: int = 0, maximum: int = (1 << 63) - 1) -> int | None:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be a whole number, not {kind_of(value)}")
        elif not minimum <= value <= maximum:
            self.problem(path, f"must be between {minimum} and {maximum}, not {value}")
        else:
            return value
        return None

    def number(self, value: Any, path: Where, minimum: float = 0, maximum: float = math.inf) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.problem(path, f"must be a number, not {kind_of(value)}")
        elif not minimum <= value <= maximum:
            self.problem(path, f"must be between {minimum} and {maximum}, not {go_string(value)}")
        else:
            return value
        return None

    def choice(self, value: Any, path: Where, choices: tuple[str, ...]) -> str | None:
        text = self.string(value, path)
        if text is not None and text not in choices:
            self.problem(path, f"must be one of {', '.join(choices)}, not {text!r}")
            return None
        return text

    def duration(self, value: Any, path: Where) -> int | None:
        text = self.string(value, path)
        if text is None:
            return None
        try:
            nanoseconds = parse_duration(text)
        except ValueError as error:
            self.problem(path, str(error))
            return None
        if nanoseconds < 0:
            self.problem(path, f"must not be negative, not {text!r}")
            return None
        return nanoseconds

    def scalar_text(self, value: Any, path: Where) -> str | None:
        """A string or number used as a string (label and environment values, options)."""
        if isinstance(value, Timestamp):
            self.problem(path, f"Docker reads the unquoted {value} as a timestamp: quote it")
        elif isinstance(value, str):
            return value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return go_string(value)
        else:
            self.problem(path, f"must be a string or a number, not {kind_of(value)}")
        return None

    # -- collections

    def strings(self, value: Any, path: Where, *, single: bool = False, unique: bool = True) -> tuple[str, ...]:
        """A list of strings; `single` also accepts one string, as Compose's string_or_list."""
        if single and isinstance(value, str):
            return (self.string(value, path) or "",)
        if not isinstance(value, list):
            self.problem(path, f"must be a list of strings{' or a string' if single else ''}, not {kind_of(value)}")
            return ()
        items = [self.string(item, join(path, index)) for index, item in enumerate(value)]
        if unique:
            self.unique(value, path)
        return tuple(item for item in items if item is not None)

    def unique(self, items: list, path: Where) -> None:
        seen: list = []
        for index, item in enumerate(items):
            if item in seen:
                self.problem(join(path, index), f"duplicates item {seen.index(item)}: each item must be unique")
            seen.append(item)

    def dictionary(self, value: Any, path: Where, separator: str = "=") -> dict[str, tuple[str | None, str]]:
        """A Compose list_or_dict: {"K": "V"} or ["K=V", "K"]; each key maps to its value (None
        when absent) and the path it came from."""
        result: dict[str, tuple[str | None, str]] = {}
        if isinstance(value, dict):
            for key, item in value.items():
                item_path = join(path, str(key))
                if not isinstance(key, str) or not key:
                    self.problem(item_path, "keys must be non-empty strings", key=True)
                elif item is None:
                    result[key] = (None, item_path)
                elif (text := self.scalar_text(item, item_path)) is not None:
                    result[key] = (text, item_path)
        elif isinstance(value, list):
            self.unique(value, path)
            for index, item in enumerate(value):
                item_path = join(path, index)
                text = self.string(item, item_path)
                if text is not None:
                    key, found, rest = text.partition(separator)
                    result[key] = (rest if found else None, item_path)
        elif value is not None:
            self.problem(path, f'must be a mapping or a list of "KEY{separator}VALUE" strings, not {kind_of(value)}')
        return result

    def labels(self, value: Any, path: Where) -> dict[str, str]:
        """Labels, sysctls and the like: a key without a value has the empty value, as in Docker."""
        return {key: text or "" for key, (text, _) in self.dictionary(value, path).items()}

    def options(self, value: Any, path: Where) -> dict[str, str]:
        """Driver options: a mapping of names to strings or numbers."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of option names to values, not {kind_of(value)}")
            return {}
        result = {}
        for key, item in value.items():
            item_path = join(path, str(key))
            text = "" if item is None else self.scalar_text(item, item_path)
            if not isinstance(key, str):
                self.problem(item_path, "option names must be strings", key=True)
            elif text is not None:
                result[key] = text
        return result

    def interpolate(self, value: Any, path: Where) -> Any:
        """`value` with `$$` turned into `$`, as Docker does; any other `$` is reported."""
        if not _has_dollar(value):
            return value
        if isinstance(value, dict):
            return {key: self.interpolate(item, join(path, str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [self.interpolate(item, join(path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            if any(match.group() == "$" for match in _DOLLAR.finditer(value)):
                self.problem(
                    path,
                    "variable substitution ($VAR, ${VAR}) is not supported: a deployment must not depend on the "
                    "shell that runs it; write the value, or `$$` for a literal `$`",
                )
                return value
            return type(value)(value.replace("$$", "$"))
        return value


def _has_dollar(value: Any) -> bool:
    pending, seen = [value], set()  # a loop, not a recursion: it walks every value of the file
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "$" in item:
                return True
        elif isinstance(item, (dict, list)) and id(item) not in seen:
            seen.add(id(item))  # a recursive alias (`&a [*a]`) contains itself
            pending.extend(item.values() if isinstance(item, dict) else item)
    return False


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {go_string(value)}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def external_of(r: Reader, definition: dict, path: Where) -> tuple[bool, str | None]:
    """`external: true` or the deprecated `external: {name: N}`: (is external, name given)."""
    value = definition.get("external")
    if value is None:
        return False, None
    if isinstance(value, dict):
        r.mapping(value, join(path, "external"), {"name": V30}, extensions=None)
        name = value.get("name")
        if name is not None and definition.get("name") is not None:
            r.problem(join(path, "external", "name"), "conflicts with `name`: keep only `name`")
        return True, None if name is None else r.string(name, join(path, "external", "name"))
    return bool(r.boolean(value, join(path, "external"))), None
