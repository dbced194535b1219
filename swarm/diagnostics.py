"""Problems and warnings about the operator's files, collected, and the one error that stops a
deployment.

Every validator (the stack configuration, the stack file, the model catalogue, the checks before
anything is registered) reports with the same `Problem`: the file, the path inside it as a tuple
(`("services", "api", "ports", 0)`), the message (what is wrong and how to fix it) and the
severity. A warning stays a Problem until it is printed: whoever groups or re-attributes
warnings (swarm/plan.py, the catalogue) reads their fields, never their text.

A path element is kept whole, however it is spelt: a service named `api.v2` is one element, so
nothing has to guess where a dotted name ends. Configuration problems are paths too, the first
element carrying the namespace: `("swarm:nodePools", "ml", "labels", "com.example.tier")`, printed
`swarm:nodePools.ml.labels.com.example.tier`; a pool name or label key with dots in it stays one
element. A validator may give a top-level key alone as a string (`"region"`): it is the whole path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PathElement = str | int
ProblemPath = tuple[PathElement, ...]
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

    @property
    def where(self) -> str:
        return format_path(self.path)

    @property
    def key(self) -> str:
        """The path as text: for a configuration problem, the full key (`swarm:nodePools.ml`)."""
        return self.where

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.where) if part)
        return f"{where}: {self.message}" if where else self.message


class Collector:
    """Collects problems and warnings about one file. With a `namespace` (configuration), the
    first element of every path is prefixed with it: ("nodePools", "ml") is swarm:nodePools.ml."""

    def __init__(self, file: str = "", namespace: str = "") -> None:
        self.file = file
        self.namespace = namespace
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def _problem(self, path: str | ProblemPath, message: str, severity: str) -> Problem:
        if isinstance(path, str):  # a top-level key alone, never split: "region", "(stack name)"
            path = (path,) if path else ()
        if self.namespace and path:
            path = (f"{self.namespace}:{path[0]}", *path[1:])
        service = path[1] if len(path) >= 2 and path[0] == "services" and isinstance(path[1], str) else None
        return Problem(self.file, path, message, severity, service)

    def problem(self, path: str | ProblemPath, message: str) -> None:
        """An error at `path`: a tuple of elements, or a top-level key alone as a string."""
        self.problems.append(self._problem(path, message, ERROR))

    def warn(self, path: str | ProblemPath, message: str) -> None:
        self.warnings.append(self._problem(path, message, WARNING))


class NothingDeployed(Exception):
    """Input files are invalid; nothing must be deployed. The text lists every problem."""

    subject = "the input files"

    def __init__(self, problems: Iterable[Problem], source: str = ""):
        self.problems = list(problems)
        self.source = source
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{len(self.problems)} {noun} in {self.subject}; nothing was deployed:\n{lines}")


class StackFileError(NothingDeployed):
    """The stack file (or its model catalogue) is invalid."""

    subject = "the stack file"


class ConfigError(NothingDeployed):
    """The stack configuration is invalid (or does not match the stack file)."""

    subject = "the stack configuration"

    def __init__(self, source: str, problems: Iterable[Problem]):
        super().__init__(problems, source)


def config_problem(path: str | ProblemPath, message: str) -> Problem:
    """A problem with a `swarm:*` key found outside a Collector: its path, the first element
    with the namespace (`("swarm:images", "api")`), or a top-level key alone (`"swarm:backups"`)."""
    return Problem("", (path,) if isinstance(path, str) else tuple(path), message)


def config_warning(path: str | ProblemPath, message: str) -> Problem:
    return Problem("", (path,) if isinstance(path, str) else tuple(path), message, WARNING)


# ---- how messages show files and their parse errors (config and stack files alike) ---------------


def describe_yaml_error(error: Exception) -> str:
    """A YAML parser error as one line: where (line and column, counted from 1) and the parser's
    problem, without PyYAML's `in "<unicode string>"` or a traceback."""
    if isinstance(error, UnicodeDecodeError):
        return f"is not UTF-8 text (byte {error.start}: {error.reason})"
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).split("\n")[0]
    context = getattr(error, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
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
