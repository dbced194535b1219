"""The node scripts run for real against stand-in `docker` CLIs (fake_node_docker.py,
fake_swarm_docker.py): joining from every swarm state, empty join tokens, quoted labels, and
retirement (waiting for moved tasks, giving up before removal, down nodes, one at a time)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from swarm import day2_scripts, scripts

HERE = Path(__file__).parent


def install_fake(tmp_path: Path, fake: str, state_file: str, state: dict) -> dict:
    """A PATH whose `docker` is `fake`, with `state` in $FAKE/state_file; returns the env."""
    directory = tmp_path / "fake"
    directory.mkdir(exist_ok=True)
    (directory / state_file).write_text(json.dumps(state))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(HERE / fake, bin_dir / "docker")
    (bin_dir / "docker").chmod(0o755)
    return {**os.environ, "FAKE": str(directory), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(script: str, env: dict, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


# ---- join, init, join tokens, settings --------------------------------------------------------

def node_calls(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "fake" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("stuck", ["pending", "error"])
def test_a_node_stuck_pending_or_in_error_is_not_taken_for_joined(tmp_path, stuck):
    # Its remote managers even name the right manager: the old script left it alone.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": stuck, "managers": ["10.110.0.2:2377"], "id": "w0rk3r"})
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert commands.index("swarm leave") < commands.index("swarm join")
    assert result.stdout.strip() == "w0rk3r"


def test_a_joined_node_is_left_alone(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "managers": ["10.110.0.2:2377"], "id": "w0rk3r"})
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def test_a_join_that_does_not_complete_fails(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "join_result": "pending"})
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 1
    assert "swarm state 'pending' after joining 10.110.0.2:2377, not active" in result.stderr


@pytest.mark.parametrize("stuck", ["pending", "error", "locked"])
def test_init_does_not_take_a_stuck_node_for_a_manager_nor_reset_it(tmp_path, stuck):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": stuck})
    result = run(scripts.init_script("10.110.0.2"), env)
    assert result.returncode == 1
    assert f"swarm state '{stuck}' is not a working manager" in result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def test_the_first_managers_successor_joins_the_swarm_the_other_managers_hold(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "control": True, "id": "m1new"})
    peers = "\n10.110.0.3 SWMTKN-1-manager\n"  # one manager empty-handed (not in a swarm), one holding it
    result = run(scripts.init_script("10.110.0.2", "/mnt/db/.swarm-state"), env, stdin=peers)
    assert result.returncode == 0, result.stderr
    swarm_calls = [call for call in node_calls(tmp_path) if call[0] == "swarm"]
    assert swarm_calls == [["swarm", "join", "--advertise-addr", "10.110.0.2", "--listen-addr", "10.110.0.2:2377",
                            "--token", "SWMTKN-1-manager", "10.110.0.3:2377"]]
    assert result.stdout.strip() == "m1new"


def test_the_first_managers_successor_removes_the_node_its_predecessor_left_down(tmp_path):
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "control": True, "id": "m1new", "role": "worker",
        "node_table": [["m1new", host, "Ready", "Leader"], ["m1old", host, "Down"], ["m1older", host, "Ready"],
                       ["m1alive", host, "Ready", "Reachable"], ["c1", "other-host", "Down"]],
    })
    result = run(scripts.init_script("10.110.0.2"), env)
    assert result.returncode == 0, result.stderr
    removed = [call[-1] for call in node_calls(tmp_path) if call[:2] == ["node", "rm"]]
    # Down, or demoted by its handover though the swarm has not noticed its droplet is gone yet;
    # a predecessor still a manager is alive and retires later; another host's node is not its.
    assert removed == ["m1old", "m1older"]
    assert result.stdout.strip() == "m1new"


def test_init_never_starts_a_second_swarm_beside_one_that_refuses_the_join(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "join_result": "pending",
                                                                          "join_fails": True})
    result = run(scripts.init_script("10.110.0.2"), env, stdin="10.110.0.3 SWMTKN-1-a\n10.110.0.4 SWMTKN-1-b\n")
    assert result.returncode == 1
    assert "the managers at 10.110.0.3 10.110.0.4 hold a swarm that refused this node; not initialising" in result.stderr
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert "swarm init" not in commands
    assert commands.count("swarm leave") == 2  # each half-done join cleared before the next


def test_init_starts_a_swarm_when_no_manager_holds_one(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive"})
    result = run(scripts.init_script("10.110.0.2"), env, stdin="")
    assert result.returncode == 0, result.stderr
    assert [" ".join(call[:2]) for call in node_calls(tmp_path) if call[0] == "swarm"] == ["swarm init"]


def test_a_joined_node_waits_for_a_new_manager_to_reach_its_list_rather_than_leave(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "id": "w0rk3r",
        "managers_seen": [["10.110.0.3:2377"], ["10.110.0.3:2377"], ["10.110.0.3:2377", "10.110.0.2:2377"]],
    })
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2", ["10.110.0.3"], manager_wait_seconds=20), env,
                 stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def test_a_node_that_knows_none_of_todays_managers_leaves_at_once_to_rejoin(tmp_path):
    # A lone manager restored on a successor: the node's only manager address is dead.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "managers": ["10.9.9.9:2377"], "id": "w0rk3r"})
    started = time.monotonic()
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2", ["10.110.0.3"], manager_wait_seconds=30), env,
                 stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10  # no waiting for a manager it will never hear of
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert commands.index("swarm leave") < commands.index("swarm join")
    assert "does not know the manager 10.110.0.2:2377" in result.stderr


def test_a_node_of_todays_swarm_leaves_only_when_the_new_manager_never_shows(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "managers": ["10.110.0.3:2377"], "id": "w0rk3r"})
    started = time.monotonic()
    result = run(scripts.join_script("10.110.0.5", "10.110.0.2", ["10.110.0.3"], manager_wait_seconds=2), env,
                 stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2
    assert "swarm leave" in [" ".join(call[:2]) for call in node_calls(tmp_path)]


@pytest.mark.parametrize(("local", "control", "printed"), [
    ("active", True, "10.110.0.9 SWMTKN-1-m\n"),
    ("active", False, ""),  # a worker has no manager token to give
    ("inactive", False, ""),
])
def test_the_manager_probe_hands_over_a_token_only_from_a_manager(tmp_path, local, control, printed):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": local, "control": control, "tokens": {"manager": "SWMTKN-1-m"}})
    result = run(scripts.manager_probe_script(), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed


def test_one_of_several_managers_demotes_itself_before_its_droplet_goes(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "control": True, "managers_count": 3, "id": "m1old"})
    result = run(scripts.handover_script(None), env)
    assert result.returncode == 0, result.stderr
    assert ["node", "demote", "m1old"] in node_calls(tmp_path)
    assert "handed over to the other 2 managers (demoted)" in result.stdout
    assert not [call for call in node_calls(tmp_path) if "stop" in call]  # no backup: the others hold the state


def test_a_first_manager_of_several_lists_the_others_on_its_volume_before_demoting(tmp_path):
    state_dir = tmp_path / "mnt" / ".swarm-state"
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "control": True, "managers_count": 3, "id": "m1old", "tokens": {"manager": "SWMTKN-1-m"},
        "other_managers": {"c1": "10.110.0.3:2377", "c2": "10.110.0.4:2377"},
    })
    result = run(scripts.handover_script(str(state_dir)), env)
    assert result.returncode == 0, result.stderr
    roster = state_dir / scripts.MANAGERS_FILE
    assert roster.read_text() == "10.110.0.3 SWMTKN-1-m\n10.110.0.4 SWMTKN-1-m\n"
    assert oct(roster.stat().st_mode & 0o777) == "0o600"
    calls = node_calls(tmp_path)
    assert calls.index(["swarm", "join-token", "-q", "manager"]) < calls.index(["node", "demote", "m1old"])


def test_every_manager_replaced_the_successor_joins_the_old_managers_listed_on_the_volume(tmp_path):
    state_dir = tmp_path / ".swarm-state"
    state_dir.mkdir()
    (state_dir / scripts.MANAGERS_FILE).write_text("10.110.0.3 SWMTKN-1-m\n")
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "control": True, "id": "m1new"})
    result = run(scripts.init_script("10.110.0.2", str(state_dir)), env, stdin="\n\n")  # the probes: new, empty droplets
    assert result.returncode == 0, result.stderr
    assert [call for call in node_calls(tmp_path) if call[0] == "swarm"][0][-1] == "10.110.0.3:2377"
    assert not (state_dir / scripts.MANAGERS_FILE).exists()  # used once, then removed
    assert result.stdout.strip() == "m1new"


def test_init_never_starts_an_empty_swarm_over_a_volume_that_held_one(tmp_path):
    state_dir = tmp_path / ".swarm-state"
    state_dir.mkdir()  # made by the swarm-state command after the first init; nothing kept, nobody answers
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive"})
    result = run(scripts.init_script("10.110.0.2", str(state_dir)), env, stdin="")
    assert result.returncode == 1
    assert "not initialising a new, empty swarm over it" in result.stderr
    assert "swarm init" not in [" ".join(call[:2]) for call in node_calls(tmp_path)]


@pytest.mark.parametrize("empty", ["worker", "manager"])
def test_join_tokens_fail_when_a_token_is_empty(tmp_path, empty):
    tokens = {"worker": "SWMTKN-1-w", "manager": "SWMTKN-1-m", empty: ""}
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "tokens": tokens})
    result = run(scripts.join_tokens_script(), env)
    assert result.returncode == 1
    assert "empty token" in result.stderr
    assert result.stdout == ""


def test_join_tokens_print_both_tokens_as_json(tmp_path):
    tokens = {"worker": "SWMTKN-1-w", "manager": "SWMTKN-1-m"}
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "tokens": tokens})
    result = run(scripts.join_tokens_script(), env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == tokens


def test_settings_quote_every_label_key_and_value(tmp_path):
    # Keys added by hand, with blanks and shell syntax, are removed as single arguments.
    hand_made = ["bad key!", "$(touch pwned)", "*", "type"]
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "labels": hand_made})
    script = scripts.node_settings_script("n0d3", "worker", {"type": "a b", "zone": "x;y"})
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (update,) = [call for call in node_calls(tmp_path) if call[:2] == ["node", "update"]]
    assert update == ["node", "update", "--label-rm", "bad key!", "--label-rm", "$(touch pwned)", "--label-rm", "*",
                      "--label-add", "type=a b", "--label-add", "zone=x;y", "n0d3"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("role, was, change", [("worker", "manager", "demote"), ("manager", "worker", "promote")])
def test_settings_give_the_declared_role_and_keep_exactly_the_declared_labels(tmp_path, role, was, change):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "role": was, "labels": ["disk", "added-by-hand"]})
    script = scripts.node_settings_script("n0d3", role, {"type": "cheap", "disk": "ssd"})
    result = run(script, env)
    assert result.returncode == 0, result.stderr
    calls = node_calls(tmp_path)
    assert ["node", change, "n0d3"] in calls
    (update,) = [call for call in calls if call[:2] == ["node", "update"]]
    # the undeclared label goes; the declared ones are set, in key order
    assert update == ["node", "update", "--label-rm", "added-by-hand",
                      "--label-add", "disk=ssd", "--label-add", "type=cheap", "n0d3"]


def test_settings_leave_a_node_with_its_declared_role_in_it(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "role": "worker"})
    assert run(scripts.node_settings_script("n0d3", "worker", {}), env).returncode == 0
    assert not [call for call in node_calls(tmp_path) if call[1:2] in (["promote"], ["demote"])]


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
    result = run(day2_scripts.retire_script(node, "ml", **options), env)
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
    drained = run(day2_scripts.daemon_drain_script("n2", "ml", "d1g35t", 30, 2, lock_dir=str(locks)), env)
    assert drained.returncode == 0, drained.stderr
    assert "drained prod-ml-2 (n2) for its Docker restart" in drained.stdout
    (slot,) = locks.iterdir()  # held for the node's restart, by a placeholder process
    holder = int((slot / "owner").read_text().split()[1])
    os.kill(holder, 0)
    # (the node's own command restarts Docker here: the fake reports the new label 2 s after the drain)
    back = run(day2_scripts.daemon_return_script("n2", "ml", "d1g35t", 30, lock_dir=str(locks)), env)
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
    result = run(day2_scripts.daemon_return_script("n2", "ml", "", 30, lock_dir=str(tmp_path / "locks")), env)
    assert result.returncode == 0, result.stderr
    assert "not drained" in result.stdout
    assert not (tmp_path / "fake" / "calls").exists(), "no docker call at all"


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
    script = (day2_scripts.retire_script("n2", "ml", 30, 2, lock_dir=str(tmp_path / "locks")) if mode == "retire"
              else day2_scripts.daemon_drain_script("n2", "ml", "d1g35t", 30, 2, lock_dir=str(tmp_path / "locks")))
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
    result = run(day2_scripts.daemon_drain_script("n2", "ml", "d1g35t", 30, lock_dir=str(tmp_path / "locks")), env)
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
    result = run(day2_scripts.daemon_drain_script("n2", "ml", "d1g35t", 30, 1, lock_dir=str(tmp_path / "locks")), env)
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
