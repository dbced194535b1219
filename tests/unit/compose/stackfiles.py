"""Stack files the Compose tests share: the corpus, Docker's own loader, and small loaders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from swarm.compose import StackFileError, StackSpec, load_stack_file

ROOT = Path(__file__).resolve().parents[3]


CORPUS = ROOT / "tests" / "compose_corpus"


VALID_FILES = sorted(ROOT.glob("stacks/*.yaml")) + sorted(CORPUS.glob("*.yml"))


INVALID_FILES = sorted((CORPUS / "invalid").glob("*.yml"))


STACK = "test"


# Keys the loader accepts but swarm ignores: each must produce a warning naming its path.
IGNORED_KEYS = {"build", "container_name", "depends_on", "expose", "links", "privileged", "security_opt"}


def docker_config(path: Path) -> subprocess.CompletedProcess[str]:
    # A bare environment: Docker would otherwise copy values from this shell.
    return subprocess.run(
        ["docker", "stack", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        timeout=60,
    )


def load(tmp_path: Path, text: str, **kwargs) -> StackSpec:
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return load_stack_file(path, stack=STACK, **kwargs)


def problems(tmp_path: Path, text: str, **kwargs) -> dict[str, str]:
    with pytest.raises(StackFileError) as raised:
        load(tmp_path, text, **kwargs)
    return {problem.where: problem.message for problem in raised.value.problems}


def at(path: Path, fragment: str, nth: int = 0) -> str:
    """`path` as a problem names it when it is at the `nth` occurrence of `fragment` in the file:
    `stack.yml:7:13` (line and column counted from 1)."""
    hits = [(number, line.index(fragment) + 1) for number, line in enumerate(path.read_text().splitlines(), 1)
            if fragment in line]
    line, column = hits[nth]
    return f"{path}:{line}:{column}"
