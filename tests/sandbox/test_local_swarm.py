"""scripts/local-swarm as a user runs it: `up staging` forms the real swarm, an edit to
Pulumi.staging.yaml and the stack file followed by a second `up` shows and applies the change,
and `down` leaves nothing behind. The swarm is read from the manager's own Docker (on its console,
not through the command under test), and the ssh config the command prints is used as printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pulumi_program import PROJECT_ROOT
from tests.sandbox.harness import leftovers, pids_in_namespace

SCRIPT = PROJECT_ROOT / "scripts" / "local-swarm"
PREFIX, SUBNET = "swls", "10.233.93.0/24"
STAGING_NODES = {"staging-manager-1", "staging-backoffice-1", "staging-ml-1"}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the checkout's staging files, for the test to edit."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "Pulumi.staging.yaml", root)
    shutil.copytree(PROJECT_ROOT / "stacks", root / "stacks")
    return root


@pytest.fixture()
def workdir(sandbox_workdir: Path):
    path = sandbox_workdir / "local-swarm-test"
    yield path
    if path.exists() or leftovers(PREFIX):  # the test failed before its own `down`
        subprocess.run([sys.executable, str(SCRIPT), "down", "staging", "--workdir", str(path), "--prefix", PREFIX],
                       capture_output=True, timeout=300)


def local_swarm(command: str, project: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), command, "staging", "--workdir", str(workdir), "--prefix", PREFIX,
         "--subnet", SUBNET, "--project-root", str(project)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"local-swarm {command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def host_init(name: str) -> int:
    """The PID 1 of the sandbox host `name` (its docker-init), found in its network namespace."""
    inode = os.stat(f"/run/netns/{PREFIX}-{name}").st_ino
    for pid in pids_in_namespace("net", inode):
        status = Path(f"/proc/{pid}/status").read_text()
        nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
    raise AssertionError(f"no running host {name}")


def manager(*docker_args: str) -> str:
    """`docker ARGS` on the manager's console (its own socket, no SSH, no local-swarm)."""
    command = ["nsenter", "-t", str(host_init("staging-manager-1")), "-m", "-u", "-n", "-p", "docker", *docker_args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def nodes() -> dict[str, str]:
    lines = manager("node", "ls", "--format", "{{.Hostname}} {{.Status}}/{{.Availability}}").split("\n")
    return dict(line.split() for line in lines if line)


def replicas() -> dict[str, str]:
    lines = manager("service", "ls", "--format", "{{.Name}} {{.Replicas}}").split("\n")
    return dict(line.split() for line in lines if line)


def converged(expected_api: str) -> dict[str, str]:
    """Every service at its count; `up` waited for it, a second look must agree."""
    counts = replicas()
    assert counts["staging_api"] == expected_api, counts
    assert all(count.split("/")[0] == count.split("/")[1] for count in counts.values()), counts
    return counts


def test_up_then_an_edit_and_a_second_up_then_down_form_change_and_remove_the_real_swarm(project, workdir, timings):
    started = time.monotonic()
    first = local_swarm("up", project, workdir)
    timings["local-swarm: up staging (3 hosts, first)"] = time.monotonic() - started

    assert nodes() == {name: "Ready/Active" for name in STAGING_NODES}
    counts = converged("1/1")
    assert {"staging_api", "staging_backoffice", "staging_database", "staging_spacy-en-sm"} <= set(counts)
    assert "docker node ls" in first.stdout and "staging-manager-1" in first.stdout
    assert "swarm-sandbox/busybox" in first.stdout  # it says the images are swapped
    # The way in it prints works as printed: its ssh config, the nodes' host keys pinned.
    ssh = re.search(r"sudo (ssh -F \S+) staging-manager-1", first.stdout)
    assert ssh, first.stdout
    state = subprocess.run([*ssh.group(1).split(), "staging-manager-1",
                            "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'"],
                           capture_output=True, text=True, timeout=60)
    assert state.stdout.split() == ["active", "true"], state.stderr
    api_id = manager("service", "inspect", "--format", "{{.ID}}", "staging_api").strip()

    config = project / "Pulumi.staging.yaml"
    config.write_text(config.read_text().replace("    ml:\n      role: worker\n      count: 1",
                                                 "    ml:\n      role: worker\n      count: 2"))
    stack_file = project / "stacks" / "staging.yaml"
    stack_file.write_text(stack_file.read_text().replace("    deploy:\n      replicas: 1",
                                                         "    deploy:\n      replicas: 2"))
    started = time.monotonic()
    second = local_swarm("up", project, workdir)
    timings["local-swarm: second up (ml 1 -> 2, api 1 -> 2)"] = time.monotonic() - started

    assert re.search(r"\+\s+create\s+Droplet\s+staging-ml-2\b", second.stdout), second.stdout
    assert re.search(r"~\s+update\s+Service\s+staging-api\b", second.stdout), second.stdout
    assert not re.search(r"(replace|delete)\s+Droplet", second.stdout), second.stdout
    assert nodes() == {name: "Ready/Active" for name in STAGING_NODES | {"staging-ml-2"}}
    converged("2/2")
    assert manager("service", "inspect", "--format", "{{.ID}}", "staging_api").strip() == api_id  # updated in place
    running_on = manager("service", "ps", "staging_api", "--filter", "desired-state=running", "--format", "{{.Node}}")
    assert sorted(running_on.split()) == ["staging-ml-1", "staging-ml-2"]
    inits = [host_init(name) for name in STAGING_NODES | {"staging-ml-2"}]

    started = time.monotonic()
    local_swarm("down", project, workdir)
    timings["local-swarm: down staging (4 hosts)"] = time.monotonic() - started

    assert leftovers(PREFIX) == []  # namespaces, links, the FORWARD rule, cgroups
    assert not workdir.exists()
    assert not [pid for pid in inits if Path(f"/proc/{pid}").exists()]
    loops = subprocess.run(["losetup", "-n", "-l", "-O", "BACK-FILE"], capture_output=True, text=True).stdout
    assert str(workdir) not in loops
