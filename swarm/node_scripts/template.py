"""The one way node scripts are rendered: the shell files beside this module, with their inputs.

Each `<name>.sh` here is a complete POSIX sh script that shellcheck reads as it is. Its inputs
are UPPERCASE variables (shellcheck takes those for the environment, so it does not ask where
they are set), listed on a line of their own near the top:

    #!/bin/sh
    # inputs: NODE POOL TIMEOUT
    set -eu

`render("retire", NODE=..., POOL=..., TIMEOUT=...)` returns the file with `set -eu` moved up to
the second line (strict before anything runs) followed by one quoted assignment per input: no
f-string brace escaping, no `.replace` chains, and the text changes only when an input does.
Every declared input must be given and nothing else, so a renamed variable fails the unit tests
rather than a node. A list is one input with one item a line (e.g. converge.sh's TARGETS),
read with `while read`.

Shared shell code: a file whose name starts with `_` (`_task_errors.sh`) is a fragment that only
defines shell functions. A script that calls them names it on a `# uses:` line:

    # inputs: NODE
    # uses: _task_errors
    set -eu

and render() puts the fragment's body (everything after its own `set -eu` line) after the
assignments and the script's own comments, before its first command, so the script that reaches
the node is still one self-contained file (init.sh and join.sh share _swarm.sh; init.sh and
handover.sh share _manager.sh and _docker.sh; init.sh, handover.sh and daemon.sh share _wait.sh;
retire.sh and converge.sh share _task_errors.sh). Shellcheck reads fragments as they are, like scripts; a
fragment has no inputs (its functions take arguments) and is not rendered on its own. A part of a script that only some nodes need is not
spliced in either: it is guarded by an input that may be empty (init.sh's STATE_BACKUP, empty for
a manager without a volume), so every node's script is the same file.

A script that is the same everywhere (no inputs) renders to its file's text unchanged, when the
file has `set -eu` as its second line (gpu_setup.sh, carried byte for byte in the user data).

A value holding `$` or a backquote gets a shellcheck directive (SC2016) on its assignment alone:
single-quoted, it is meant literally. `inputs_of(text)` reads a rendered script's inputs back.

Changing a file changes the rendered text, and so re-runs its remote command on the next `up`
(an update runs `create` again): say what that does in CHANGELOG.md, "Upgrade notes".

Secrets never go through here: they reach scripts on stdin.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

_DIRECTORY = Path(__file__).parent
_INPUTS = re.compile(r"^# inputs:(?P<names>( [A-Z][A-Z0-9_]*)*)$", re.MULTILINE)
_USES = re.compile(r"^# uses:(?P<names>( _[a-z0-9_]+)+)$", re.MULTILINE)
_HEADER = "#!/bin/sh\n"
_STRICT = "set -eu\n"


def path(name: str) -> Path:
    return _DIRECTORY / f"{name}.sh"


@cache
def source(name: str) -> tuple[str, tuple[str, ...]]:
    """The script's text and its declared inputs."""
    text = path(name).read_text()
    if not text.startswith(_HEADER) or not (text.startswith(_HEADER + _STRICT) or f"\n{_STRICT}" in text):
        raise ValueError(f"{path(name)}: a node script starts with '#!/bin/sh' and has a 'set -eu' line")
    match = _INPUTS.search(text)
    inputs = tuple(match["names"].split()) if match else ()
    return text, inputs


def _split(name: str) -> tuple[str, str]:
    """The file's lines before its `set -eu` line (without the shebang), and those after it."""
    text, _ = source(name)
    body = text.removeprefix(_HEADER)
    if body.startswith(_STRICT):
        return "", body.removeprefix(_STRICT)
    head, _, rest = body.partition(f"\n{_STRICT}")
    return f"{head}\n", rest


def uses(name: str) -> tuple[str, ...]:
    """The fragments script `name` names on its `# uses:` line."""
    match = _USES.search(source(name)[0])
    return tuple(match["names"].split()) if match else ()


def render(name: str, **values: str | int) -> str:
    """The script `name` with its inputs assigned. Values are quoted with shlex.quote."""
    if name.startswith("_"):
        raise ValueError(f"{path(name)} is a fragment: it is rendered into the scripts that use it")
    _, inputs = source(name)
    missing = [key for key in inputs if key not in values]
    unknown = [key for key in values if key not in inputs]
    if missing or unknown:
        raise TypeError(f"{path(name)}: inputs {list(inputs)}; missing {missing}, unknown {unknown}")
    assignments = "".join(_assignment(key, str(values[key])) for key in inputs)
    fragments = "".join(_split(fragment)[1] for fragment in uses(name))
    head, rest = _split(name)
    return f"{_HEADER}{_STRICT}{assignments}{head}{fragments}{rest}"


def _assignment(key: str, value: str) -> str:
    quoted = shlex.quote(value)
    # shlex.quote single-quotes: a `$` or a backquote inside is meant literally (a script's own
    # text, such as the scheduler's Python modules), which shellcheck's SC2016 doubts.
    literal = "# shellcheck disable=SC2016 # a literal value\n" if quoted.startswith("'") and ("$" in value or "`" in value) else ""
    return f"{literal}{key}={quoted}\n"


# One assignment as _assignment writes it: a name, then shlex.quote's output (bare safe characters,
# or single-quoted pieces joined by "'"), up to the end of its line.
_ASSIGNED = re.compile(r"""(# shellcheck disable=SC2016 .*\n)?([A-Z][A-Z0-9_]*)=((?:'[^']*'|"'"|[^\s'"])*)\n""")


def inputs_of(rendered: str) -> dict[str, str]:
    """The input values a rendered script was given (its assignments, which follow `set -eu`):
    what a plan or a test reads back."""
    values = {}
    position = len(_HEADER + _STRICT)
    while match := _ASSIGNED.match(rendered, position):
        values[match[2]] = shlex.split(match[3])[0] if match[3] else ""
        position = match.end()
    return values


def names() -> list[str]:
    """Every node script and fragment in the package, for the shellcheck test."""
    return sorted(p.stem for p in _DIRECTORY.glob("*.sh"))
