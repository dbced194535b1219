"""The day-2 scripts (swarm/node_scripts/day2.py) run for real against a stand-in `docker` CLI
(fake_swarm_docker.py): retirement (waiting for moved tasks, giving up before removal, down
nodes, one at a time) and the drain and return around a daemon restart."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from swarm.node_scripts import day2
from tests.unit.stand_in_docker import install_fake, run


def test_retire_drains_then_removes():
    script = day2.retire_script("n0d3", "ml")
    drain = script.index("--availability drain")
    remove = script.index("docker node rm --force")
    assert drain < remove


# ---- retirement -------------------------------------------------------------------------------

def task(task_id, node, state="running", desired="running", service="s-api", err=""):
    return {"id": task_id, "service": service, "node": node, "state": state, "desired": desired, "err": err}


BEFORE = [task("t1", "n1"), task("t2", "n2"), task("t3", "n3"), task("g2", "n2", service="s-agent")]
SERVICES = {"s-api": {"name": "prod_api", "replicas": 3}, "s-agent": {"name": "prod_agent", "replicas": None}}


def nodes(**states) -> dict:
    hostnames = {"n1": "prod-ml-1", "n2": "prod-ml-2", "n3": "prod-ml-3", "n4": "prod-ml-2"}
    return {node: {"hostname": hostnames[node], "availability": "active", "state": states.get(node, "ready"),
                   "role": "worker"} for node in hostnames}


def swarm_calls(tmp_path: Path) -> list[tuple[float, str]]:
    lines = (tmp_path / "fake" / "calls").read_text().splitlines()
    return [(float(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in lines]


def first(calls, prefix) -> float:
    return next(at for at, call in calls if call.startswith(prefix))


def retire(tmp_path, env, node="n2", **options) -> tuple[subprocess.CompletedProcess, float]:
    options = {"timeout_seconds": 30, "unplaceable_seconds": 2, "lock_dir": str(tmp_path / "locks"), **options}
    started = time.monotonic()
    result = run(day2.retire_script(node, "ml", **options), env)
    return result, time.monotonic() - started


def test_retirement_waits_until_the_moved_task_runs_on_another_node(tmp_path):
    # The moved task starts at once on n4, a successor droplet under the same hostname as n2,
    # and turns running (healthy) 2 s after the drain. The global service's task never moves.
    moving = [task("t1", "n1"), task("t2", "n2", "shutdown", "shutdown"), task("t3", "n3"),
              task("g2", "n2", "shutdown", "shutdown", service="s-agent")]
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": nodes(), "services": SERVICES, "tasks": BEFORE,
        "phases": {"n2": [{"at": 0, "tasks": [*moving, task("t4", "n4", "starting")]},
                          {"at": 2, "tasks": [*moving, task("t4", "n4")]}]},
    })
    result, _ = retire(tmp_path, env)
    assert result.returncode == 0, result.stderr
    calls = swarm_calls(tmp_path)
    drained, removed = first(calls, "node update --availability drain n2"), first(calls, "node rm --force n2")
    assert removed - drained >= 2
    assert "retired prod-ml-2 (n2)" in result.stdout
    assert not [call for _, call in calls if call.startswith("service inspect") and "s-agent" in call and "Name" in call]


def test_tasks_that_cannot_run_elsewhere_fail_retirement_before_removal(tmp_path):
    after = [task("t1", "n1"), task("t2", "n2", "shutdown", "shutdown"), task("t3", "n3"),
             task("t4", "", "pending", err="no suitable node (max replicas per node limit exceed)")]
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": nodes(), "services": SERVICES, "tasks": BEFORE, "phases": {"n2": [{"at": 0, "tasks": after}]},
    })
    result, seconds = retire(tmp_path, env)
    assert result.returncode == 1
    assert seconds < 15  # gave up after unplaceable_seconds, not the 30 s timeout
    lines = result.stderr.splitlines()
    assert lines[0].startswith("cannot retire prod-ml-2 (n2): its tasks do not all run on other nodes after ")
    assert lines[0].endswith("it stays in the swarm (availability back to active):")
    assert lines[1:] == ["  prod_api: 2 of 3 tasks running on other nodes",
                         "    task error: no suitable node (max replicas per node limit exceed)"]
    calls = [call for _, call in swarm_calls(tmp_path)]
    assert not [call for call in calls if call.startswith("node rm")]
    assert "node update --availability active n2" in calls  # the drain is undone


def test_a_down_node_is_removed_even_when_its_tasks_cannot_move(tmp_path):
    after = [task("t1", "n1"), task("t3", "n3"), task("t4", "", "pending", err="no suitable node")]
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": nodes(n2="down"), "services": SERVICES, "tasks": BEFORE, "phases": {"n2": [{"at": 0, "tasks": after}]},
    })
    result, _ = retire(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "warning: prod-ml-2 (n2) is down" in result.stderr
    assert "prod_api: 2 of 3 tasks running on other nodes" in result.stderr
    assert "node rm --force n2" in [call for _, call in swarm_calls(tmp_path)]


def test_a_daemon_restart_drains_the_node_keeps_its_slot_and_gives_it_back_once_restarted(tmp_path):
    moving = [task("t1", "n1"), task("t2", "n2", "shutdown", "shutdown"), task("t3", "n3")]
    node_list = nodes()
    node_list["n2"].update(restarted_label="d1g35t", restart_after=2)
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": node_list, "services": SERVICES, "tasks": BEFORE,
        "phases": {"n2": [{"at": 0, "tasks": [*moving, task("t4", "n4", "starting")]},
                          {"at": 1, "tasks": [*moving, task("t4", "n4")]}]},
    })
    locks = tmp_path / "locks"
    drained = run(day2.daemon_drain_script("n2", "ml", "d1g35t", 30, 2, lock_dir=str(locks)), env)
    assert drained.returncode == 0, drained.stderr
    assert "drained prod-ml-2 (n2) for its Docker restart" in drained.stdout
    (slot,) = locks.iterdir()  # held for the node's restart, by a placeholder process
    holder = int((slot / "owner").read_text().split()[1])
    os.kill(holder, 0)
    # (the node's own command restarts Docker here: the fake reports the new label 2 s after the drain)
    back = run(day2.daemon_return_script("n2", "ml", "d1g35t", 30, lock_dir=str(locks)), env)
    assert back.returncode == 0, back.stderr
    calls = swarm_calls(tmp_path)
    assert first(calls, "node update --availability active n2") - first(calls, "node update --availability drain n2") >= 2
    assert not [call for _, call in calls if call.startswith(("node rm", "node demote"))]
    assert not list(locks.iterdir())  # the slot is free
    time.sleep(0.2)  # the placeholder is gone (or a zombie nobody reaped yet)
    stat_file = Path(f"/proc/{holder}/stat")
    assert not stat_file.exists() or stat_file.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_node_that_was_not_drained_is_left_alone_on_return(tmp_path):
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": nodes(), "services": SERVICES, "tasks": BEFORE})
    result = run(day2.daemon_return_script("n2", "ml", "", 30, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    assert "not drained" in result.stdout
    assert not [call for _, call in swarm_calls(tmp_path) if not call.startswith("node inspect")]


def test_a_node_left_drained_without_a_slot_gets_its_availability_back_on_return(tmp_path):
    # issue 20: the run that drained it was cut off before its return, and another drain took
    # its stale slot over: the return finds no slot of its own and the node drained.
    node_list = nodes()
    node_list["n2"]["availability"] = "drain"
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": node_list, "services": SERVICES, "tasks": BEFORE})
    result = run(day2.daemon_return_script("n2", "ml", "", 30, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    assert "left drain by an interrupted run: availability back to active" in result.stdout
    assert "node update --availability active n2" in [call for _, call in swarm_calls(tmp_path)]


@pytest.mark.parametrize("mode", ["retire", "restart"])
def test_a_node_holding_two_tasks_of_a_service_is_paused_and_they_move_off_one_at_a_time_before_the_drain(tmp_path, mode):
    # n3 was replaced (or restarted) earlier and came back empty: n2 holds two of api's tasks, and
    # draining it at once would stop both. The forced rolling update moves them off first.
    piled = [task("t1", "n1"), task("t2", "n2"), task("t3", "n2")]
    spread = [task("t1", "n1"), task("t4", "n3"), task("t5", "n1")]
    node_list = nodes()
    node_list["n2"].update(restarted_label="d1g35t", restart_after=1)
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": node_list, "services": SERVICES, "tasks": piled, "spread": {"s-api": spread},
    })
    script = (day2.retire_script("n2", "ml", 30, 2, lock_dir=str(tmp_path / "locks")) if mode == "retire"
              else day2.daemon_drain_script("n2", "ml", "d1g35t", 30, 2, lock_dir=str(tmp_path / "locks")))
    result = run(script, env)
    assert result.returncode == 0, result.stderr
    assert "prod_api has 2 tasks on prod-ml-2: moving them off one at a time before it is drained" in result.stderr
    calls = swarm_calls(tmp_path)
    paused = first(calls, "node update --availability pause n2")
    updated = first(calls, "service update --force --detach=false --quiet s-api")
    assert paused <= updated <= first(calls, "node update --availability drain n2")


def test_a_node_holding_one_task_per_service_is_drained_without_a_forced_update(tmp_path):
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": nodes(), "services": SERVICES, "tasks": BEFORE,
        "phases": {"n2": [{"at": 0, "tasks": [task("t1", "n1"), task("t3", "n3"), task("t4", "n4")]}]},
    })
    result, _ = retire(tmp_path, env)
    assert result.returncode == 0, result.stderr
    calls = [call for _, call in swarm_calls(tmp_path)]
    assert not [call for call in calls if call.startswith("service update") or "--availability pause" in call]


def test_a_node_already_running_the_daemon_settings_is_not_drained(tmp_path):
    node_list = nodes()
    node_list["n2"]["engine_label"] = "d1g35t"
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json",
                       {"nodes": node_list, "services": SERVICES, "tasks": BEFORE})
    result = run(day2.daemon_drain_script("n2", "ml", "d1g35t", 30, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    assert not [call for _, call in swarm_calls(tmp_path) if call.startswith("node update")]


def test_a_daemon_restart_lets_a_task_pinned_to_the_node_stop_instead_of_failing(tmp_path):
    # The database cannot run anywhere else: after unplaceable_seconds the restart goes ahead.
    after = [task("t1", "n1"), task("t2", "n2", "shutdown", "shutdown"), task("t3", "n3"),
             task("t4", "", "pending", err="no suitable node (scheduling constraints not satisfied on 3 nodes)")]
    node_list = nodes()
    node_list["n2"].update(restarted_label="d1g35t", restart_after=3)
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": node_list, "services": SERVICES, "tasks": BEFORE, "phases": {"n2": [{"at": 0, "tasks": after}]},
    })
    result = run(day2.daemon_drain_script("n2", "ml", "d1g35t", 30, 1, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    assert "tasks that no other node can take stop while prod-ml-2 restarts Docker" in result.stderr
    assert "drained prod-ml-2 (n2) for its Docker restart" in result.stdout
    assert "node update --availability active n2" not in [call for _, call in swarm_calls(tmp_path)]


def test_a_node_no_longer_in_the_swarm_is_nothing_to_retire(tmp_path):
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": {}, "services": {}, "tasks": []})
    result, _ = retire(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert [call for _, call in swarm_calls(tmp_path)] == ["node inspect n2"]


def retire_in_parallel(tmp_path, retired: tuple[str, ...], *, together: bool = False, **options) -> list[tuple[float, float]]:
    """Retire `retired` at once (Pulumi deletes in parallel), each one's task taking 1.5 s to run
    elsewhere (`together`: both tasks move after either drain); the (drain, removal) time
    windows, in order."""
    def moved(gone):
        kept = [t for t in BEFORE if t["node"] not in gone and t["service"] == "s-api"]
        return [*kept, *(task(f"m{node}", "n1") for node in gone)]
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": nodes(), "services": SERVICES, "tasks": BEFORE,
        "phases": {"n2": [{"at": 1.5, "tasks": moved({"n2", "n3"} if together else {"n2"})}],
                   "n3": [{"at": 1.5, "tasks": moved({"n2", "n3"})}]},
    })
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, retire(tmp_path, env, node=n, **options)[0]))
               for n in retired]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results.values()), {n: r.stderr for n, r in results.items()}
    calls = swarm_calls(tmp_path)
    return sorted((first(calls, f"node update --availability drain {n}"), first(calls, f"node rm --force {n}"))
                  for n in retired)


def test_nodes_of_a_pool_retire_one_at_a_time(tmp_path):
    windows = retire_in_parallel(tmp_path, ("n2", "n3"))
    assert windows[0][1] <= windows[1][0]  # the second drain after the first removal
    assert not list((tmp_path / "locks").iterdir())  # released


def test_a_pool_with_max_unavailable_two_retires_two_nodes_at_once(tmp_path):
    windows = retire_in_parallel(tmp_path, ("n2", "n3"), together=True, max_unavailable=2)
    assert windows[1][0] < windows[0][1]  # the second drain before the first removal
    assert not list((tmp_path / "locks").iterdir())


def test_a_stale_lock_is_taken_over(tmp_path):
    lock = tmp_path / "locks" / "ml.lock.1"
    lock.mkdir(parents=True)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    (lock / "owner").write_text(f"n9 {dead} {int(time.time())}\n")
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": nodes(), "services": {}, "tasks": []})
    result, seconds = retire(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "taking over a stale retirement lock (n9 " in result.stderr
    assert seconds < 10


def test_a_retirement_that_waited_for_a_killed_runs_retirement_of_the_same_node_succeeds_when_that_one_removed_it(tmp_path):
    # Issue 20, item 7 (seen on the sandbox: a deploy killed mid-retirement, then `up` again):
    # the killed run's retire.sh goes on on the manager without its SSH session, holding the
    # slot; it removes the node, then releases the slot. The next run's retirement, which waited
    # for the slot, found no node and failed (`docker node inspect`), failing the `up`.
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json",
                       {"nodes": nodes(), "services": SERVICES, "tasks": BEFORE})
    lock = tmp_path / "locks" / "ml.lock.1"
    lock.mkdir(parents=True)
    state = tmp_path / "fake" / "swarm.json"
    # The other retirement, alive: it removes n2 from the swarm, then releases its slot.
    holder = subprocess.Popen(["python3", "-c", (
        "import json, pathlib, shutil, sys, time; time.sleep(3); p = pathlib.Path(sys.argv[1]); "
        "s = json.loads(p.read_text()); s['nodes'].pop('n2'); p.write_text(json.dumps(s)); "
        "shutil.rmtree(sys.argv[2])"), str(state), str(lock)])
    (lock / "owner").write_text(f"n2 {holder.pid} {int(time.time())}\n")
    try:
        result, _ = retire(tmp_path, env)
    finally:
        holder.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "left the swarm while this waited for a slot" in result.stdout
    calls = [call for _, call in swarm_calls(tmp_path)]
    assert not [call for call in calls if call.startswith(("node update", "node rm"))]
    assert not list((tmp_path / "locks").iterdir())  # released


def test_a_node_left_drained_by_an_interrupted_run_gets_the_configured_availability_back(tmp_path):
    # issue 20: a drain cut off half-way (SSH drop, cancelled deploy) left the node drained; the
    # next run must not take that for the node's own availability and keep it forever.
    moving = [task("t1", "n1"), task("t2", "n2", "shutdown", "shutdown"), task("t3", "n3")]
    node_list = nodes()
    node_list["n2"].update(availability="drain", restarted_label="d1g35t", restart_after=2)
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {
        "nodes": node_list, "services": SERVICES, "tasks": BEFORE,
        "phases": {"n2": [{"at": 0, "tasks": [*moving, task("t4", "n4")]}]},
    })
    locks = tmp_path / "locks"
    drained = run(day2.daemon_drain_script("n2", "ml", "d1g35t", 30, 2, lock_dir=str(locks)), env)
    assert drained.returncode == 0, drained.stderr
    back = run(day2.daemon_return_script("n2", "ml", "d1g35t", 30, lock_dir=str(locks)), env)
    assert back.returncode == 0, back.stderr
    assert "availability active" in back.stdout
    assert "node update --availability active n2" in [call for _, call in swarm_calls(tmp_path)]


# ---- managers: leadership moves before a leader's Docker restarts (issue 20) ------------------

def managers(leader="n1", reachable=("n2", "n3")) -> dict:
    """Three managers n1..n3 (n1 leads) and a worker n4; `reachable` lists the others that answer."""
    node_list = {node: {"hostname": f"prod-control-{node[1]}", "availability": "active", "state": "ready",
                        "role": "manager", "manager": "Reachable" if node in reachable else ""}
                 for node in ("n1", "n2", "n3")}
    node_list[leader]["manager"] = "Leader"
    node_list["n4"] = {"hostname": "prod-ml-1", "availability": "active", "state": "ready", "role": "worker"}
    for node in ("n1", "n2", "n3"):
        node_list[node].update(restarted_label="d1g35t", restart_after=1)
    return node_list


def restart_manager(tmp_path, node_list, node="n1"):
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json",
                       {"nodes": node_list, "services": {}, "tasks": []})
    locks = tmp_path / "locks"
    drained = run(day2.daemon_drain_script(node, "all.managers", "d1g35t", 30, 2, lock_dir=str(locks)), env)
    assert drained.returncode == 0, drained.stderr
    back = run(day2.daemon_return_script(node, "all.managers", "d1g35t", 30, lock_dir=str(locks), role="manager"), env)
    assert back.returncode == 0, back.stderr
    return drained, back, [call for _, call in swarm_calls(tmp_path)]


def test_a_leading_manager_hands_leadership_over_and_restarts_as_a_follower(tmp_path):
    # Demoted (leadership moves while it is up), promoted again before its Docker restarts.
    drained, back, calls = restart_manager(tmp_path, managers())
    assert "leads the swarm: demoting it" in drained.stderr
    assert "is a follower now" in drained.stderr
    order = [call for call in calls if call.startswith(("node update --availability", "node demote", "node promote"))]
    assert order == ["node update --availability drain n1", "node demote n1",
                     "node promote n1", "node update --availability active n1"]
    assert "manager again" not in back.stdout  # nothing left to give back but the availability
    assert not list((tmp_path / "locks").iterdir())


def test_a_manager_that_does_not_lead_restarts_without_a_demotion(tmp_path):
    _, _, calls = restart_manager(tmp_path, managers(leader="n2", reachable=("n1", "n3")))
    assert not [call for call in calls if call.startswith(("node demote", "node promote"))]


def test_a_leader_with_one_other_reachable_manager_is_not_demoted(tmp_path):
    # Demoting it would leave a raft of one manager, whose loss is the swarm's.
    _, _, calls = restart_manager(tmp_path, managers(reachable=("n2",)))
    assert not [call for call in calls if call.startswith(("node demote", "node promote"))]


def test_a_manager_left_demoted_by_a_killed_run_is_promoted_on_the_next_return(tmp_path):
    # The run was killed after the drain demoted the leader and its Docker restarted, before its
    # return: its slot went stale and was taken over. The role comes from the configuration.
    node_list = managers(leader="n2", reachable=("n3",))
    node_list["n1"].update(role="worker", manager="")
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": node_list, "services": {}, "tasks": []})
    back = run(day2.daemon_return_script("n1", "all.managers", "d1g35t", 30, lock_dir=str(tmp_path / "locks"),
                                         role="manager"), env)
    assert back.returncode == 0, back.stderr
    assert "node promote n1" in [call for _, call in swarm_calls(tmp_path)]
    assert "node n1 is a manager again" in back.stdout


def test_a_retired_leader_is_demoted_and_out_of_the_raft_before_its_removal(tmp_path):
    node_list = managers()
    env = install_fake(tmp_path, "fake_swarm_docker.py", "swarm.json", {"nodes": node_list, "services": {}, "tasks": []})
    result = run(day2.retire_script("n1", "all.managers", 30, 2, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    calls = [call for _, call in swarm_calls(tmp_path)]
    demoted, removed = calls.index("node demote n1"), calls.index("node rm --force n1")
    assert [call for call in calls[demoted:removed] if call.startswith("node ls")]  # waited for a new leader
