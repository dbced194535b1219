"""Fixtures for tests that run against the local swarm sandbox (see README.md here)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.pulumi_program import reference_stack_text
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox, missing_prerequisites

# The reference layout's droplets, named <stack>-<pool>-<n>.
REFERENCE_HOSTS = ("prod-manager-1", "prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3")

TIMINGS: dict[str, float] = {}


def sandbox_stack_file(directory: Path) -> Path:
    """stacks/prod.yaml's own services (the model catalogue left out: its reservations are
    sized for prod's 4-vCPU workers, not for sandbox hosts) with every image swapped for the
    local one, kept running: the sandbox has no registry, and `pulumi up` waits until every
    task runs. The catalogue's path through the program is deployed by test_gpu.py."""
    document = yaml.safe_load(reference_stack_text())
    for service in document["services"].values():
        service["image"] = DEFAULT_IMAGE
        service["command"] = ["sleep", "86400"]
    path = directory / "prod-sandbox.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="session", autouse=True)
def sandbox_prerequisites() -> None:
    """Fail loudly, never skip silently: a CI machine without root or packages must not
    pass this suite by running nothing. SWARM_SANDBOX=skip opts out explicitly."""
    if os.environ.get("SWARM_SANDBOX") == "skip":
        pytest.skip("SWARM_SANDBOX=skip: swarm sandbox tests skipped on request")
    problems = missing_prerequisites()
    if problems:
        pytest.fail("swarm sandbox prerequisites missing:\n  - " + "\n  - ".join(problems)
                    + "\nRun `.ci/sandbox-prereqs.sh` and the tests as root, or set "
                      "SWARM_SANDBOX=skip to skip these tests explicitly.", pytrace=False)


@pytest.fixture(scope="session")
def sandbox_workdir() -> Path:
    """On a real disk (dockerd data lives here); keeps the SSH key and image across runs."""
    return Path(os.environ.get("SWARM_SANDBOX_WORKDIR", "/var/tmp/swarm-sandbox"))


@pytest.fixture(scope="session")
def timings() -> dict[str, float]:
    """Record `{what: seconds}`; printed in the terminal summary."""
    return TIMINGS


@pytest.fixture(scope="session")
def sandbox_five(sandbox_workdir: Path, timings: dict[str, float]) -> Iterator[Sandbox]:
    """The reference five hosts with the local busybox image loaded. Shared by the session:
    a test that changes hosts (swarm membership, destroyed hosts) restores them."""
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "five") as sandbox:
        sandbox.add_hosts(REFERENCE_HOSTS)
        timings["sandbox: 5 hosts up (dockerd + sshd answer)"] = time.monotonic() - started
        sandbox.load_image()
        timings["sandbox: 5 hosts up, image loaded"] = time.monotonic() - started
        yield sandbox
        started = time.monotonic()
    timings["sandbox: teardown of 5 hosts"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("swarm sandbox timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.2f} s  {what}")
