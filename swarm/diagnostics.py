"""Problems and warnings about the operator's files, collected, and the one error that stops a
deployment.

Every validator (the stack configuration, the stack file, the model catalogue, the checks before
anything is registered) reports with the same `Problem`: the file, the path inside it as a tuple
(`("services", "api", "ports", 0)`), the message (what is wrong and how to fix it) and the
severity. A warning stays a Problem until it is printed: whoever groups or re-attributes
warnings (swarm/plan/report.py, the catalogue) reads their fields, never their text.

A path element is kept whole, however it is spelt: a service named `api.v2` is one element, so
nothing has to guess where a dotted name ends. Configuration problems are paths too, the first
element carrying the namespace: `("swarm:nodePools", "ml", "labels", "com.example.tier")`, printed
`swarm:nodePools.ml.labels.com.example.tier`; a pool name or label key with dots in it stays one
element. A validator may give a top-level key alone as a string (`"region"`): it is the whole path.

A problem in a stack file or model catalogue also has the line and column (from 1) of what it is
about, and prints the way compilers do, which editors and CI annotations understand:
`stacks/prod.yaml:47:5: services.api.deplyo: unknown key; did you mean deploy?`. The Collector of
such a file is given the file's `Positions` (recorded while the YAML is read) and attaches them,
so validators report by path alone. A problem without a position prints as `file: path: message`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PathElement = str | int
ProblemPath = tuple[PathElement, ...]
Mark = tuple[int, int]  # (line, column), both counted from 1
ERROR = "error"
WARNING = "warning"


def format_path(path: tuple[PathElement, ...]) -> str:
    """("services", "api", "ports", 0) as "services.api.ports[0]"."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += f".{element}" if text else element
    return text


