"""The node scripts of swarm/node_scripts/swarm_cluster.py: every rendered script passes shellcheck and keeps secrets
off its command line; join, init, join tokens and settings run against a stand-in `docker` CLI
(fake_node_docker.py): joining from every swarm state, empty join tokens, quoted labels; folders
and the convergence check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from swarm import node_scripts
from swarm.node_scripts import day2, swarm_cluster
from tests.unit.stand_in_docker import install_fake, run

ALL_SCRIPTS = {
    "wait_ready": swarm_cluster.wait_ready_script(),
    "init": swarm_cluster.init_script("10.110.0.2"),
    "init_with_kept_state": swarm_cluster.init_script("10.110.0.2", "/mnt/db/.swarm-state"),
    "manager_probe": swarm_cluster.manager_probe_script(),
    "handover_lone_with_volume": swarm_cluster.handover_script("/mnt/db/.swarm-state", "n0d3"),
    "handover_without_volume": swarm_cluster.handover_script(None, "n0d3"),
    "keep_swarm_state": swarm_cluster.keep_swarm_state_script("/mnt/db/.swarm-state", "/mnt/db"),
    "join_tokens": swarm_cluster.join_tokens_script(),
    "join": swarm_cluster.join_script("10.110.0.5", "10.110.0.2"),
    "settings_labels": swarm_cluster.node_settings_script("n0d3", "worker", {"type": "machine-learning", "zone.a": "x:1"}),
    "settings_no_labels": swarm_cluster.node_settings_script("n0d3", "manager", {}),
    "retire": day2.retire_script("n0d3", "ml"),
    "mount_volume": day2.mount_volume_script("/dev/disk/by-id/scsi-0DO_Volume_prod-manager-1-data", "/mnt/a b"),
    "prepare_folders": swarm_cluster.prepare_folders_script(
        [swarm_cluster.Folder("/mnt/postgresql/data", "999:999", "0700"), swarm_cluster.Folder("/srv/a b")]
    ),
    "converge": swarm_cluster.converge_script(
        [swarm_cluster.ConvergeTarget("prod_api", 3), swarm_cluster.ConvergeTarget("prod_agent", 2, ("prod-ml-1", "prod-ml-2"))],
        600,
        "0123abcd",
    ),
}


def shellcheck(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["shellcheck", "--shell=sh", "--severity=style", "-"], input=script, text=True, capture_output=True)


@pytest.mark.tools("shellcheck")
@pytest.mark.parametrize("name", sorted(ALL_SCRIPTS))
def test_script_passes_shellcheck(name):
    result = shellcheck(ALL_SCRIPTS[name])
    assert result.returncode == 0, result.stdout


@pytest.mark.tools("shellcheck")
def test_shellcheck_is_really_checking():
    assert shellcheck("#!/bin/sh\necho $1\n").returncode != 0


@pytest.mark.parametrize("name", sorted(ALL_SCRIPTS))
def test_scripts_fail_fast(name):
    assert ALL_SCRIPTS[name].startswith("#!/bin/sh\nset -eu\n")


def test_join_reads_the_token_from_stdin():
    script = swarm_cluster.join_script("10.110.0.5", "10.110.0.2")
    assert "IFS= read -r token" in script
    assert 'swarm_join "$ADDR" "$PORT" "$token" "$MANAGER"' in script
    assert '--advertise-addr "$1" --listen-addr "$1:$2" --token "$3" "$4"' in script  # swarm_join
    inputs = node_scripts.inputs_of(script)
    assert (inputs["ADDR"], inputs["PORT"], inputs["MANAGER"]) == ("10.110.0.5", "2377", "10.110.0.2:2377")


def test_init_uses_an_address_pool_clear_of_the_vpc():
    script = swarm_cluster.init_script("10.110.0.2")
    assert node_scripts.inputs_of(script)["ADDR"] == "10.110.0.2"
    assert node_scripts.inputs_of(script)["ADDRESS_POOL"] == swarm_cluster.SWARM_ADDRESS_POOL
    assert '--default-addr-pool "$ADDRESS_POOL"' in script


def test_values_are_shell_quoted():
    script = swarm_cluster.node_settings_script("id; rm -rf /", "worker", {"type": "a b"})
    assert "NODE='id; rm -rf /'" in script
    assert "LABELS='type=a b\n'" in script


def test_folders_are_created_only_when_missing_and_owner_and_mode_only_when_declared(tmp_path):
    existing = tmp_path / "docker.sock"
    existing.write_text("not a folder")
    created = tmp_path / "data" / "db"
    plain = tmp_path / "logs"
    script = swarm_cluster.prepare_folders_script(
        [swarm_cluster.Folder(str(existing)), swarm_cluster.Folder(str(created), "999:999", "0750"), swarm_cluster.Folder(str(plain))]
    )
    # chown stands in, recording its calls: the test may not run as root.
    stub = tmp_path / "bin" / "chown"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$*" >>{tmp_path / "chown.log"}\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
    for _ in range(2):  # idempotent
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    assert existing.read_text() == "not a folder"
    assert created.is_dir() and oct(created.stat().st_mode & 0o7777) == "0o750"
    assert plain.is_dir()
    # owner only where declared: nothing declared, mkdir only
    assert (tmp_path / "chown.log").read_text().splitlines() == [f"999:999 {created}"] * 2
    assert result.stdout.splitlines()[1].endswith(f" 750 {created}")


# A stand-in for `docker service inspect/ps`: answers from files named after the service (the
# prod_* argument) in $FAKE, so the convergence script's reporting runs for real, in seconds.
FAKE_DOCKER = """#!/bin/sh
for arg; do case "$arg" in prod_*) service=$arg ;; esac; done
case "$*" in
  *UpdateStatus.State*) cat "$FAKE/$service.update" 2>/dev/null || true ;;
  *UpdateStatus.Message*) cat "$FAKE/$service.message" ;;
  *desired-state=running*) cat "$FAKE/$service.running" 2>/dev/null || true ;;
  *.Error*) cat "$FAKE/$service.errors" 2>/dev/null || true ;;
