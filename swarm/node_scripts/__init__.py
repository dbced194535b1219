"""Node scripts kept as real shell files, and the one way they are rendered.

Each `<name>.sh` here is a complete POSIX sh script that shellcheck reads as it is. Its inputs
are UPPERCASE variables (shellcheck takes those for the environment, so it does not ask where
they are set), listed on a line of their own near the top:

    #!/bin/sh
    # inputs: NODE POOL TIMEOUT
    set -eu

`render("retire", NODE=..., POOL=..., TIMEOUT=...)` returns the file with `set -eu` moved up to
the second line (strict before anything runs) followed by one quoted assignment per input: no f-string brace escaping, no `.replace` chains, and the
text changes only when an input does. Every declared input must be given and nothing else,
so a renamed variable fails the unit tests rather than a node.

Secrets never go through here: they reach scripts on stdin.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

_DIRECTORY = Path(__file__).parent
_INPUTS = re.compile(r"^# inputs:(?P<names>( [A-Z][A-Z0-9_]*)*)$", re.MULTILINE)
_HEADER = "#!/bin/sh\n"
_STRICT = "set -eu\n"


def path(name: str) -> Path:
    return _DIRECTORY / f"{name}.sh"


@cache
def source(name: str) -> tuple[str, tuple[str, ...]]:
    """The script's text and its declared inputs."""
    text = path(name).read_text()
    if not text.startswith(_HEADER) or f"\n{_STRICT}" not in text:
        raise ValueError(f"{path(name)}: a node script starts with '#!/bin/sh' and has a 'set -eu' line")
    match = _INPUTS.search(text)
    inputs = tuple(match["names"].split()) if match else ()
    return text, inputs


def render(name: str, **values: str | int) -> str:
    """The script `name` with its inputs assigned. Values are quoted with shlex.quote."""
    text, inputs = source(name)
    missing = [key for key in inputs if key not in values]
    unknown = [key for key in values if key not in inputs]
    if missing or unknown:
        raise TypeError(f"{path(name)}: inputs {list(inputs)}; missing {missing}, unknown {unknown}")
    assignments = "".join(f"{key}={shlex.quote(str(values[key]))}\n" for key in inputs)
    head, _, rest = text.partition(f"\n{_STRICT}")
    return f"{_HEADER}{_STRICT}{assignments}{head.removeprefix(_HEADER)}\n{rest}"


def names() -> list[str]:
    """Every node script in the package, for the shellcheck test."""
    return sorted(p.stem for p in _DIRECTORY.glob("*.sh"))
