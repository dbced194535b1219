"""Retiring a node (swarm.node_scripts.day2.retire_script) on a real swarm: four sandbox hosts of their own
(prefix swret), a manager and three `type=app` workers, formed with the program's own scripts.

What must hold (issue 11, retirement):
- retirement returns only once the drained node's tasks run on other nodes, healthy where the
  service has a healthcheck (here one that takes 6 s);
- a task that cannot be placed elsewhere fails retirement before `docker node rm`, naming the
  service and swarm's reason, and the node is kept (and active again);
- a node holding several tasks of one service (Docker never rebalances) is emptied one task at a
  time, never all of them at once;
- a node whose host is gone (Down) is removed without wedging.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from swarm.node_scripts import day2, swarm_cluster
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox, wait_for

PREFIX, SUBNET = "swret", "10.233.141.0/24"
MANAGER = "ret-manager-1"
WORKERS = ("ret-app-1", "ret-app-2", "ret-app-3")
HEALTHY_AFTER = 6  # seconds until the slow service's healthcheck passes


@pytest.fixture(scope="module")
def swarm(sandbox_workdir, timings):
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "retire", subnet=SUBNET, prefix=PREFIX) as sandbox:
        manager, *workers = sandbox.add_hosts([MANAGER, *WORKERS])
        sandbox.load_image()
        manager.ssh(swarm_cluster.init_script(manager.ip))
        tokens = json.loads(manager.ssh(swarm_cluster.join_tokens_script()).stdout)
        for worker in workers:
            node_id = worker.ssh(swarm_cluster.join_script(worker.ip, manager.ip), stdin=tokens["worker"] + "\n").stdout.strip()
            manager.ssh(swarm_cluster.node_settings_script(node_id, "worker", {"type": "app"}))
        timings["retire: 4 hosts up, swarm formed"] = time.monotonic() - started
        yield sandbox


def service(manager, name: str, *options: str, command: str = "exec sleep 86400") -> None:
    manager.docker("service", "create", "--detach", "--name", name, "--no-resolve-image", "--stop-grace-period", "1s",
                   *options, DEFAULT_IMAGE, "sh", "-c", command)


def tasks(manager, name: str) -> list[dict]:
    """The service's tasks desired running, as `docker inspect` shows them."""
    ids = manager.docker("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", name).stdout.split()
    return json.loads(manager.docker("inspect", "--type", "task", *ids).stdout) if ids else []


def running(manager, name: str, replicas: int) -> list[dict] | None:
    current = tasks(manager, name)
    states = [task["Status"]["State"] for task in current]
    return current if states == ["running"] * replicas else None


def node_id(manager, hostname: str) -> str:
    return manager.docker("node", "inspect", "--format", "{{.ID}}", hostname).stdout.strip()


def node_ids(manager) -> list[str]:
    return manager.docker("node", "ls", "-q").stdout.split()


def test_retirement_returns_once_the_moved_task_runs_healthy_elsewhere(swarm, timings):
    manager = swarm.hosts[MANAGER]
    service(manager, "slow", "--replicas", "3", "--constraint", "node.labels.type==app",
            "--health-cmd", "test -f /healthy", "--health-interval", "1s", "--health-retries", "1",
            "--health-start-period", "60s",
            command=f"sleep {HEALTHY_AFTER}; touch /healthy; exec sleep 86400")
    before = wait_for(lambda: running(manager, "slow", 3), "slow: 3 healthy tasks", timeout=90)
    retired = node_id(manager, "ret-app-3")
    assert retired in {task["NodeID"] for task in before}  # one task per node: one must move

    started = time.monotonic()
    result = manager.ssh(day2.retire_script(retired, "app", timeout_seconds=120))
    seconds = time.monotonic() - started
    after = tasks(manager, "slow")  # at once: no waiting of our own

    timings["retire: drain until the moved task is healthy elsewhere (6 s healthcheck)"] = seconds
    assert [task["Status"]["State"] for task in after] == ["running"] * 3
    assert retired not in {task["NodeID"] for task in after}
    (moved,) = [task for task in after if task["ID"] not in {t["ID"] for t in before}]
    host = swarm.hosts[manager.docker("node", "inspect", "--format", "{{.Description.Hostname}}", moved["NodeID"]).stdout.strip()]
    container = moved["Status"]["ContainerStatus"]["ContainerID"]
    assert host.docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip() == "healthy"
    assert seconds >= HEALTHY_AFTER - 1  # the old script returned in about 2 s, task still starting
    assert f"retired ret-app-3 ({retired})" in result.stdout
    assert retired not in node_ids(manager)
    assert manager.ssh(f"test ! -e {day2.RETIRE_LOCK_DIR}/app.lock.1", check=False).returncode == 0


