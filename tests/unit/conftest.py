"""Program runs shared by the mock tests: each checked-in stack, run once per session."""

from __future__ import annotations

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
