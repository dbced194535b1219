"""The restore drill: real PostgreSQL (Debian's package) as a swarm service on a sandbox manager,
a real S3 API server (moto's, from PyPI) on the sandbox bridge, and the scheduler installed by
the very script the program runs (swarm.backups.scripts.install_script).

The sandbox has no registry: the database's task runs the busybox image with the host's
PostgreSQL bind-mounted read-only (/usr, /lib, /lib64, /etc/passwd), as the same major version
a `postgres:15` image would have; the backup job reaches it with `docker exec`, as on a droplet.
Used by tests/sandbox/test_backups.py (assertions) and scripts/bench_backups.py (figures).
"""

from __future__ import annotations

import atexit
import json
import pwd
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from swarm.backups import DatabaseBackup, jobs_document
from swarm.backups.node.s3 import S3
from swarm.backups.scripts import install_script
from swarm.config import Backups
from tests.sandbox.harness import DEFAULT_IMAGE, Host, Sandbox, wait_for

JOBS_DIR = "/var/lib/swarm-jobs"  # where the program installs it; each sandbox host has its own /var
# Debian's PostgreSQL (the newest installed major version), bind-mounted into the database's task.
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default=Path("/usr/lib/postgresql/15/bin"))
BUCKET = "drill-backups"
ACCESS_KEY, SECRET_KEY = "drill-access", "drill-secret-not-used-elsewhere"
ENCRYPTION_KEY = "drill-encryption-key-0123456789abcdef0123456789"
DATABASE = "prod_database"
# The sandbox host's dockerd: stopped and started as Host.stop_dockerd/start_dockerd do.
# Stopping returns once dockerd has exited, as `systemctl stop` does: the copy must not start
# while dockerd still writes its raft log, and a new dockerd refuses to start beside the old one.
DOCKER_STOP = 'pid=$(cat /run/docker.pid) && kill "$pid" && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done'
DOCKER_START = "setsid dockerd </dev/null >>/run/dockerd-restart.log 2>&1 &"


class S3Server:
    """moto's S3 server on the sandbox bridge's address (reachable from the hosts only)."""

    def __init__(self, address: str):
        with socket.socket() as probe:  # a free port: a server left by a killed run is not reused
            probe.bind((address, 0))
            self.address, self.port = address, probe.getsockname()[1]
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", address, "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        atexit.register(self.close)  # also when the run is interrupted
        wait_for(self._answers, "the S3 server", timeout=30)

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}"

    def client(self) -> S3:
        return S3(self.endpoint, "fra1", BUCKET, ACCESS_KEY, SECRET_KEY)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("moto_server exited; is moto[server] installed (requirements-dev.txt)?")
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex((self.address, self.port)) == 0

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def backups_config(swarm_state: bool = True, keep: int = 3) -> Backups:
    return Backups(bucket=BUCKET, region="fra1", schedule="0 3 * * *", keep=keep, databases=("database",),
                   swarm_state=swarm_state)


