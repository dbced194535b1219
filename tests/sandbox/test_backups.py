"""The restore drill on the sandbox: a database backed up by the scheduled job, destroyed and
restored with `python -m swarm restore`; the swarm state backed up and restored onto a blank
manager; missed and overlapping runs reported. See tests/sandbox/backup_drill.py."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from swarm.backups import restore
from tests.sandbox import backup_drill as drill
from tests.sandbox.harness import Host, Sandbox, host_public_key, pinned_known_hosts

PREFIX = "bkup"
SUBNET = "10.233.116.0/24"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox(sandbox_workdir: Path) -> Iterator[Sandbox]:
    with Sandbox(sandbox_workdir / "backups", subnet=SUBNET, prefix=PREFIX) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Iterator[tuple[Host, Host, drill.S3Server]]:
    if not (drill.PG_BIN / "postgres").exists():
        pytest.fail("Debian's PostgreSQL is missing: apt-get install postgresql (.ci/run does)", pytrace=False)
    manager, blank = drill.sandbox_hosts(sandbox)
    server = drill.S3Server(sandbox.gateway)
    try:
        server.client().create_bucket()
        drill.start_database(manager)
        # The database's job only: the swarm-state job (same schedule) stops Docker; its own test installs it.
        drill.install(manager, server, drill.backups_config(swarm_state=False))
        yield manager, blank, server
    finally:
        server.close()


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A project whose prod stack backs up its database: what `python -m swarm restore` reads."""
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    shutil.copy(REPO / "Pulumi.yaml", tmp_path)
    document = yaml.safe_load((REPO / "Pulumi.prod.yaml").read_text())
    document["config"]["swarm:backups"] = {"bucket": drill.BUCKET, "keep": 3, "databases": ["database"]}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def restore_args(manager: Host, sandbox: Sandbox, **options: object) -> argparse.Namespace:
    # The manager's key pinned, as the stack's knownHosts output pins it: restore checks it strictly.
    known_hosts = pinned_known_hosts(sandbox, manager.ip, host_public_key(manager))
    defaults = {"stack": "prod", "database": "database", "at": None, "dry_run": False, "yes": False,
                "host": manager.ip, "identity": str(sandbox.key_path), "known_hosts": str(known_hosts),
                "jobs_dir": drill.JOBS_DIR}
    return argparse.Namespace(**{**defaults, **options})


def test_rows_destroyed_after_a_scheduled_backup_come_back_with_swarm_restore(cluster, sandbox, project) -> None:
    manager, _, server = cluster
    drill.write_rows(manager, 20_000)
    written = drill.fingerprint(manager)
    assert written.startswith("20000 ")

    run = drill.backup_through_scheduler(manager, "backup-database", "2026-12-03T03:00:00Z")
    assert run["status"] == "succeeded", run
    stored = server.client().head(run["object"])
    assert int(stored["content-length"]) == run["size"] > 0
    latest = server.client().get("prod/postgres/database/latest.json")
    assert run["object"].encode() in latest, "the last-successful-backup marker names this backup"
    assert drill.status(manager)["backup-database"]["lastSuccess"] == run["finished"]
    assert b"PGDMP" not in b"".join(server.client().stream(run["object"]))[:64], "the backup is stored encrypted"

    drill.destroy_database(manager)
    assert drill.psql(manager, "select to_regclass('drill')").strip() == "", "the data is gone"

    said: list[str] = []
    dry = restore.restore(restore_args(manager, sandbox, dry_run=True), project, say=said.append)
    assert dry == 0 and run["object"] in said[0] and "nothing restored" in said[0]
    assert drill.psql(manager, "select to_regclass('drill')").strip() == "", "a dry run restores nothing"

    refused = restore.restore(restore_args(manager, sandbox), project, ask=lambda _: "staging", say=said.append)
    assert refused == 1 and said[-1] == "not confirmed: nothing restored"

    assert restore.restore(restore_args(manager, sandbox), project, ask=lambda _: "prod", say=said.append) == 0
    assert drill.fingerprint(manager) == written


def test_restore_refuses_a_database_that_is_not_backed_up_and_names_the_one_that_is(cluster, sandbox, project) -> None:
    manager, _, _ = cluster
    with pytest.raises(restore.RestoreError, match="did you mean database"):
        restore.restore(restore_args(manager, sandbox, database="databse"), project)