esac
"""


def run_converge(tmp_path, targets, timeout_seconds, **files):
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, text in files.items():
        (fake / name.replace("__", ".")).write_text(text)
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {**os.environ, "FAKE": str(fake), "PATH": f"{docker.parent}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run(["sh", "-c", swarm_cluster.converge_script(targets, timeout_seconds, "d1")],
                            capture_output=True, text=True, env=env, timeout=30)
    return result, time.monotonic() - started


def test_convergence_timeout_names_each_service_with_its_tasks_own_errors(tmp_path):
    result, seconds = run_converge(
        tmp_path,
        [swarm_cluster.ConvergeTarget("prod_api", 3), swarm_cluster.ConvergeTarget("prod_db", 1),
         swarm_cluster.ConvergeTarget("prod_agent", 2, ("prod-ml-1", "prod-ml-2"))],
        timeout_seconds=1,
        prod_api__running="Running 9 seconds ago|prod-ml-1\n",
        prod_api__errors='""\n"no suitable node (insufficient resources on 2 nodes)"\n'
                         '"no suitable node (insufficient resources on 2 nodes)"\n""\n',
        prod_db__running="Running 9 seconds ago|prod-manager-1\n",
        prod_agent__running="Running 9 seconds ago|prod-ml-1\nRejected 2 seconds ago|prod-ml-2\n",
        prod_agent__errors='"invalid mount config for type "bind": bind source path does not exist: /srv/x"\n',
    )
    assert result.returncode == 1
    first, *rest = result.stderr.splitlines()
    # the elapsed seconds depend on where the clock's second boundaries fall
    assert re.fullmatch(r"not every service converged after \d+s \(swarm:convergeTimeout: 1s\):", first), first
    assert rest == [
        "  prod_api: 1 of 3 tasks running",
        "    task error: no suitable node (insufficient resources on 2 nodes)",
        "  prod_agent: no running task on prod-ml-2",
        '    task error: invalid mount config for type "bind": bind source path does not exist: /srv/x',
    ]
    assert seconds < 5


def test_a_rolled_back_update_fails_at_once(tmp_path):
    result, seconds = run_converge(
        tmp_path,
        [swarm_cluster.ConvergeTarget("prod_api", 1)],
        timeout_seconds=600,
        prod_api__update="rollback_completed\n",
        prod_api__message="update rolled back due to failure or early termination of task x\n",
        prod_api__running="Running 1 second ago|prod-ml-1\n",
        prod_api__errors='"No such image: registry.example.com/nlp/api:2.0.3"\n',
    )
    assert result.returncode == 1
    assert "prod_api: update rollback_completed: update rolled back due to failure" in result.stderr
    assert "task error: No such image: registry.example.com/nlp/api:2.0.3" in result.stderr
    assert seconds < 2


# ---- join, init, join tokens, settings --------------------------------------------------------

def node_calls(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "fake" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("stuck", ["pending", "error"])
def test_a_node_stuck_pending_or_in_error_is_not_taken_for_joined(tmp_path, stuck):
    # Its remote managers even name the right manager: the old script left it alone.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": stuck, "managers": ["10.110.0.2:2377"], "id": "w0rk3r"})
    result = run(swarm_cluster.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert commands.index("swarm leave") < commands.index("swarm join")
    assert result.stdout.strip() == "w0rk3r"


def test_a_joined_node_is_left_alone(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "managers": ["10.110.0.2:2377"], "id": "w0rk3r"})
    result = run(swarm_cluster.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def test_a_join_that_does_not_complete_fails(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "join_result": "pending"})
    result = run(swarm_cluster.join_script("10.110.0.5", "10.110.0.2"), env, stdin="SWMTKN-1-x\n")
    assert result.returncode == 1
    assert "swarm state 'pending' after joining 10.110.0.2:2377, not active" in result.stderr


@pytest.mark.parametrize("stuck", ["pending", "error", "locked"])
def test_init_does_not_take_a_stuck_node_for_a_manager_nor_reset_it(tmp_path, stuck):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": stuck})
    result = run(swarm_cluster.init_script("10.110.0.2"), env)
    assert result.returncode == 1
    assert f"swarm state '{stuck}' is not a working manager" in result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def test_the_first_managers_successor_joins_the_swarm_the_other_managers_hold(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "control": True, "id": "m1new"})
    peers = "\n10.110.0.3 SWMTKN-1-manager\n"  # one manager empty-handed (not in a swarm), one holding it
    result = run(swarm_cluster.init_script("10.110.0.2", "/mnt/db/.swarm-state"), env, stdin=peers)
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
    result = run(swarm_cluster.init_script("10.110.0.2"), env)
    assert result.returncode == 0, result.stderr
    removed = [call[-1] for call in node_calls(tmp_path) if call[:2] == ["node", "rm"]]
    # Down, or demoted by its handover though the swarm has not noticed its droplet is gone yet;
    # a predecessor still a manager is alive and retires later; another host's node is not its.
    assert removed == ["m1old", "m1older"]
    assert result.stdout.strip() == "m1new"


def test_init_never_starts_a_second_swarm_beside_one_that_refuses_the_join(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "join_result": "pending",
                                                                          "join_fails": True})
    result = run(swarm_cluster.init_script("10.110.0.2"), env, stdin="10.110.0.3 SWMTKN-1-a\n10.110.0.4 SWMTKN-1-b\n")
    assert result.returncode == 1
    assert "the managers at 10.110.0.3 10.110.0.4 hold a swarm that refused this node; not initialising" in result.stderr
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert "swarm init" not in commands
    assert commands.count("swarm leave") == 2  # each half-done join cleared before the next


def test_init_starts_a_swarm_when_no_manager_holds_one(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive"})
    result = run(swarm_cluster.init_script("10.110.0.2"), env, stdin="")
    assert result.returncode == 0, result.stderr
    assert [" ".join(call[:2]) for call in node_calls(tmp_path) if call[0] == "swarm"] == ["swarm init"]


def test_a_joined_node_waits_for_a_new_manager_to_reach_its_list_rather_than_leave(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "id": "w0rk3r",
        "managers_seen": [["10.110.0.3:2377"], ["10.110.0.3:2377"], ["10.110.0.3:2377", "10.110.0.2:2377"]],
    })
    result = run(swarm_cluster.join_script("10.110.0.5", "10.110.0.2", ["10.110.0.3"], manager_wait_seconds=20), env,
                 stdin="SWMTKN-1-x\n")
    assert result.returncode == 0, result.stderr
    assert not [call for call in node_calls(tmp_path) if call[0] == "swarm"]


def join_knowing(tmp_path, manager: str, manager_wait_seconds: int) -> tuple[subprocess.CompletedProcess, float]:
    """join.sh for 10.110.0.2 (today's managers: it and 10.110.0.3) on a node in a swarm whose only
    manager it knows is `manager`: the result and the seconds it took."""
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "managers": [manager], "id": "w0rk3r"})
    started = time.monotonic()
    result = run(swarm_cluster.join_script("10.110.0.5", "10.110.0.2", ["10.110.0.3"],
                                     manager_wait_seconds=manager_wait_seconds), env, stdin="SWMTKN-1-x\n")
    return result, time.monotonic() - started


def test_a_node_that_knows_none_of_todays_managers_leaves_at_once_to_rejoin(tmp_path):
    # A lone manager restored on a successor: the node's only manager address is dead.
    result, seconds = join_knowing(tmp_path, "10.9.9.9:2377", manager_wait_seconds=30)
    assert result.returncode == 0, result.stderr
    assert seconds < 10  # no waiting for a manager it will never hear of
    commands = [" ".join(call[:2]) for call in node_calls(tmp_path)]
    assert commands.index("swarm leave") < commands.index("swarm join")
    assert "does not know the manager 10.110.0.2:2377" in result.stderr


def test_a_node_of_todays_swarm_leaves_only_when_the_new_manager_never_shows(tmp_path):
    result, seconds = join_knowing(tmp_path, "10.110.0.3:2377", manager_wait_seconds=2)
    assert result.returncode == 0, result.stderr
    # It waited rather than leaving at once; join.sh's deadline counts whole seconds of the clock
    # (`date +%s`), so a 2 s wait lasts between 1 and 2 s.
    assert seconds > 1
    assert "swarm leave" in [" ".join(call[:2]) for call in node_calls(tmp_path)]


@pytest.mark.parametrize(("local", "control", "printed"), [
    ("active", True, "10.110.0.9 SWMTKN-1-m\n"),
    ("active", False, ""),  # a worker has no manager token to give
    ("inactive", False, ""),
])
def test_the_manager_probe_hands_over_a_token_only_from_a_manager(tmp_path, local, control, printed):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": local, "control": control, "tokens": {"manager": "SWMTKN-1-m"}})
    result = run(swarm_cluster.manager_probe_script(), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed


def test_one_of_several_managers_demotes_itself_before_its_droplet_goes(tmp_path):
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "control": True, "managers_count": 3, "id": "m1old"})
    result = run(swarm_cluster.handover_script(None, "m1old"), env)
    assert result.returncode == 0, result.stderr
    assert ["node", "demote", "m1old"] in node_calls(tmp_path)
    assert "handed over to the other 2 managers (demoted)" in result.stdout
    assert not [call for call in node_calls(tmp_path) if "stop" in call]  # no backup: the others hold the state


@pytest.mark.parametrize("node", [
    {"local": "active", "control": True, "managers_count": 3, "id": "m1new"},  # the successor, a manager
    {"local": "active", "control": False, "id": "m1new"},  # the successor, a worker for now
    {"local": "inactive", "id": ""},  # a new droplet in no swarm yet
])
def test_a_handover_run_on_any_node_but_the_one_it_was_made_for_does_nothing(tmp_path, node):
    # Issue 20: the successor holds the same name, host key and reserved IP; demoting "itself"
    # there demoted the manager that had just replaced the old one.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"tokens": {"manager": "SWMTKN-1-m"}, **node})
    result = run(swarm_cluster.handover_script(None, "m1old"), env)
    assert result.returncode == 0, result.stderr
    assert "is not the node this handover was made for (m1old" in result.stdout
    assert not changes(tmp_path)


def changes(tmp_path) -> list[list[str]]:
    """The calls that change a node or Docker: demotions, promotions, stops."""
    return [call for call in node_calls(tmp_path)
            if call[:2] in (["node", "demote"], ["node", "promote"], ["node", "rm"]) or "stop" in call]


def test_a_handover_run_on_the_successor_demotes_the_old_node_from_there_while_it_is_a_reachable_manager(tmp_path):
    # Issue 20 (a dead manager): the handover runs at the reserved IP, which reaches the successor
    # once it holds it (replaced create-before-delete): the old node, still up, is demoted from
    # there, so that leadership moves while it is up, as its own demotion did.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "control": True, "managers_count": 4, "id": "m1new",
                        "roles": {"m1old": "manager"}, "reachability": {"m1old": "reachable"}})
    result = run(swarm_cluster.handover_script(None, "m1old", demote_wait_seconds=2), env)
    assert result.returncode == 0, result.stderr
    assert changes(tmp_path) == [["node", "demote", "m1old"]]
    assert "demoted m1old, the node this handover was made for" in result.stdout


def test_a_handover_made_for_a_lost_droplet_succeeds_on_the_successor_and_leaves_the_old_node_to_its_retirement(tmp_path):
    # The droplet was destroyed outside Pulumi: its node is an unreachable manager; demoting it is
    # the successor's init's and the retirement's work, and the handover must not fail the `up`.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "control": True, "managers_count": 4, "id": "m1new",
                        "roles": {"m1old": "manager"}, "reachability": {"m1old": "unreachable"}})
    result = run(swarm_cluster.handover_script("/mnt/db/.swarm-state", "m1old", demote_wait_seconds=2), env)
    assert result.returncode == 0, result.stderr
    assert not changes(tmp_path)
    assert "m1old is an unreachable manager" in result.stdout


def test_a_lone_managers_handover_run_on_its_successor_keeps_nothing_and_promotes_nobody(tmp_path):
    env, state_dir = lone_manager(tmp_path, id="m1new", workers=[["w1", "Ready", "Active"]],
                                  reachability={"w1": "reachable"}, addresses={"w1": "10.110.0.7:2377"})
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old", standin_grace_seconds=1), env)
    assert result.returncode == 0, result.stderr
    assert not state_dir.exists()
    assert not changes(tmp_path)


def test_a_manager_demoted_by_its_retirement_meanwhile_still_hands_over(tmp_path):
    # Without a volume its handover and its old node's retirement (on the successor) both run at
    # the end of the `up`: the retirement may demote it first.
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "active", "control": True, "managers_count": 3, "id": "m1old", "demoted_meanwhile": True})
    result = run(swarm_cluster.handover_script(None, "m1old"), env)
    assert result.returncode == 0, result.stderr
    assert "handed over to the other 2 managers (demoted)" in result.stdout


def test_a_handover_is_made_for_a_node_id_only(tmp_path):
    with pytest.raises(ValueError, match="node ID"):
        swarm_cluster.handover_script(None, "")
    with pytest.raises(ValueError, match="node ID"):
        swarm_cluster.handover_script(None, "m1old; docker swarm leave --force")


def test_a_first_manager_of_several_lists_the_others_on_its_volume_before_demoting(tmp_path):
    state_dir = tmp_path / "mnt" / ".swarm-state"
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "control": True, "managers_count": 3, "id": "m1old", "tokens": {"manager": "SWMTKN-1-m"},
        "other_managers": {"c1": "10.110.0.3:2377", "c2": "10.110.0.4:2377"},
    })
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old"), env)
    assert result.returncode == 0, result.stderr
    roster = state_dir / swarm_cluster.MANAGERS_FILE
    assert roster.read_text() == "10.110.0.3 SWMTKN-1-m\n10.110.0.4 SWMTKN-1-m\n"
    assert oct(roster.stat().st_mode & 0o777) == "0o600"
    calls = node_calls(tmp_path)
    assert calls.index(["swarm", "join-token", "-q", "manager"]) < calls.index(["node", "demote", "m1old"])


def lone_manager(tmp_path, **node) -> tuple[dict, Path]:
    """A lone manager with a volume (its state dir under tmp_path), the stand-in `docker` plus a
    `systemctl` and a `tar` that log to the same call list (tar writes its archive)."""
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {
        "local": "active", "control": True, "managers_count": 1, "id": "m1old", "tokens": {"manager": "SWMTKN-1-m"}, **node,
    })
    bin_dir = tmp_path / "bin"
    log = """python3 -c 'import json, os, sys; open(os.environ["FAKE"] + "/calls.jsonl", "a").write(json.dumps(sys.argv[1:]) + "\\n")'"""
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\n{log} systemctl \"$@\"\n")
    (bin_dir / "tar").write_text(f"#!/bin/sh\n{log} tar \"$@\"\nwhile [ $# -gt 0 ]; do case $1 in -czf) echo kept >\"$2\";; esac; shift; done\n")
    for tool in ("systemctl", "tar"):
        (bin_dir / tool).chmod(0o755)
    return env, tmp_path / "mnt" / ".swarm-state"


def test_a_lone_manager_keeps_its_state_then_hands_over_to_a_worker_promoted_to_stand_in(tmp_path):
    env, state_dir = lone_manager(tmp_path, workers=[["w9", "Down", "Active"], ["w1", "Ready", "Active"]],
                                  reachability={"w1": "reachable"}, addresses={"w1": "10.110.0.7:2377"})
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old", standin_grace_seconds=1), env)
    assert result.returncode == 0, result.stderr
    assert (state_dir / swarm_cluster.SWARM_STATE_BACKUP).read_text() == "kept\n"
    assert (state_dir / swarm_cluster.MANAGERS_FILE).read_text() == "10.110.0.7 SWMTKN-1-m\n"
    assert (state_dir / swarm_cluster.STANDINS_FILE).read_text() == "w1\n"
    assert oct((state_dir / swarm_cluster.MANAGERS_FILE).stat().st_mode & 0o777) == "0o600"
    calls = node_calls(tmp_path)
    # the state kept first, with Docker stopped; then the stand-in promoted; then this one demoted
    assert calls.index(["systemctl", "stop", "docker.socket", "docker.service"]) < calls.index(["node", "promote", "w1"])
    assert calls.index(["node", "promote", "w1"]) < calls.index(["node", "demote", "m1old"])
    assert "handed over to the stand-in w1" in result.stdout


def test_the_swarm_state_is_copied_with_docker_and_its_socket_stopped_so_no_client_restarts_docker_mid_copy(tmp_path):
    env, state_dir = lone_manager(tmp_path)
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old"), env, timeout=20)
    assert result.returncode == 0, result.stderr
    calls = [call for call in node_calls(tmp_path) if call[0] in ("systemctl", "tar")]
    assert [call[:2] for call in calls] == [["systemctl", "stop"], ["tar", "-C"], ["systemctl", "start"]]
    assert calls[0][2:] == calls[2][2:] == ["docker.socket", "docker.service"]


def test_a_lone_manager_without_a_ready_worker_keeps_its_state_for_its_successor_to_restore(tmp_path):
    env, state_dir = lone_manager(tmp_path, workers=[["w9", "Down", "Active"], ["w2", "Ready", "Drain"]])
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old", demote_wait_seconds=2), env)
    assert result.returncode == 0, result.stderr
    assert (state_dir / swarm_cluster.SWARM_STATE_BACKUP).exists()
    assert not (state_dir / swarm_cluster.MANAGERS_FILE).exists() and not (state_dir / swarm_cluster.STANDINS_FILE).exists()
    assert not [call for call in node_calls(tmp_path) if call[:2] in (["node", "promote"], ["node", "demote"])]
    assert "no worker is Ready to stand in" in result.stdout


def test_a_lone_manager_without_workers_hands_nothing_over_and_does_not_wait(tmp_path):
    env, state_dir = lone_manager(tmp_path)
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old"), env, timeout=20)  # a 60 s wait would time out
    assert result.returncode == 0, result.stderr
    assert (state_dir / swarm_cluster.SWARM_STATE_BACKUP).exists() and not (state_dir / swarm_cluster.STANDINS_FILE).exists()


def test_a_stand_in_that_never_becomes_a_manager_is_demoted_again_and_the_kept_state_stays_the_way(tmp_path):
    env, state_dir = lone_manager(tmp_path, workers=[["w1", "Ready", "Active"]])  # never reachable
    result = run(swarm_cluster.handover_script(str(state_dir), "m1old", demote_wait_seconds=2), env)
    assert result.returncode == 0, result.stderr
    calls = node_calls(tmp_path)
    assert ["node", "demote", "w1"] in calls and ["node", "demote", "m1old"] not in calls
    assert not (state_dir / swarm_cluster.MANAGERS_FILE).exists()
    assert "did not become a reachable manager" in result.stderr


def test_the_lone_managers_successor_joins_the_stand_in_then_demotes_it_and_sets_the_old_state_aside(tmp_path):
    state_dir = tmp_path / ".swarm-state"
    state_dir.mkdir()
    (state_dir / swarm_cluster.MANAGERS_FILE).write_text("10.110.0.7 SWMTKN-1-m\n")
    (state_dir / swarm_cluster.STANDINS_FILE).write_text("w1\n")
    (state_dir / swarm_cluster.SWARM_STATE_BACKUP).write_text("kept\n")
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json",
                       {"local": "inactive", "control": True, "id": "m1new", "roles": {"w1": "manager"}})
    result = run(swarm_cluster.init_script("10.110.0.2", str(state_dir), standin_grace_seconds=1), env, stdin="")
    assert result.returncode == 0, result.stderr
    calls = node_calls(tmp_path)
    (join,) = [call for call in calls if call[:2] == ["swarm", "join"]]
    assert join[-1] == "10.110.0.7:2377"
    assert "init" not in [call[1] for call in calls if call[0] == "swarm"], "no restore, no new swarm"
    assert calls.index(join) < calls.index(["node", "demote", "w1"])
    assert sorted(path.name for path in state_dir.iterdir())[0].startswith(swarm_cluster.SWARM_STATE_BACKUP + ".superseded-")
    assert [path.name for path in state_dir.iterdir()] == [next(state_dir.iterdir()).name], "roster and stand-ins used once"
    assert result.stdout.strip() == "m1new"


def test_every_manager_replaced_the_successor_joins_the_old_managers_listed_on_the_volume(tmp_path):
    state_dir = tmp_path / ".swarm-state"
    state_dir.mkdir()
    (state_dir / swarm_cluster.MANAGERS_FILE).write_text("10.110.0.3 SWMTKN-1-m\n")
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive", "control": True, "id": "m1new"})
    result = run(swarm_cluster.init_script("10.110.0.2", str(state_dir)), env, stdin="\n\n")  # the probes: new, empty droplets
    assert result.returncode == 0, result.stderr
    assert [call for call in node_calls(tmp_path) if call[0] == "swarm"][0][-1] == "10.110.0.3:2377"
    assert not (state_dir / swarm_cluster.MANAGERS_FILE).exists()  # used once, then removed
    assert result.stdout.strip() == "m1new"


def test_init_never_starts_an_empty_swarm_over_a_volume_that_held_one(tmp_path):
    state_dir = tmp_path / ".swarm-state"
    state_dir.mkdir()  # made by the swarm-state command after the first init; nothing kept, nobody answers
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "inactive"})
    result = run(swarm_cluster.init_script("10.110.0.2", str(state_dir)), env, stdin="")
    assert result.returncode == 1
    assert "not initialising a new, empty swarm over it" in result.stderr
    assert "swarm init" not in [" ".join(call[:2]) for call in node_calls(tmp_path)]


@pytest.mark.parametrize("empty", ["worker", "manager"])
def test_join_tokens_fail_when_a_token_is_empty(tmp_path, empty):
    tokens = {"worker": "SWMTKN-1-w", "manager": "SWMTKN-1-m", empty: ""}
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "tokens": tokens})
    result = run(swarm_cluster.join_tokens_script(), env)
    assert result.returncode == 1
    assert "empty token" in result.stderr
    assert result.stdout == ""


def test_join_tokens_print_both_tokens_as_json(tmp_path):
    tokens = {"worker": "SWMTKN-1-w", "manager": "SWMTKN-1-m"}
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "tokens": tokens})
    result = run(swarm_cluster.join_tokens_script(), env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == tokens


def test_settings_quote_every_label_key_and_value(tmp_path):
    # Keys added by hand, with blanks and shell syntax, are removed as single arguments.
    hand_made = ["bad key!", "$(touch pwned)", "*", "type"]
    env = install_fake(tmp_path, "fake_node_docker.py", "node.json", {"local": "active", "labels": hand_made})
    script = swarm_cluster.node_settings_script("n0d3", "worker", {"type": "a b", "zone": "x;y"})
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
    script = swarm_cluster.node_settings_script("n0d3", role, {"type": "cheap", "disk": "ssd"})
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
    assert run(swarm_cluster.node_settings_script("n0d3", "worker", {}), env).returncode == 0
    assert not [call for call in node_calls(tmp_path) if call[1:2] in (["promote"], ["demote"])]
