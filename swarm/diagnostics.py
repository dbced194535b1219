"""Problems and warnings found in the operator's files, and the one error that stops a deployment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    path: str  # e.g. "services.api.deploy.resources.limits.memory"; "" for the whole file
    message: str  # what is expected and how to fix it

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class StackFileError(Exception):
    """A stack file is invalid; nothing must be deployed."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{len(problems)} {noun} in the stack file; nothing was deployed:\n{lines}")
