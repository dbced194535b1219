"""The swarm state is copied with Docker and its socket stopped (issue 20, "raft copies are
consistent"): on a droplet docker.socket stays active when only docker.service stops, and the
first client to connect during the copy (a cron job, an agent) starts Docker again, so the copy
of /var/lib/docker/swarm is taken from a running raft store. One sandbox host of its own (prefix
swraft) with socket activation modelled (tests/sandbox/harness_host.py, _DOCKER_CLIENT) and a
client calling Docker in a loop while the lone manager's handover copies its state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from swarm.node_scripts import swarm_cluster
from tests.sandbox.harness import Host, Sandbox

PREFIX, SUBNET = "swraft", "10.233.163.0/24"
STATE_DIR = "/mnt/swarm-state"
# A client every 50 ms, as a busy node has them (the scheduler's tick, an agent, an operator).
CLIENT_LOOP = "while :; do docker version >/dev/null 2>&1; sleep 0.05; done"


@pytest.fixture(scope="module")
def manager(sandbox_workdir, timings) -> Iterator[Host]:
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "raft", subnet=SUBNET, prefix=PREFIX) as sandbox:
        host = sandbox.add_host("raft-manager-1")
        host.ssh(swarm_cluster.init_script(host.ip))
        # 40 MB that cannot be compressed: the copy takes long enough for the client to call in.
        host.exec("head -c 40000000 /dev/urandom >/var/lib/docker/swarm/padding && touch /run/docker.socket-activation")
        timings["raft copy: 1 host up, swarm formed"] = time.monotonic() - started
        yield host


def activations(host: Host) -> list[str]:
    return host.exec("cat /run/docker.socket-activations 2>/dev/null || true").stdout.split()


def with_clients(host: Host, command: str) -> str:
    """Run `command` over SSH while a client calls Docker in a loop on the host; its stdout."""
    loop = host.ssh(f"setsid sh -c '{CLIENT_LOOP}' </dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
    try:
        return host.ssh(command, timeout=120).stdout
    finally:
        host.ssh(f"kill {loop}", check=False)


def test_the_sandbox_models_socket_activation_a_stopped_service_alone_is_started_again_by_a_client(manager):
    # What the scripts did before: only docker.service stopped, for as long as a copy takes.
    before = len(activations(manager))
    with_clients(manager, "systemctl stop docker && sleep 2 && systemctl start docker")
    assert len(activations(manager)) > before, "a client started Docker while its service was stopped"


def test_the_lone_managers_handover_copies_its_state_with_no_client_starting_docker_mid_copy(manager):
    manager.exec("rm -f /run/docker.socket-activations")
    out = with_clients(manager, swarm_cluster.handover_script(STATE_DIR))
    assert "kept the swarm state" in out
    assert activations(manager) == [], "Docker was started by a client during the copy"
    kept = int(manager.exec(f"stat -c %s {STATE_DIR}/{swarm_cluster.SWARM_STATE_BACKUP}").stdout)
    assert kept > 40_000_000  # the padding is in the copy, whole
    assert manager.ssh("systemctl is-active docker.socket").stdout.strip() == "active"
    assert manager.docker("info", "--format", "{{.Swarm.ControlAvailable}}").stdout.strip() == "true"
