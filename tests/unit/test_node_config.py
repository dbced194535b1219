"""Root's authorized keys and Docker's daemon settings change in place (components/node_config.py):
two `pulumi up`s on one state (the lifecycle engine, tests/lifecycle) show that adding or removing
an operator key, or a program upgrade that changes the daemon settings, replaces no droplet and
updates the nodes' commands instead. Then the node scripts themselves, run for real against a
stand-in `docker` and `systemctl`."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from swarm import node_scripts
from swarm.node_scripts import node_config
from swarm.node_scripts.cloudinit import DAEMON_CONFIG
from tests.lifecycle.engine import Engine
from tests.pulumi_program import cluster_config, run_program, unwrap
from tests.sandbox.lifecycle_cloud import FakeOutputs
from tests.unit.test_volume_lifecycle import FakeDroplets

DROPLET = "digitalocean:index/droplet:Droplet"
COMMAND = "command:remote:Command"
ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAliceAl alice@laptop"
BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBo bob@laptop"


def up(engine: Engine, config: dict):
    result = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
    assert result.error is None, result.error
    return result


def deployed(**changes) -> tuple[Engine, dict]:
    engine = Engine({DROPLET: FakeDroplets()}, default=FakeOutputs())
    config = {**copy.deepcopy(cluster_config("prod")), **changes}
    up(engine, config)
    return engine, config


def changed(result) -> dict[str, set[str]]:
    """op -> names of the resources that op touched (no-change steps left out)."""
    ops: dict[str, set[str]] = {}
    for step in result.steps:
        if step.op != "same":
            ops.setdefault(step.op, set()).add(step.name)
    return ops


def droplet_inputs(engine: Engine) -> dict[str, dict]:
    return {r.name: unwrap(r.inputs) for r in engine.state.values() if r.type == DROPLET}


def test_adding_an_operator_key_replaces_no_droplet_and_rewrites_every_nodes_authorized_keys():
    engine, config = deployed()
    before = droplet_inputs(engine)
    result = up(engine, {**config, "sshAuthorizedKeys": [ALICE]})
    assert droplet_inputs(engine) == before
    assert changed(result) == {"update": {f"prod-{node}-access" for node in
                                          ("manager-1", "backoffice-1", "ml-1", "ml-2", "ml-3")}}
    access = unwrap(engine.state[engine.urn("prod-ml-2-access")].inputs)["create"]
    assert ALICE in access


def test_removing_an_operator_key_replaces_no_droplet_and_takes_the_key_off_the_nodes():
    engine, config = deployed(sshAuthorizedKeys=[ALICE, BOB])
    result = up(engine, {**config, "sshAuthorizedKeys": [BOB]})
    assert not {op for op in changed(result) if op != "update"}
    assert all(name.endswith("-access") for name in changed(result)["update"])
    access = unwrap(engine.state[engine.urn("prod-manager-1-access")].inputs)["create"]
    assert BOB in access and ALICE not in access


def test_new_daemon_settings_leave_the_user_data_alone_and_roll_through_the_nodes_commands(monkeypatch):
    engine, config = deployed()
    before = droplet_inputs(engine)
    monkeypatch.setitem(node_config.DAEMON_SETTINGS, "log-opts", {"max-size": "20m", "max-file": "6"})
    result = up(engine, config)
    assert droplet_inputs(engine) == before  # user data byte for byte, and every other input
    updated = changed(result)
    assert set(updated) == {"update"}
    nodes = ("manager-1", "backoffice-1", "ml-1", "ml-2", "ml-3")
    assert updated["update"] == {f"prod-{n}-{c}" for n in nodes for c in ("daemon-drain", "daemon", "daemon-return")}
    label = node_config.daemon_label()
    rollout = unwrap(engine.state[engine.urn("prod-ml-1-daemon-drain")].inputs)
    assert f"LABEL={label}\n" in rollout["create"] and "MODE=restart\n" in rollout["create"]
    assert rollout["connection"]["host"] != unwrap(engine.state[engine.urn("prod-ml-1-daemon")].inputs)["connection"]["host"]


def test_a_first_up_restarts_nothing_the_settings_being_what_cloud_init_wrote():
    # The label is empty: a node booted with cloud-init's daemon.json needs no restart, so neither
    # the upgrade that brings these commands nor a new node drains anything.
    assert node_config.daemon_label() == ""
    assert node_config.daemon_config() == DAEMON_CONFIG


def test_the_program_key_is_always_first_and_an_operator_key_listed_twice_is_written_once():
    program = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIProgramProgramProgramProgramProgramProgr"
    assert node_config.authorized_keys(program + "\n", [ALICE, ALICE.replace("alice@laptop", "alice@desk")]) == (
        f"{program}\n{ALICE}")


def test_daemon_settings_refuse_live_restore_and_labels_of_their_own(monkeypatch):
    monkeypatch.setitem(node_config.DAEMON_SETTINGS, "live-restore", True)
    with pytest.raises(ValueError, match="live-restore"):
        node_config.daemon_config()
    with pytest.raises(ValueError, match="labels"):
        node_config.daemon_config({"labels": ["a=b"]})


# ---- the scripts, for real ---------------------------------------------------------------------

FAKE_DOCKER = r"""#!/bin/sh
# docker info: the running daemon's labels
echo "$*" >>"$FAKE/calls"
case "$*" in info*Labels*) cat "$FAKE/labels" 2>/dev/null || true ;; esac
"""
FAKE_SYSTEMCTL = r"""#!/bin/sh
echo "systemctl $*" >>"$FAKE/calls"
# The restarted daemon reports the labels of the file it read.
python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1])).get("labels", [])))' "$FAKE/daemon.json" >"$FAKE/labels"
"""


@pytest.fixture
def node(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    return {"env": {**os.environ, "FAKE": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"}, "dir": tmp_path}


def apply(node: dict, settings: dict | None = None) -> subprocess.CompletedProcess:
    script = node_config.daemon_script("n0de", settings, config_path=str(node["dir"] / "daemon.json"),
                                       keys_path=str(node["dir"] / "keys"))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=node["env"], timeout=60)


def calls(node: dict) -> list[str]:
    path = node["dir"] / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_node_with_cloud_inits_daemon_json_is_left_alone(node):
    (node["dir"] / "daemon.json").write_text(json.dumps(DAEMON_CONFIG))  # another layout, same JSON
    text = (node["dir"] / "daemon.json").read_text()
    result = apply(node)
    assert result.returncode == 0, result.stderr
    assert "are current" in result.stdout
    assert (node["dir"] / "daemon.json").read_text() == text
    assert not [c for c in calls(node) if c.startswith("systemctl")]


def test_new_settings_keep_a_gpu_nodes_runtime_and_restart_docker_once(node):
    gpu = {**DAEMON_CONFIG, "default-runtime": "nvidia",
           "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
           "node-generic-resources": ["GPU=GPU-1234"]}
    (node["dir"] / "daemon.json").write_text(json.dumps(gpu))
    settings = {"log-driver": "local", "log-opts": {"max-size": "50m"}}
    result = apply(node, settings)
    assert result.returncode == 0, result.stderr
    written = json.loads((node["dir"] / "daemon.json").read_text())
    label = node_config.daemon_label(settings)
    assert written == {**{k: v for k, v in gpu.items() if k not in DAEMON_CONFIG}, **settings,
                       "labels": [f"swarm.daemon-settings={label}"]}
    assert calls(node).count("systemctl restart docker") == 1
    assert (node["dir"] / "keys").read_text().split() == ["labels", "log-driver", "log-opts"]
    # Run again: nothing to do.
    again = apply(node, settings)
    assert "are current" in again.stdout and calls(node).count("systemctl restart docker") == 1


def test_a_key_the_program_no_longer_sets_leaves_the_file_and_others_stay(node):
    (node["dir"] / "daemon.json").write_text(json.dumps({**DAEMON_CONFIG, "storage-driver": "overlay2"}))
    assert apply(node, {**DAEMON_CONFIG, "max-concurrent-downloads": 5}).returncode == 0
    assert apply(node, DAEMON_CONFIG).returncode == 0
    assert json.loads((node["dir"] / "daemon.json").read_text()) == {**DAEMON_CONFIG, "storage-driver": "overlay2"}
    assert calls(node).count("systemctl restart docker") == 2


def test_a_file_changed_by_hand_is_restored_with_a_warning(node):
    # The running Docker reports the current settings' label: the manager did not drain this node.
    (node["dir"] / "daemon.json").write_text(json.dumps({**DAEMON_CONFIG, "log-opts": {"max-size": "1g"}}))
    result = apply(node)
    assert result.returncode == 0, result.stderr
    assert "changed by hand" in result.stderr
    assert json.loads((node["dir"] / "daemon.json").read_text()) == DAEMON_CONFIG


def test_authorized_keys_are_replaced_whole_and_left_alone_when_current(tmp_path):
    ssh = tmp_path / "ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").write_text("ssh-ed25519 AAAAold added-by-hand\n")
    script = node_config.authorized_keys_script("n0de", "ssh-ed25519 AAAAprogram", [ALICE], directory=str(ssh))
    first = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert (ssh / "authorized_keys").read_text() == f"ssh-ed25519 AAAAprogram\n{ALICE}\n"
    assert stat.S_IMODE((ssh / "authorized_keys").stat().st_mode) == 0o600
    assert stat.S_IMODE(ssh.stat().st_mode) == 0o700
    second = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert "is current" in second.stdout
    assert sorted(p.name for p in ssh.iterdir()) == ["authorized_keys"]  # no temporary file left


def test_adding_a_worker_changes_no_other_nodes_commands():
    engine, config = deployed()
    more = copy.deepcopy(config)
    more["nodePools"]["ml"]["count"] = 4
    result = up(engine, more)
    assert changed(result)["create"] >= {"prod-ml-4-access", "prod-ml-4-daemon-drain", "prod-ml-4-daemon",
                                         "prod-ml-4-daemon-return"}
    assert not {name for name in changed(result)["update"] if "-access" in name or "-daemon" in name}


def test_the_workers_rollouts_wait_for_the_managers():
    run = run_program("prod", copy.deepcopy(cluster_config("prod")))
    assert run.error is None, run.error
    manager = run.named("prod-manager-1-daemon-return")
    for name in ("backoffice-1", "ml-1", "ml-2", "ml-3"):
        assert run.depends_on(run.named(f"prod-{name}-daemon-drain"), manager)
        # each node: drained, then its own command, then given back
        assert run.depends_on(run.named(f"prod-{name}-daemon"), run.named(f"prod-{name}-daemon-drain"))
        assert run.depends_on(run.named(f"prod-{name}-daemon-return"), run.named(f"prod-{name}-daemon"))
    assert not run.depends_on(run.named("prod-ml-2-daemon-drain"), run.named("prod-ml-1-daemon-return"))


def test_managers_of_every_pool_share_one_slot_so_only_one_leaves_the_quorum_at_a_time():
    # issue 20: the database's manager and a control pool's managers took their own pools' slots
    # and restarted Docker (or retired) together: two of three managers down, no quorum.
    config = copy.deepcopy(cluster_config("prod"))
    config["nodePools"]["control"] = {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}
    run = run_program("prod", config)
    assert run.error is None, run.error
    slots = {}
    for registration in run.of_type(COMMAND):
        for suffix, field in (("-daemon-drain", "create"), ("-daemon-return", "create"), ("-settings", "delete")):
            if registration.name.endswith(suffix):
                slots[registration.name] = node_scripts.inputs_of(registration.plain(field))["POOL"]
    managers = [name for name in slots if "-manager-" in name or "-control-" in name]
    assert len(managers) == 9 and {slots[name] for name in managers} == {"all.managers"}
    assert {slots[name] for name in slots if "-ml-" in name} == {"ml"}


def test_a_leader_s_restart_is_run_from_another_manager_and_the_managers_restart_one_after_another():
    # issue 20: a drain demotes a leading manager (leadership moves while it is up) and its return
    # promotes it again; a demoted node answers no swarm command, so the first manager's drain and
    # return cannot run at the reserved IP, which reaches the first manager itself.
    from tests.pulumi_program import fake_addresses

    config = copy.deepcopy(cluster_config("prod"))
    config["nodePools"]["control"] = {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}
    run = run_program("prod", config)
    assert run.error is None, run.error
    reserved = run.named("prod-init").plain("connection")["host"]
    second = fake_addresses("prod-control-1")[0]
    for suffix in ("daemon-drain", "daemon-return"):
        assert run.named(f"prod-manager-1-{suffix}").plain("connection")["host"] == second
        for other in ("control-1", "control-2", "ml-1"):
            assert run.named(f"prod-{other}-{suffix}").plain("connection")["host"] == reserved
    chain = ["manager-1", "control-1", "control-2"]
    for before, after in zip(chain, chain[1:]):
        assert run.depends_on(run.named(f"prod-{after}-daemon-drain"), run.named(f"prod-{before}-daemon-return"))
    roles = {name: node_scripts.inputs_of(run.named(f"prod-{name}-daemon-return").plain("create"))["ROLE"]
             for name in (*chain, "ml-1", "backoffice-1")}
    assert roles == {"manager-1": "manager", "control-1": "manager", "control-2": "manager",
                     "ml-1": "worker", "backoffice-1": "worker"}


def test_a_lone_manager_s_restart_runs_at_the_reserved_ip():
    run = run_program("prod", copy.deepcopy(cluster_config("prod")))
    assert run.error is None, run.error
    reserved = run.named("prod-init").plain("connection")["host"]
    assert run.named("prod-manager-1-daemon-drain").plain("connection")["host"] == reserved
    assert run.named("prod-manager-1-daemon-return").plain("connection")["host"] == reserved