@dataclass(frozen=True)
class Problem:
    file: str  # the file it is in; "" when the path says it (a swarm:* key)
    path: tuple[PathElement, ...]  # inside the file; () for the whole file
    message: str  # what is expected and how to fix it
    severity: str = ERROR  # error | warning
    # The stack file service it is about, when it is about one: grouping and attribution use it.
    service: str | None = None
    line: int | None = None  # where in the file, counted from 1; None when not known
    column: int | None = None

    @property
    def where(self) -> str:
        return format_path(self.path)

    @property
    def location(self) -> str:
        """The file as compilers print it: `stacks/prod.yaml:47:5`, or the file alone."""
        if not self.file or self.line is None:
            return self.file
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column is not None else "")

    @property
    def key(self) -> str:
        """The path as text: for a configuration problem, the full key (`swarm:nodePools.ml`)."""
        return self.where

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.location, self.where) if part)
        return f"{where}: {self.message}" if where else self.message

    @property
    def fix(self) -> str | None:
        """The part of the message that says what to do, when it says it as its last clause
        ("...; add a node to pool ml"), for tools that show the fix apart; None otherwise."""
        for separator in ("; ", ": "):
            clause = self.message.rsplit(separator, 1)[-1] if separator in self.message else ""
            first = clause.split(" ", 1)[0].strip("`(").lower()
            if first in FIX_VERBS or clause.startswith("did you mean "):
                return clause
        return None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: what `python -m swarm plan --format json` lists under `problems`."""
        return {"file": self.file or None, "line": self.line, "column": self.column, "path": self.where or None,
                "severity": self.severity, "message": self.message, "fix": self.fix}


# The first words of a clause that tells the reader what to do (see Problem.fix).
FIX_VERBS = frozenset(
    "add set use remove list give lower raise change make keep create quote constrain rename pick point free "
    "run pin move delete drop fix declare publish replace write put open close enable disable split".split()
)


@dataclass(frozen=True)
class Positions:
    """Where each value of a YAML document is, by path (mapping keys as strings, sequence items
    as indexes), and where each mapping key is. A block mapping or list under a key is at its
    key (the line that introduces it); a flow one at its bracket; a scalar at its first
    character. A value that several paths share (a YAML alias, a `<<` merge) is where its text
    is, under each path that reaches it."""

    values: Mapping[ProblemPath, Mark] = field(default_factory=dict)
    keys: Mapping[ProblemPath, Mark] = field(default_factory=dict)

    def of(self, path: ProblemPath, *, key: bool = False) -> Mark | None:
        """Where `path` is (its key's position when `key` and it has one); for a path the file
        does not have (a missing key, a value a stage derived), where its nearest ancestor is."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return None

    def place(self, problem: Problem, *, key: bool = False) -> Problem:
        """`problem` with the position of its path."""
        mark = self.of(problem.path, key=key)
        return problem if mark is None else dataclasses.replace(problem, line=mark[0], column=mark[1])


class Collector:
    """Collects problems and warnings about one file. With a `namespace` (configuration), the
    first element of every path is prefixed with it: ("nodePools", "ml") is swarm:nodePools.ml.
    With `positions` (a YAML file's, see Positions), each gets the line and column of its path."""

    def __init__(self, file: str = "", namespace: str = "", positions: Positions | None = None) -> None:
        self.file = file
        self.namespace = namespace
        self.positions = positions
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def _problem(self, path: str | ProblemPath, message: str, severity: str, key: bool) -> Problem:
        if isinstance(path, str):  # a top-level key alone, never split: "region", "(stack name)"
            path = (path,) if path else ()
        mark = self.positions.of(path, key=key) if self.positions is not None else None
        if self.namespace and path:
            path = (f"{self.namespace}:{path[0]}", *path[1:])
        service = path[1] if len(path) >= 2 and path[0] == "services" and isinstance(path[1], str) else None
        line, column = mark or (None, None)
        return Problem(self.file, path, message, severity, service, line, column)

    def problem(self, path: str | ProblemPath, message: str, *, key: bool = False) -> None:
        """An error at `path`: a tuple of elements, or a top-level key alone as a string. `key`:
        it is about the key itself (unknown, misspelt, too new), so it points at the key."""
        self.problems.append(self._problem(path, message, ERROR, key))

    def warn(self, path: str | ProblemPath, message: str, *, key: bool = False) -> None:
        self.warnings.append(self._problem(path, message, WARNING, key))


class NothingDeployed(Exception):
    """Input files are invalid; nothing must be deployed. The text lists every problem."""

    subject = "the input files"

    def __init__(self, problems: Iterable[Problem], source: str = "", *, partial: object | None = None):
        self.problems = list(problems)
        self.source = source
        # What could be read despite the problems (a ClusterConfig, a StackSpec), so that the
        # checks that do not depend on them still run: every problem is found in one pass.
        self.partial = partial
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{len(self.problems)} {noun} in {self.subject}; nothing was deployed:\n{lines}")


class StackFileError(NothingDeployed):
    """The stack file (or its model catalogue) is invalid."""

    subject = "the stack file"


class ConfigError(NothingDeployed):
    """The stack configuration is invalid (or does not match the stack file). `partial`: the
    configuration as far as it could be read (the keys with problems left at their defaults);
    None when the file itself could not be read."""

    subject = "the stack configuration"

    def __init__(self, source: str, problems: Iterable[Problem], *, partial: object | None = None):
        super().__init__(problems, source, partial=partial)


class FilesInvalid(ConfigError, StackFileError):
    """Problems in the stack configuration and in the stack file (or between them), all found
    in one pass. It is both a ConfigError and a StackFileError, so whatever refuses either
    refuses it."""

    def __init__(self, problems: Iterable[Problem], files: Iterable[str]):
        self.subject = " and ".join(dict.fromkeys(files))
        NothingDeployed.__init__(self, problems)


def config_problem(path: str | ProblemPath, message: str) -> Problem:
    """A problem with a `swarm:*` key found outside a Collector: its path, the first element
    with the namespace (`("swarm:images", "api")`), or a top-level key alone (`"swarm:backups"`)."""
    return Problem("", (path,) if isinstance(path, str) else tuple(path), message)


def config_warning(path: str | ProblemPath, message: str) -> Problem:
    return Problem("", (path,) if isinstance(path, str) else tuple(path), message, WARNING)


# ---- how messages show files and their parse errors (config and stack files alike) ---------------


def yaml_error_mark(error: Exception) -> Mark | None:
    """Where a YAML parser error is, (line, column) counted from 1, when the parser says."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return None if mark is None else (mark.line + 1, mark.column + 1)


def describe_yaml_error(error: Exception, *, with_mark: bool = True) -> str:
    """A YAML parser error as one line: where (line and column, counted from 1, unless the
    Problem carries them: `with_mark=False`) and the parser's problem, without PyYAML's
    `in "<unicode string>"` or a traceback."""
    if isinstance(error, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {error.start}: {error.reason})"
    mark = yaml_error_mark(error) if with_mark else None
    problem = getattr(error, "problem", None) or str(error).split("\n")[0]
    context = getattr(error, "context", None)
    where = f"line {mark[0]}, column {mark[1]}: " if mark is not None else ""
    return f"is not valid YAML: {where}{problem}" + (f" ({context})" if context else "")


def display_path(path: Path) -> str:
    """`path` as messages show it: relative to the project (the folder holding Pulumi.yaml)
    when it is inside one, else as given."""
    path = Path(path)
    absolute = path.absolute()
    for folder in absolute.parents:
        if (folder / "Pulumi.yaml").is_file():
            return str(absolute.relative_to(folder))
    return str(path)