def test_a_node_holding_every_task_of_a_service_hands_them_over_one_at_a_time(swarm, sandbox_workdir, timings):
    """The pile-up Docker leaves after a node came back or joined late: all three tasks on the
    newest node. A plain drain would stop all three at once (0 of 3 for as long as the healthcheck
    takes); retirement must keep at least 2 of 3 running throughout."""
    manager = swarm.hosts[MANAGER]
    newest = swarm.add_host("ret-app-4")
    tokens = json.loads(manager.ssh(swarm_cluster.join_tokens_script()).stdout)
    joined = newest.ssh(swarm_cluster.join_script(newest.ip, manager.ip), stdin=tokens["worker"] + "\n").stdout.strip()
    manager.ssh(swarm_cluster.node_settings_script(joined, "worker", {"type": "app"}))
    others = ("ret-app-1", "ret-app-2")
    for hostname in others:  # only the newest node takes new tasks while the service starts
        manager.docker("node", "update", "--availability", "pause", hostname)
    service(manager, "piled", "--replicas", "3", "--constraint", "node.labels.type==app",
            "--health-cmd", "test -f /healthy", "--health-interval", "1s", "--health-retries", "1",
            "--health-start-period", "60s", "--update-monitor", "1s",
            command="sleep 3; touch /healthy; exec sleep 86400")
    before = wait_for(lambda: running(manager, "piled", 3), "piled: 3 healthy tasks", timeout=90)
    assert {task["NodeID"] for task in before} == {joined}
    for hostname in others:
        manager.docker("node", "update", "--availability", "active", hostname)

    lowest, stop = [3], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            states = [task["Status"]["State"] for task in tasks(manager, "piled")]
            lowest.append(states.count("running"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        result = manager.ssh(day2.retire_script(joined, "app", timeout_seconds=120))
    finally:
        stop.set()
        watcher.join(timeout=30)
    timings["retire: a node holding all 3 tasks of a service, handed over one at a time"] = time.monotonic() - started

    assert min(lowest) >= 2, f"running tasks sampled during retirement: {lowest}"
    assert "piled has 3 tasks on ret-app-4: moving them off one at a time before it is drained" in result.stderr
    assert len(lowest) > 10, "the watcher sampled the whole retirement"
    after = tasks(manager, "piled")
    assert [task["Status"]["State"] for task in after] == ["running"] * 3
    assert joined not in {task["NodeID"] for task in after} and joined not in node_ids(manager)
    swarm.destroy_host("ret-app-4")
    manager.docker("service", "rm", "piled")


def test_a_task_that_cannot_run_elsewhere_stops_retirement_before_removal(swarm):
    manager = swarm.hosts[MANAGER]
    service(manager, "pinned", "--replicas", "1", "--constraint", "node.hostname==ret-app-2")
    wait_for(lambda: running(manager, "pinned", 1), "pinned: 1 task", timeout=60)
    kept = node_id(manager, "ret-app-2")

    result = manager.ssh(day2.retire_script(kept, "app", timeout_seconds=120, unplaceable_seconds=5), check=False)
    assert result.returncode == 1, result.stdout
    # (slow's tasks may sit two on ret-app-2 since a node left: they are moved off first, and say so)
    lines = result.stderr.splitlines()
    (verdict,) = [line for line in lines if line.startswith("cannot retire")]
    assert verdict.startswith(f"cannot retire ret-app-2 ({kept}): its tasks do not all run on other nodes after ")
    assert "  pinned: 0 of 1 tasks running on other nodes" in lines
    assert any(line.startswith("    task error: no suitable node") for line in lines), lines
    assert kept in node_ids(manager)
    assert manager.docker("node", "inspect", "--format", "{{.Spec.Availability}}", kept).stdout.strip() == "active"
    (task,) = wait_for(lambda: running(manager, "pinned", 1), "pinned back on ret-app-2", timeout=60)
    assert task["NodeID"] == kept


def test_a_node_whose_host_is_gone_is_removed_without_wedging(swarm):
    manager = swarm.hosts[MANAGER]
    gone = node_id(manager, "ret-app-2")
    swarm.destroy_host("ret-app-2")  # the droplet is gone: nothing answers at its address
    wait_for(lambda: manager.docker("node", "inspect", "--format", "{{.Status.State}}", gone).stdout.strip() == "down",
             "ret-app-2 down", timeout=90)

    result = manager.ssh(day2.retire_script(gone, "app", timeout_seconds=60, unplaceable_seconds=5))
    assert f"warning: ret-app-2 ({gone}) is down" in result.stderr
    assert "  pinned: 0 of 1 tasks running on other nodes" in result.stderr  # nowhere else to go
    assert gone not in node_ids(manager)
    # the slow service still has its three tasks, on the one worker left
    assert wait_for(lambda: running(manager, "slow", 3), "slow: 3 tasks", timeout=90)
