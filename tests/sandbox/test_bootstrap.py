"""The program's own bootstrap, run for real: the prod stack forms a labelled swarm on the
reference five sandbox hosts, a second run changes nothing, and a destroyed worker's successor
takes its place cleanly.

The scripts are the program's (taken from the registered inputs, never copied), run in the
order and with the inputs the program's dependency graph gives them (see executing_cloud.py).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.pulumi_program import cluster_config, run_program, unwrap
from tests.sandbox.conftest import REFERENCE_HOSTS, sandbox_stack_file
from tests.sandbox.executing_cloud import SandboxCloud

EXPECTED = {
    "prod-manager-1": ("manager", {"type": "database"}),
    "prod-backoffice-1": ("worker", {"type": "cheap"}),
    "prod-ml-1": ("worker", {"type": "machine-learning"}),
    "prod-ml-2": ("worker", {"type": "machine-learning"}),
    "prod-ml-3": ("worker", {"type": "machine-learning"}),
}


def swarm_nodes(sandbox) -> list[dict]:
    """`docker node ls` on the manager, with each node's role and labels."""
    manager = sandbox.hosts["prod-manager-1"]
    ids = manager.docker("node", "ls", "-q").stdout.split()
    inspected = json.loads(manager.docker("node", "inspect", *ids).stdout)
    return [
        {
            "id": node["ID"],
            "hostname": node["Description"]["Hostname"],
            "state": node["Status"]["State"],
            "role": node["Spec"]["Role"],
            "labels": node["Spec"].get("Labels") or {},
        }
        for node in inspected
    ]


def run_prod(cloud: SandboxCloud, stack_file):
    started = time.monotonic()
    run = run_program("prod", {**cluster_config("prod"), "stackFile": str(stack_file)}, mocks=cloud)
    assert run.error is None, run.error
    return run, time.monotonic() - started


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    """The prod stack file on the local image: `pulumi up` waits until its tasks run."""
    return sandbox_stack_file(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def first_run(sandbox_five, local_stack, timings):
    cloud = SandboxCloud(sandbox_five)  # one cloud for the module: later runs are `pulumi up` again
    run, seconds = run_prod(cloud, local_stack)
    timings["bootstrap: prod stack, 5 hosts, first run"] = seconds
    yield run, cloud
    for host in sandbox_five.hosts.values():  # leave the shared sandbox without a swarm
        host.docker("swarm", "leave", "--force", check=False)


def test_program_forms_the_reference_swarm(sandbox_five, first_run):
    run, cloud = first_run
    nodes = swarm_nodes(sandbox_five)
    assert sorted(n["hostname"] for n in nodes) == sorted(REFERENCE_HOSTS)
    for node in nodes:
        role, labels = EXPECTED[node["hostname"]]
        assert node["state"] == "ready", node
        assert node["role"] == role, node
        assert node["labels"] == labels, node
    exported = {row["name"]: row["nodeId"] for row in run.exports["nodes"]}
    assert exported == {n["hostname"]: n["id"] for n in nodes}


def test_every_script_ran_once_per_node_in_graph_order(first_run):
    _, cloud = first_run
    names = [name for name, _, _ in cloud.executed]
    workers = REFERENCE_HOSTS[1:]
    expected = ["prod-init", "prod-join-tokens", "prod-manager-1-settings"]
    expected += [f"{host}-ready" for host in REFERENCE_HOSTS]
    expected += [f"{host}-{step}" for host in workers for step in ("join", "settings")]
    # the database's bind-mount folder on the only node it may run on; then the convergence check
    expected += ["prod-manager-1-folders", "prod-converge"]
    # each node's daemon drain and return, on the manager: nothing to do on a node booted as it is
    expected += [f"{host}-daemon-{step}" for host in REFERENCE_HOSTS for step in ("drain", "return")]
    assert sorted(names) == sorted(expected)
    assert cloud.skipped == ["prod-manager-1-volume"]  # block storage: see test_volume_mount.py
    # Authorized keys and daemon.json of the tests' shared hosts are the harness's (executing_cloud.py).
    assert sorted(cloud.node_config_skipped) == sorted(f"{h}-{c}" for h in REFERENCE_HOSTS for c in ("access", "daemon"))
    position = {name: index for index, name in enumerate(names)}
    assert position["prod-init"] < position["prod-join-tokens"]
    for host in workers:
        assert position[f"{host}-ready"] < position[f"{host}-join"] < position[f"{host}-settings"]
        assert position["prod-join-tokens"] < position[f"{host}-join"]
    assert position["prod-manager-1-settings"] < position["prod-manager-1-folders"]
    assert [name for name in names if "-daemon-" not in name][-1] == "prod-converge"


def test_join_tokens_never_reach_a_command_line(sandbox_five, first_run):
    run, _ = first_run
    token = sandbox_five.hosts["prod-manager-1"].docker("swarm", "join-token", "-q", "worker").stdout.strip()
    for registration in run.registrations:
        for key in ("create", "delete", "update"):
            assert token not in str(registration.plain(key) or "")


def test_second_run_changes_nothing(sandbox_five, first_run, local_stack, timings):
    before = swarm_nodes(sandbox_five)
    run, seconds = run_prod(first_run[1], local_stack)
    timings["bootstrap: prod stack, 5 hosts, second run (no-op)"] = seconds
    after = swarm_nodes(sandbox_five)
    assert sorted(map(json.dumps, after)) == sorted(map(json.dumps, before))
    first, _ = first_run
    assert run.exports["nodes"] == first.exports["nodes"]


def test_destroyed_worker_is_replaced_and_its_old_node_retired(sandbox_five, first_run, local_stack):
    first, _ = first_run
    old_settings = first.named("prod-ml-2-settings")
    old_id = unwrap(old_settings.inputs["triggers"])[0]

    sandbox_five.destroy_host("prod-ml-2")
    sandbox_five.add_host("prod-ml-2")
    sandbox_five.load_image()
    replaced, _ = run_prod(first_run[1], local_stack)

    new_settings = replaced.named("prod-ml-2-settings")
    new_id = unwrap(new_settings.inputs["triggers"])[0]
    # A changed trigger makes the engine replace the settings command: the old one's delete
    # (its retire script, with the old node ID) runs on the manager.
    assert new_id != old_id
    manager = sandbox_five.hosts["prod-manager-1"]
    manager.ssh(old_settings.plain("delete"))

    nodes = swarm_nodes(sandbox_five)
    assert [n["id"] for n in nodes if n["hostname"] == "prod-ml-2"] == [new_id]
    assert old_id not in {n["id"] for n in nodes}
    (successor,) = [n for n in nodes if n["id"] == new_id]
    assert successor["labels"] == {"type": "machine-learning"} and successor["state"] == "ready"
    assert len(nodes) == 5

    # Retiring again (a retried delete) is harmless.
    manager.ssh(old_settings.plain("delete"))
