"""Env files, read as Docker reads them."""

from __future__ import annotations

from pathlib import Path


def parse_env_file(path: Path) -> list[tuple[str, str | None]]:
    """Variables in an env file, read as Docker reads them: `NAME=value` taken verbatim (no
    quote removal, no trimming), `#` comments and blank lines skipped, `NAME` alone has no value."""
    variables = []
    text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name = name.lstrip(" \t")
        if not name or " " in name or "\t" in name:
            raise ValueError(f"line {number}: variable name {name!r} is empty or contains whitespace")
        variables.append((name, value if equals else None))
    return variables
