"""The node scripts: every one passes shellcheck and keeps secrets off its command line."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from swarm import day2_scripts, scripts

ALL_SCRIPTS = {
    "wait_ready": scripts.wait_ready_script(),
    "init": scripts.init_script("10.110.0.2"),
    "init_with_kept_state": scripts.init_script("10.110.0.2", "/mnt/db/.swarm-state"),
    "manager_probe": scripts.manager_probe_script(),
    "handover_lone_with_volume": scripts.handover_script("/mnt/db/.swarm-state"),
    "handover_without_volume": scripts.handover_script(None),
    "keep_swarm_state": scripts.keep_swarm_state_script("/mnt/db/.swarm-state", "/mnt/db"),
    "join_tokens": scripts.join_tokens_script(),
    "join": scripts.join_script("10.110.0.5", "10.110.0.2"),
    "settings_labels": scripts.node_settings_script("n0d3", "worker", {"type": "machine-learning", "zone.a": "x:1"}),
    "settings_no_labels": scripts.node_settings_script("n0d3", "manager", {}),
    "retire": day2_scripts.retire_script("n0d3", "ml"),
    "mount_volume": day2_scripts.mount_volume_script("/dev/disk/by-id/scsi-0DO_Volume_prod-manager-1-data", "/mnt/a b"),
    "prepare_folders": scripts.prepare_folders_script(
        [scripts.Folder("/mnt/postgresql/data", "999:999", "0700"), scripts.Folder("/srv/a b")]
    ),
    "converge": scripts.converge_script(
        [scripts.ConvergeTarget("prod_api", 3), scripts.ConvergeTarget("prod_agent", 2, ("prod-ml-1", "prod-ml-2"))],
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
    script = scripts.join_script("10.110.0.5", "10.110.0.2")
    assert "IFS= read -r token" in script
    assert '--token "$token"' in script
    assert "--advertise-addr 10.110.0.5 --listen-addr 10.110.0.5:2377" in script
    assert "manager=10.110.0.2:2377" in script


def test_init_uses_an_address_pool_clear_of_the_vpc():
    script = scripts.init_script("10.110.0.2")
    assert "--advertise-addr 10.110.0.2" in script
    assert f"--default-addr-pool {scripts.SWARM_ADDRESS_POOL}" in script


def test_values_are_shell_quoted():
    script = scripts.node_settings_script("id; rm -rf /", "worker", {"type": "a b"})
    assert "node='id; rm -rf /'" in script
    assert "--label-add 'type=a b'" in script


def test_settings_keep_exactly_the_declared_labels():
    script = scripts.node_settings_script("n0d3", "worker", {"type": "cheap", "disk": "ssd"})
    assert "wanted='disk\ntype\n'" in script
    assert "--label-add disk=ssd --label-add type=cheap" in script
    assert "--label-rm" in script  # undeclared labels are removed
    assert "docker node demote" in script


def test_retire_drains_then_removes():
    script = day2_scripts.retire_script("n0d3", "ml")
    drain = script.index("--availability drain")
    remove = script.index("docker node rm --force")
    assert drain < remove


@pytest.mark.tools("shellcheck")
def test_repository_shell_scripts_pass_shellcheck():
    from tests.pulumi_program import PROJECT_ROOT

    for path in [PROJECT_ROOT / ".ci" / "run", PROJECT_ROOT / "scripts" / "pulumi-local"]:
        result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_folders_are_created_only_when_missing_and_owner_and_mode_only_when_declared(tmp_path):
    existing = tmp_path / "docker.sock"
    existing.write_text("not a folder")
    created = tmp_path / "data" / "db"
    plain = tmp_path / "logs"
    script = scripts.prepare_folders_script(
        [scripts.Folder(str(existing)), scripts.Folder(str(created), mode="0750"), scripts.Folder(str(plain))]
    )
    for _ in range(2):  # idempotent
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert existing.read_text() == "not a folder"
    assert created.is_dir() and oct(created.stat().st_mode & 0o7777) == "0o750"
    assert plain.is_dir()
    assert "chown" not in script.split(str(plain))[1]  # nothing declared: mkdir only
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
    result = subprocess.run(["sh", "-c", scripts.converge_script(targets, timeout_seconds, "d1")],
                            capture_output=True, text=True, env=env, timeout=30)
    return result, time.monotonic() - started


def test_convergence_timeout_names_each_service_with_its_tasks_own_errors(tmp_path):
    result, seconds = run_converge(
        tmp_path,
        [scripts.ConvergeTarget("prod_api", 3), scripts.ConvergeTarget("prod_db", 1),
         scripts.ConvergeTarget("prod_agent", 2, ("prod-ml-1", "prod-ml-2"))],
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
        [scripts.ConvergeTarget("prod_api", 1)],
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