def install(manager: Host, s3: S3Server, backups: Backups, databases: tuple[str, ...] = ("database",),
            claim_delay: float = 20) -> dict:
    """The scheduler, as the program installs it, with the drill's endpoint and Docker commands.
    (Installing again keeps the state, as a second `pulumi up` does.) `claim_delay`: how long a
    manager that is not the first choice for a run waits before claiming it."""
    jobs = jobs_document(backups, "prod", [DatabaseBackup(name, f"backup-{name}") for name in databases],
                         jobs_dir=JOBS_DIR, endpoint=s3.endpoint, docker_stop=DOCKER_STOP, docker_start=DOCKER_START)
    jobs["databaseWaitSeconds"] = 5  # how long a dump waits for a restarting database task
    jobs["claimDelaySeconds"] = claim_delay
    keys = json.dumps({"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "encryptionKey": ENCRYPTION_KEY})
    manager.ssh(install_script(jobs, cron=False), stdin=keys)
    return jobs


def jobs(host: Host, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return host.ssh(shlex.join(["python3", f"{JOBS_DIR}/lib/swarm_jobs.py", "--dir", JOBS_DIR, *args]),
                    check=check, timeout=timeout)


def status(host: Host) -> dict:
    return json.loads(jobs(host, "status").stdout)


def start_database(manager: Host, constraint: str = "node.role == manager") -> None:
    """Debian's PostgreSQL 15 as the swarm service prod_database, data in the manager's /mnt
    (`constraint`: where it runs; that node must be `manager`)."""
    manager.ssh("mkdir -p /mnt/postgresql/data && chown postgres:postgres /mnt/postgresql/data && chmod 0700 /mnt/postgresql/data")
    # What the postgres image's entrypoint does on an empty data directory: initdb, then POSTGRES_DB.
    init = ("[ -s /data/PG_VERSION ] || { initdb -D /data --auth-local=trust -U app >/dev/null && "
            "echo 'create database app;' | postgres --single -D /data postgres >/dev/null; }; "
            "exec postgres -D /data -k /tmp -c listen_addresses=''")
    binds = ["/usr:/usr:ro", "/usr/lib:/lib:ro", "/usr/lib64:/lib64:ro", "/etc/passwd:/etc/passwd:ro",
             "/etc/group:/etc/group:ro", "/mnt/postgresql/data:/data"]
    argv = ["docker", "service", "create", "--detach", "--no-resolve-image", "--name", DATABASE,
            "--label", "com.docker.stack.namespace=prod", "--constraint", constraint,
            # Numeric: Docker looks the user up in the image (busybox has no postgres user).
            "--user", f"{pwd.getpwnam('postgres').pw_uid}:{pwd.getpwnam('postgres').pw_gid}", "--mount", "type=tmpfs,target=/tmp",
            "--env", f"PATH={PG_BIN}:/bin", "--env", "PGHOST=/tmp", "--env", "POSTGRES_USER=app",
            "--env", "LANG=C", *[arg for bind in binds for arg in ("--mount", _bind(bind))],
            DEFAULT_IMAGE, "sh", "-c", init]
    manager.ssh(shlex.join(argv))
    wait_for(lambda: psql(manager, "select 1", check=False).strip() == "1", "PostgreSQL to answer", timeout=90)


def _bind(spec: str) -> str:
    source, target, *mode = spec.split(":")
    return f"type=bind,source={source},target={target}" + (",readonly" if mode else "")


def container(manager: Host) -> str:
    return manager.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={DATABASE}").stdout.strip()


def psql(manager: Host, sql: str, check: bool = True) -> str:
    ctr = container(manager)
    if not ctr:
        return ""
    result = manager.docker("exec", ctr, "psql", "-U", "app", "-d", "app", "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql,
                            check=check)
    return result.stdout


def write_rows(manager: Host, rows: int) -> None:
    psql(manager, "create table if not exists drill (id bigint primary key, payload text, at timestamptz default now())")
    psql(manager, f"insert into drill (id, payload) select i, md5(i::text) || repeat(md5((i * 7)::text), 6) "
                  f"from generate_series(1, {rows}) as i")


def fingerprint(manager: Host) -> str:
    """Row count and a digest of every row, in order: equal only if the data is the same."""
    return psql(manager, "select count(*) || ' ' || md5(string_agg(id || ':' || payload || ':' || at, ',' order by id)) from drill").strip()


def database_bytes(manager: Host) -> int:
    return int(psql(manager, "select pg_database_size('app')").strip())


def destroy_database(manager: Host) -> None:
    """The data is gone: service removed, data directory wiped; a fresh, empty database starts."""
    manager.docker("service", "rm", DATABASE)
    wait_for(lambda: not container(manager), "the database task to stop", timeout=60)
    manager.ssh("rm -rf /mnt/postgresql/data")
    start_database(manager)


def backup_through_scheduler(manager: Host, job: str, due: str) -> dict:
    """Tick one minute before `due` and at `due` (the scheduler then starts the job), and wait
    for the run to finish; return its record."""
    before = status(manager).get(job, {}).get("lastRun")
    jobs(manager, "tick", "--now", _minus_minute(due))
    jobs(manager, "tick", "--now", due)
    record = wait_for(lambda: _finished(manager, job, before), f"{job} to finish", timeout=900, interval=1)
    return record


def _finished(manager: Host, job: str, before: dict | None) -> dict | None:
    state = status(manager).get(job, {})
    run = state.get("lastRun")
    return run if run and run != before and not state.get("running") else None


def _minus_minute(when: str) -> str:
    import datetime as dt
    moment = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) - dt.timedelta(minutes=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def swarm_objects(manager: Host) -> dict[str, set[str]]:
    def names(kind: str) -> set[str]:
        return set(manager.docker(kind, "ls", "--format", "{{.Name}}").stdout.split())
    return {"services": names("service"), "secrets": names("secret"),
            "networks": {n for n in names("network") if n not in ("bridge", "host", "none", "docker_gwbridge")}}


def restore_swarm_onto(blank: Host, s3: S3Server, backups: Backups) -> float:
    """Docker's procedure on a new manager: Docker stopped, the raft backup restored into
    /var/lib/docker/swarm, Docker started, `docker swarm init --force-new-cluster`."""
    install(blank, s3, backups, databases=())
    started = time.monotonic()
    blank.stop_dockerd()
    jobs(blank, "restore-swarm-state")
    blank.start_dockerd()
    blank.docker("swarm", "init", "--force-new-cluster", "--advertise-addr", blank.ip)
    return time.monotonic() - started


def sandbox_hosts(sandbox: Sandbox) -> tuple[Host, Host]:
    manager, blank = sandbox.add_hosts(["prod-manager-1", "prod-manager-new"])
    sandbox.load_image()
    manager.docker("swarm", "init", "--advertise-addr", manager.ip)
    return manager, blank