def test_a_failing_backup_is_a_failed_run_and_keeps_the_last_success(cluster) -> None:
    manager, _, _ = cluster
    before = drill.status(manager)["backup-database"]["lastSuccess"]
    manager.docker("service", "scale", "--detach", f"{drill.DATABASE}=0")
    drill.wait_for(lambda: not drill.container(manager), "the database task to stop", timeout=60)
    try:
        failed = drill.jobs(manager, "run", "backup-database", check=False)
        assert failed.returncode == 1, "a failed backup fails the job's exit status"
        state = drill.status(manager)["backup-database"]
        assert state["lastRun"]["status"] == "failed" and "no running task" in state["lastRun"]["error"]
        assert state["lastSuccess"] == before
    finally:
        manager.docker("service", "scale", f"{drill.DATABASE}=1")


def test_a_run_is_never_started_twice_and_missed_runs_are_reported(cluster) -> None:
    manager, _, _ = cluster
    lock = f"{drill.JOBS_DIR}/locks/backup-database.lock"
    manager.ssh(f"setsid flock {lock} sleep 20 </dev/null >/dev/null 2>&1 &")
    drill.jobs(manager, "tick", "--now", "2026-12-10T02:59:00Z")
    second = drill.jobs(manager, "run", "backup-database", check=False)
    assert second.returncode == 3 and "already running" in second.stderr
    ticked = drill.jobs(manager, "tick", "--now", "2026-12-10T03:00:00Z")
    assert "MISSED backup-database: the run due at 2026-12-10T03:00:00Z" in ticked.stderr
    # The scheduler was down for three days: the two runs in between are reported, the last starts.
    manager.ssh(f"flock {lock} true")  # wait for the holder to go
    ticked = drill.jobs(manager, "tick", "--now", "2026-12-13T03:00:30Z")
    missed = [m["due"] for m in drill.status(manager)["backup-database"]["missed"]]
    assert {"2026-12-11T03:00:00Z", "2026-12-12T03:00:00Z"} <= set(missed)
    assert "started backup-database" in ticked.stderr


def test_a_scheduled_stack_service_runs_as_a_swarm_replicated_job_from_its_template(cluster) -> None:
    manager, _, _ = cluster
    manager.docker("service", "create", "--detach", "--no-resolve-image", "--name", "prod_report",
                   "--replicas", "0", "--label", "swarm.schedule=*/5 * * * *", "--label", "swarm.schedule.completions=2",
                   "--restart-condition", "on-failure", drill.DEFAULT_IMAGE, "sh", "-c", "echo report; sleep 2")
    try:
        drill.jobs(manager, "tick", "--now", "2026-12-14T10:04:00Z")
        drill.jobs(manager, "tick", "--now", "2026-12-14T10:05:00Z")
        mode = manager.docker("service", "inspect", "prod_report-job", "--format", "{{json .Spec.Mode}}").stdout
        assert '"ReplicatedJob"' in mode and '"TotalCompletions":2' in mode
        busy = drill.jobs(manager, "tick", "--now", "2026-12-14T10:10:00Z")
        assert "MISSED prod_report" in busy.stderr, "a job still running is not started again"

        def outcome() -> str | None:
            drill.jobs(manager, "tick", "--now", "2026-12-14T10:11:00Z")  # collects the finished run
            return (drill.status(manager).get("prod_report", {}).get("lastRun") or {}).get("status")

        assert drill.wait_for(outcome, "the job to complete", timeout=60, interval=1) == "succeeded"
        completed = manager.docker("service", "ps", "prod_report-job", "--format", "{{.CurrentState}}").stdout
        assert completed.count("Complete") == 2, completed
    finally:
        manager.docker("service", "rm", "prod_report", "prod_report-job", check=False)


def test_a_blank_manager_restored_from_the_raft_backup_has_the_same_services_secrets_and_networks(cluster) -> None:
    manager, blank, server = cluster
    manager.docker("network", "create", "--driver", "overlay", "--attachable", "main_network")
    manager.docker("secret", "create", "db_password", "-", stdin="s3cret")
    manager.docker("service", "create", "--detach", "--no-resolve-image", "--name", "prod_api", "--replicas", "0",
                   "--network", "main_network", "--secret", "db_password", drill.DEFAULT_IMAGE, "sleep", "1d")
    expected = drill.swarm_objects(manager)

    drill.install(manager, server, drill.backups_config(), databases=())
    run = drill.backup_through_scheduler(manager, "backup-swarm-state", "2026-12-20T03:00:00Z")
    assert run["status"] == "succeeded", run
    assert manager.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "active"

    manager.stop_dockerd()  # the old manager is lost
    try:
        drill.restore_swarm_onto(blank, server, drill.backups_config())
        restored = drill.wait_for(lambda: (objects := drill.swarm_objects(blank))["services"] >= expected["services"] and objects,
                                  "the restored swarm's services", timeout=60)
        assert restored == expected
        assert blank.docker("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}").stdout.count("Leader") == 1
    finally:
        manager.start_dockerd()
