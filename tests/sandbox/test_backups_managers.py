"""Jobs do not depend on which manager leads (issue 20): three managers, each with the
scheduler installed as the program installs it (every manager; cron played by ticking all three
at the same time), the database pinned to the first manager, leadership moved off it. Each
backup period gives exactly one backup of the database and one of the swarm state, wherever they
ran, and no run starts twice. Hosts of their own (prefix bkmg); moto's S3 stands in for Spaces
(tests/sandbox/backup_drill.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.sandbox import backup_drill as drill
from tests.sandbox.harness import Host, Sandbox, wait_for

PREFIX = "bkmg"
SUBNET = "10.233.118.0/24"
NAMES = ("prod-manager-1", "prod-control-1", "prod-control-2")
PERIODS = ("2026-12-01T03:00:00Z", "2026-12-02T03:00:00Z", "2026-12-03T03:00:00Z")
JOBS = ("backup-database", "backup-swarm-state")


@pytest.fixture(scope="module")
def managers(sandbox_workdir) -> Iterator[tuple[list[Host], drill.S3Server]]:
    if not (drill.PG_BIN / "postgres").exists():
        pytest.fail("Debian's PostgreSQL is missing: apt-get install postgresql (.ci/run does)", pytrace=False)
    with Sandbox(sandbox_workdir / "backups-managers", subnet=SUBNET, prefix=PREFIX) as sandbox:
        hosts = sandbox.add_hosts(list(NAMES))
        sandbox.load_image()
        first = hosts[0]
        first.docker("swarm", "init", "--advertise-addr", first.ip)
        token = first.docker("swarm", "join-token", "-q", "manager").stdout.strip()
        for host in hosts[1:]:
            host.docker("swarm", "join", "--token", token, f"{first.ip}:2377")
        server = drill.S3Server(sandbox.gateway)
        try:
            server.client().create_bucket()
            drill.start_database(first, constraint=f"node.hostname == {first.name}")
            drill.write_rows(first, 1000)
            for host in hosts:  # every manager, as the program installs it
                drill.install(host, server, drill.backups_config(keep=5), claim_delay=3)
            yield hosts, server
        finally:
            server.close()


def leader(host: Host) -> str:
    listing = host.docker("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}").stdout
    return next((line.split()[0] for line in listing.splitlines() if line.endswith("Leader")), "")


def move_leadership_off(first: Host, others: list[Host]) -> str:
    """Demote the leader (the first manager, which initialised the swarm) and promote it again:
    leadership moves to another manager, as after a handover or a Docker restart."""
    assert leader(others[0]) == first.name
    others[0].docker("node", "demote", first.name)
    wait_for(lambda: leader(others[0]) not in ("", first.name), "another manager to lead", timeout=60)
    others[0].docker("node", "promote", first.name)
    wait_for(lambda: first.docker("info", "--format", "{{.Swarm.ControlAvailable}}", check=False).stdout.strip() == "true",
             "the first manager to be a manager again", timeout=60)
    # ControlAvailable turns true before the promoted node's raft member answers: until then its
    # API answers 503 (no control socket), as it would for a tick cron fires in that second.
    wait_for(lambda: first.docker("node", "ls", check=False).returncode == 0, "the first manager's API to answer", timeout=60)
    return leader(others[0])


def claims(host: Host) -> list[dict]:
    """The runs recorded in the swarm: the claims' labels."""
    ids = host.docker("config", "ls", "-q", "--filter", "label=swarm.jobs.job").stdout.split()
    if not ids:
        return []
    configs = json.loads(host.docker("config", "inspect", *ids).stdout)
    return [{**json.loads(c["Spec"]["Labels"]["swarm.jobs.run"]), "job": c["Spec"]["Labels"]["swarm.jobs.job"],
             "due": c["Spec"]["Labels"]["swarm.jobs.due"]} for c in configs]


def tick_everywhere(hosts: list[Host], now: str) -> list[str]:
    """Cron fires on every manager at once: each one's tick, side by side."""
    with ThreadPoolExecutor(len(hosts)) as pool:
        results = list(pool.map(lambda h: drill.jobs(h, "tick", "--now", now, check=False), hosts))
    for host, result in zip(hosts, results):
        assert result.returncode == 0, f"{host.name}: {result.stderr}"
    return [result.stderr for result in results]


def test_three_periods_with_the_leader_elsewhere_give_three_backups_each_run_once(managers) -> None:
    hosts, server = managers
    first, *others = hosts
    new_leader = move_leadership_off(first, others)
    assert new_leader != first.name

    for due in PERIODS:
        tick_everywhere(hosts, drill._minus_minute(due))
        logs = tick_everywhere(hosts, due)
        for job in JOBS:
            starts = sum(log.count(f"started {job}") for log in logs)
            assert starts == 1, f"{job} due {due}: started {starts} times across the managers:\n" + "\n".join(logs)
        # Cron fires again while the runs go on (a second tick of the same minute): nothing starts twice.
        again = tick_everywhere([h for h in hosts if h.docker("info", check=False).returncode == 0], due)
        assert not any("started" in log for log in again), again

        def over(due: str = due) -> list[dict] | None:
            try:
                runs = [c for c in claims(others[0]) if c["due"] == due]
            except Exception:  # noqa: BLE001 - a manager restarting Docker (the swarm-state backup)
                return None
            return runs if len(runs) == len(JOBS) and all(c["status"] != "running" for c in runs) else None

        runs = wait_for(over, f"the runs due at {due} to finish", timeout=180, interval=2)
        assert {c["job"]: c["status"] for c in runs} == {job: "succeeded" for job in JOBS}, runs
        by_job = {c["job"]: c for c in runs}
        assert by_job["backup-database"]["node"] == first.name, "a database is backed up where its task runs"
        assert by_job["backup-swarm-state"]["node"] not in (first.name, new_leader), \
            "the swarm state is copied on a follower that runs no database: leadership and the database stay"

    for prefix in ("prod/postgres/database/", "prod/swarm-state/"):
        stored = [o["key"] for o in server.client().list(prefix) if o["key"].endswith(".enc")]
        assert len(stored) == len(PERIODS), f"{prefix}: {stored}"
    # Never two at once: each job's runs, in time, do not overlap.
    for job in JOBS:
        spans = sorted((c["started"], c["finished"]) for c in claims(others[0]) if c["job"] == job)
        assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans
    # The status, read on any manager (the program reads it on the first), reports the runs
    # wherever they ran.
    for host in (first, others[1]):
        status = drill.status(host)
        assert {job: status[job]["lastRun"]["status"] for job in JOBS} == {job: "succeeded" for job in JOBS}
        assert status["backup-swarm-state"]["lastRun"]["node"] == by_job["backup-swarm-state"]["node"]


def test_a_run_due_while_no_manager_ticked_is_reported_once_as_missed(managers) -> None:
    hosts, _ = managers
    time.sleep(1)
    # The managers' cron did not run for two days: each manager's next tick sees the runs in
    # between; they are recorded once, cluster-wide, as missed.
    logs = tick_everywhere(hosts, "2026-12-06T03:00:30Z")
    for due in ("2026-12-04T03:00:00Z", "2026-12-05T03:00:00Z"):
        reports = sum(log.count(f"MISSED backup-database: the run due at {due}") for log in logs)
        assert reports == 1, logs
    missed = [m["due"] for m in drill.status(hosts[2])["backup-database"]["missed"]]
    assert {"2026-12-04T03:00:00Z", "2026-12-05T03:00:00Z"} <= set(missed)
    wait_for(lambda: all(c["status"] != "running" for c in claims(hosts[1])), "the last runs to finish", timeout=180)
