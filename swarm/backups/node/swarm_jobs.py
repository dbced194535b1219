#!/usr/bin/env python3
"""Scheduled jobs and backups on a swarm manager.

Installed by the program (components/backups.py) into <dir>/lib with schedule.py, suggest.py
and s3.py, and run by cron every minute as `swarm_jobs.py tick`. Standard library only: it runs
with the manager's own python3.

    tick [--now TIME]        start what is due: scheduled stack-file services (x-schedule) as swarm
                             replicated jobs, and the backups; report missed runs
    run JOB                  run one backup job now, in the foreground (exit status = its result)
    status                   JSON: each job's last run, last successful run and missed runs
    list JOB                 the backups a job has in the bucket, oldest first
    restore-postgres JOB [--at TIME] [--dry-run]
    restore-swarm-state [--at TIME] [--dry-run] [--target /var/lib/docker/swarm]

Guarantees: only the swarm's leader starts anything; a job never runs twice at once (a lock
held for the whole run; a swarm job still running blocks the next); a run whose time passed
while the scheduler was down, or while the previous run was still going, is recorded as missed
and printed; a backup counts as successful only once its upload is verified (size and S3
checksum) and its marker is written. No secret is ever in a command line or a log line: keys
are read from <dir>/secrets.json and <dir>/backup.key (mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3 import S3, multipart_etag  # noqa: E402
from schedule import COMPLETIONS_LABEL, SCHEDULE_LABEL, parse_schedule  # noqa: E402

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (the last part excepted)
TERMINAL = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
MISSED_KEPT = 20
# Inside the database's container: resolve user and database as the postgres image does
# (POSTGRES_USER[_FILE], POSTGRES_DB[_FILE], the database defaulting to the user).
_PG_CREDENTIALS = (
    'u=${POSTGRES_USER:-postgres}; if [ -n "${POSTGRES_USER_FILE:-}" ]; then u=$(cat "$POSTGRES_USER_FILE"); fi; '
    'd=${POSTGRES_DB:-$u}; if [ -n "${POSTGRES_DB_FILE:-}" ]; then d=$(cat "$POSTGRES_DB_FILE"); fi; '
)
# -Fc: pg_dump's custom format, compressed (zlib level 6), one consistent snapshot (one
# repeatable-read transaction), restorable selectively by pg_restore.
PG_DUMP = _PG_CREDENTIALS + 'exec pg_dump -Fc -Z 6 -U "$u" -d "$d"'
PG_RESTORE = _PG_CREDENTIALS + 'exec pg_restore --clean --if-exists --no-owner --single-transaction -U "$u" -d "$d"'


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """`2026-12-03T03:00:00Z`, `2026-12-03 03:00`, `2026-12-03` (UTC unless an offset is given)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def log(message: str) -> None:
    print(f"{iso(utcnow())} {message}", file=sys.stderr, flush=True)


# --- Docker Engine API on the local socket ---------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker(method: str, path: str, body: object = None, query: dict | None = None) -> object:
    connection = _UnixConnection(os.environ.get("SWARM_JOBS_DOCKER_SOCKET", "/var/run/docker.sock"))
    if query:
        path += "?" + urllib.parse.urlencode({k: json.dumps(v) if not isinstance(v, str) else v for k, v in query.items()})
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise RuntimeError(f"docker {method} {path}: HTTP {response.status} {data[:300].decode(errors='replace')}")
    return json.loads(data) if data and response.getheader("Content-Type", "").startswith("application/json") else data


def docker_answers() -> bool:
    try:
        return docker("GET", "/_ping") == b"OK"
    except (OSError, RuntimeError, ValueError):
        return False


def is_leader() -> bool:
    info = docker("GET", "/info")
    swarm = info.get("Swarm") or {}
    if not swarm.get("ControlAvailable"):
        return False
    node = docker("GET", f"/nodes/{swarm['NodeID']}")
    return bool((node.get("ManagerStatus") or {}).get("Leader"))


# --- configuration and state -----------------------------------------------------------------

class Jobs:
    def __init__(self, directory: str):
        self.dir = directory
        with open(os.path.join(directory, "jobs.json"), encoding="utf-8") as file:
            self.config = json.load(file)
        self.by_name = {job["name"]: job for job in self.config["jobs"]}

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def s3(self) -> S3:
        with open(self.path("secrets.json"), encoding="utf-8") as file:
            secrets = json.load(file)
        return S3(self.config["endpoint"], self.config["region"], self.config["bucket"],
                  secrets["accessKeyId"], secrets["secretAccessKey"])

    def mac_key(self) -> bytes:
        with open(self.path("backup.key"), "rb") as file:
            return hashlib.sha256(b"swarm-backup-hmac:" + file.read().strip()).digest()

    @contextlib.contextmanager
    def state(self):
        """The state file, locked for a read-modify-write; written atomically."""
        with open(self.path("state.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path("state.json"), encoding="utf-8") as file:
                    state = json.load(file)
            except (OSError, ValueError):
                state = {}
            state.setdefault("jobs", {})
            yield state
            temporary = self.path("state.json.tmp")
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(state, file, indent=2, sort_keys=True)
            os.replace(temporary, self.path("state.json"))

    def record(self, name: str, **values: object) -> None:
        with self.state() as state:
            job = state["jobs"].setdefault(name, {})
            job.update(values)
            if values.get("lastRun", {}).get("status") == "succeeded":
                job["lastSuccess"] = values["lastRun"]["finished"]

    def lock_path(self, name: str) -> str:
        os.makedirs(self.path("locks"), exist_ok=True)
        return self.path("locks", f"{name}.lock")


def try_lock(path: str, shared: bool = False):
    """An open file holding a non-blocking flock on `path`, or None if someone holds it."""
    handle = open(path, "a")
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


# --- the scheduler ---------------------------------------------------------------------------

def tick(jobs: Jobs, now: dt.datetime) -> int:
    ticking = try_lock(jobs.path("tick.lock"))
    if ticking is None:
        log("tick: the previous tick is still running; this one does nothing")
        return 0
    if not docker_answers() or not is_leader():
        return 0  # Docker stopped (a swarm-state backup) or not the leader: the leader schedules
    templates = docker("GET", "/services", query={"filters": {"label": [SCHEDULE_LABEL]}})
    schedules = {job["name"]: ("host", job, job["schedule"]) for job in jobs.config["jobs"]}
    for service in templates:
        labels = service["Spec"].get("Labels") or {}
        schedules[service["Spec"]["Name"]] = ("service", service, labels[SCHEDULE_LABEL])
    for name, (kind, subject, expression) in sorted(schedules.items()):
        with jobs.state() as state:
            job_state = state["jobs"].setdefault(name, {})
            checked = parse_time(job_state["checked"]) if "checked" in job_state else now - dt.timedelta(seconds=60)
            job_state["checked"] = iso(now)
        if kind == "service":
            collect_service_job(jobs, name)
        due = parse_schedule(expression).runs_between(checked, now)
        for missed in due[:-1]:
            report_missed(jobs, name, missed, "the scheduler did not run at that time")
        if not due:
            continue
        if kind == "host":
            started = start_host_job(jobs, name)
        else:
            started = start_service_job(jobs, subject, due[-1])
        if not started:
            report_missed(jobs, name, due[-1], "the previous run was still running")
    return 0


def report_missed(jobs: Jobs, name: str, when: dt.datetime, why: str) -> None:
    log(f"MISSED {name}: the run due at {iso(when)} did not start: {why}")
    with jobs.state() as state:
        job = state["jobs"].setdefault(name, {})
        job["missed"] = (job.get("missed", []) + [{"due": iso(when), "why": why}])[-MISSED_KEPT:]


def start_host_job(jobs: Jobs, name: str) -> bool:
    """Start `run NAME` in the background, holding the job's lock for its whole life. A database
    dump also gets its shared hold on Docker here, before a swarm-state job started in the same
    tick can stop Docker: dumps due at the same time go first."""
    lock = try_lock(jobs.lock_path(name))
    if lock is None:
        return False
    held = [lock]
    argv = [sys.executable, os.path.abspath(__file__), "--dir", jobs.dir, "run", name, "--locked-fd", str(lock.fileno())]
    if jobs.by_name[name]["kind"] == "postgres" and (docker_lock := try_lock(jobs.lock_path("docker"), shared=True)):
        held.append(docker_lock)
        argv += ["--docker-fd", str(docker_lock.fileno())]
    with open(jobs.path(f"{name}.log"), "ab") as output:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                         pass_fds=tuple(h.fileno() for h in held), start_new_session=True)
    for handle in held:
        handle.close()  # the child holds the locks now
    log(f"started {name}")
    return True


def job_service_name(template: str) -> str:
    return f"{template}-job"


def collect_service_job(jobs: Jobs, template: str) -> str | None:
    """The state of the last job run from `template`: running, succeeded or failed (recorded
    once it is over); None when there is none."""
    name = job_service_name(template)
    services = [s for s in docker("GET", "/services", query={"filters": {"name": [name]}}) if s["Spec"]["Name"] == name]
    if not services:
        return None
    service = services[0]
    tasks = docker("GET", "/tasks", query={"filters": {"service": [service["ID"]]}})
    states = [task["Status"]["State"] for task in tasks]
    if any(state not in TERMINAL for state in states) or not states:
        return "running"
    completions = int((service["Spec"]["Mode"].get("ReplicatedJob") or {}).get("TotalCompletions", 1))
    status = "succeeded" if states.count("complete") >= completions else "failed"
    labels = service["Spec"].get("Labels") or {}
    errors = sorted({task["Status"].get("Err", "") for task in tasks if task["Status"]["State"] != "complete"} - {""})
    with jobs.state() as state:
        job = state["jobs"].setdefault(template, {})
        if job.get("lastRun", {}).get("started") != labels.get("swarm.schedule.run"):
            job["lastRun"] = {"status": status, "started": labels.get("swarm.schedule.run"), "finished": iso(utcnow()),
                              "error": "; ".join(errors)}
            if status == "succeeded":
                job["lastSuccess"] = job["lastRun"]["finished"]
            else:
                log(f"FAILED {template}: {'; '.join(errors) or 'a task did not complete'}")
    return status


def start_service_job(jobs: Jobs, template: dict, due: dt.datetime) -> bool:
    """A swarm replicated job from the template service's spec; False if the last one still runs."""
    name = template["Spec"]["Name"]
    if collect_service_job(jobs, name) == "running":
        return False
    job_name = job_service_name(name)
    for old in docker("GET", "/services", query={"filters": {"name": [job_name]}}):
        if old["Spec"]["Name"] == job_name:
            docker("DELETE", f"/services/{old['ID']}")
    spec = json.loads(json.dumps(template["Spec"]))
    labels = spec.setdefault("Labels", {})
    completions = int(labels.pop(COMPLETIONS_LABEL, "1"))
    labels.pop(SCHEDULE_LABEL, None)
    labels.update({"swarm.schedule.template": name, "swarm.schedule.run": iso(due)})
    spec["Name"] = job_name
    spec["Mode"] = {"ReplicatedJob": {"MaxConcurrent": completions, "TotalCompletions": completions}}
    for key in ("UpdateConfig", "RollbackConfig"):  # swarm refuses them on jobs
        spec.pop(key, None)
    restart = spec.setdefault("TaskTemplate", {}).setdefault("RestartPolicy", {})
    if restart.get("Condition", "any") == "any":
        restart["Condition"] = "on-failure"  # a job's task that succeeded is not run again
    docker("POST", "/services/create", body=spec)
    log(f"started {job_name} (due {iso(due)})")
    return True


# --- backups ---------------------------------------------------------------------------------

def run_job(jobs: Jobs, name: str, locked_fd: int | None, docker_fd: int | None = None) -> int:
    job = jobs.by_name.get(name)
    if job is None:
        log(f"{name}: no such job; the jobs are {', '.join(jobs.by_name)}")
        return 2
    lock = os.fdopen(locked_fd, "a") if locked_fd is not None else try_lock(jobs.lock_path(name))
    if lock is None:
        log(f"{name}: already running (its lock is held); not started twice")
        return 3
    started = utcnow()
    jobs.record(name, running={"started": iso(started), "pid": os.getpid()})
    try:
        result = backup_postgres(jobs, job, docker_fd) if job["kind"] == "postgres" else backup_swarm_state(jobs, job)
    except Exception as error:  # noqa: BLE001  every failure is recorded, then the exit status says it
        traceback.print_exc()
        jobs.record(name, running=None, lastRun={"status": "failed", "started": iso(started), "finished": iso(utcnow()),
                                                  "error": str(error)[:500]})
        log(f"FAILED {name}: {error}")
        return 1
    jobs.record(name, running=None, lastRun={"status": "succeeded", "started": iso(started), "finished": iso(utcnow()), **result})
    log(f"succeeded {name}: {result['object']} ({result['size']} bytes in {result['seconds']:.1f} s)")
    return 0


def database_container(service: str, wait: float = 0) -> str:
    """The running container of `service`'s task on this node; waits up to `wait` seconds for
    one (the task may be restarting, e.g. after Docker was restarted)."""
    deadline = time.monotonic() + wait
    while True:
        containers = docker("GET", "/containers/json",
                            query={"filters": {"label": [f"com.docker.swarm.service.name={service}"], "status": ["running"]}})
        if containers:
            return containers[0]["Id"]
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no running task of {service} on this node: the database must run on this manager")
        time.sleep(1)


def backup_postgres(jobs: Jobs, job: dict, docker_fd: int | None = None) -> dict:
    # Held for the whole dump: a swarm-state backup must not stop Docker meanwhile.
    docker_lock = os.fdopen(docker_fd, "a") if docker_fd is not None else open(jobs.lock_path("docker"), "a")
    with docker_lock:
        fcntl.flock(docker_lock, fcntl.LOCK_SH)
        container = database_container(job["service"], wait=float(jobs.config.get("databaseWaitSeconds", 60)))
        with tempfile.TemporaryFile() as errors:
            dump = subprocess.Popen(["docker", "exec", container, "sh", "-c", PG_DUMP],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
            result = upload_encrypted(jobs, job, dump.stdout, "dump", wait=[dump], errors=errors)
    return {**result, "service": job["service"]}


def backup_swarm_state(jobs: Jobs, job: dict) -> dict:
    """Docker's documented raft backup: /var/lib/docker/swarm copied while this manager's
    Docker is stopped (it must not be written meanwhile), then Docker started again."""
    info = docker("GET", "/info")
    node_id = info["Swarm"]["NodeID"]
    managers = [n for n in docker("GET", "/nodes", query={"filters": {"role": ["manager"]}})]
    reachable = sum(1 for n in managers if (n.get("ManagerStatus") or {}).get("Reachability") == "reachable")
    if len(managers) > 1 and reachable - 1 <= len(managers) // 2:
        raise RuntimeError(f"only {reachable} of {len(managers)} managers are reachable: stopping this one would lose quorum")
    source = jobs.config.get("swarmDir", "/var/lib/docker/swarm")
    with open(jobs.lock_path("docker"), "a") as docker_lock, tempfile.TemporaryFile(dir=jobs.dir) as archive:
        fcntl.flock(docker_lock, fcntl.LOCK_EX)  # no database dump is streaming through Docker
        stopped = time.monotonic()
        subprocess.run(jobs.config.get("dockerStop", "systemctl stop docker"), shell=True, check=True)
        try:
            wait_until(lambda: not docker_answers(), "Docker to stop", 120)
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                tar.add(source, arcname="swarm")
        finally:
            subprocess.run(jobs.config.get("dockerStart", "systemctl start docker"), shell=True, check=True)
            wait_until(docker_answers, "Docker to start", 120)
        downtime = time.monotonic() - stopped
        archive.seek(0)
        result = upload_encrypted(jobs, job, archive, "tar.gz")
    return {**result, "node": node_id, "dockerStoppedSeconds": round(downtime, 1)}


def wait_until(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def upload_encrypted(jobs: Jobs, job: dict, source, suffix: str, wait=(), errors=None) -> dict:
    """Encrypt `source` (a binary stream) with openssl (AES-256-CBC, key from a file: never on a
    command line), stream it to the bucket in parts, then verify the upload: the object's size
    and S3 ETag must be what was sent. Encrypt-then-MAC: an HMAC-SHA256 of the ciphertext is in
    the manifest, so a restore refuses a backup that was altered."""
    started = time.monotonic()
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    key = f"{job['prefix']}{stamp}.{suffix}.enc"
    encrypt = subprocess.Popen(
        ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-iter", "100000", "-salt", "-pass", f"file:{jobs.path('backup.key')}"],
        stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if hasattr(source, "close") and wait:
        source.close()  # the producer's pipe now belongs to openssl alone
    s3 = jobs.s3()
    upload_id = s3.create_multipart(key)
    sha, mac, md5s, etags, size = hashlib.sha256(), hmac.new(jobs.mac_key(), digestmod=hashlib.sha256), [], [], 0
    try:
        while True:
            part = encrypt.stdout.read(PART_BYTES)
            if not part and md5s:
                break
            sha.update(part)
            mac.update(part)
            md5s.append(hashlib.md5(part).digest())
            etags.append(s3.upload_part(key, upload_id, len(md5s), part))
            size += len(part)
            if not part:
                break
        failures = [f"openssl exited {encrypt.wait()}: {encrypt.stderr.read().decode(errors='replace')[-300:]}"] if encrypt.wait() else []
        for process in wait:
            if process.wait():
                detail = ""
                if errors is not None:
                    errors.seek(0)
                    detail = errors.read().decode(errors="replace")[-500:]
                failures.append(f"{process.args[0]} {process.args[1]} exited {process.returncode}: {detail.strip()}")
        if failures:
            raise RuntimeError("; ".join(failures))
        s3.complete_multipart(key, upload_id, etags)
    except BaseException:
        with contextlib.suppress(Exception):
            s3.abort_multipart(key, upload_id)
        raise
    seconds = time.monotonic() - started
    head = s3.head(key)
    expected = multipart_etag(md5s)
    if head is None or int(head.get("content-length", -1)) != size or head.get("etag", "").strip('"') != expected:
        raise RuntimeError(f"verification failed for {key}: stored {head and head.get('content-length')} bytes, "
                           f"ETag {head and head.get('etag')}; sent {size} bytes, ETag {expected}")
    manifest = {"object": key, "size": size, "sha256": sha.hexdigest(), "hmac": mac.hexdigest(), "etag": expected,
                "created": iso(utcnow()), "job": job["name"], "seconds": round(seconds, 2),
                "encryption": "openssl enc -aes-256-cbc -pbkdf2 -iter 100000", "verified": True}
    body = json.dumps(manifest, indent=2).encode()
    s3.put(f"{key}.json", body, "application/json")
    s3.put(f"{job['prefix']}latest.json", body, "application/json")  # the last successful backup
    prune(jobs, s3, job)
    return {"object": key, "size": size, "seconds": round(seconds, 2), "sha256": manifest["sha256"]}


def prune(jobs: Jobs, s3: S3, job: dict) -> None:
    """Keep the newest `keep` verified backups of the job (names sort by time)."""
    manifests = [o["key"] for o in s3.list(job["prefix"]) if o["key"].endswith(".enc.json")]
    for manifest in manifests[: -int(jobs.config["keep"])]:
        s3.delete(manifest[: -len(".json")])
        s3.delete(manifest)


# --- restores --------------------------------------------------------------------------------

def backups_of(jobs: Jobs, job: dict) -> list[dict]:
    s3 = jobs.s3()
    return [json.loads(s3.get(o["key"])) for o in s3.list(job["prefix"]) if o["key"].endswith(".enc.json")]


def choose(jobs: Jobs, job: dict, at: str | None) -> dict:
    backups = backups_of(jobs, job)
    if at:
        limit = parse_time(at)
        backups = [b for b in backups if parse_time(b["created"]) <= limit]
    if not backups:
        raise SystemExit(f"{job['name']}: no backup in the bucket{' at or before ' + at if at else ''}")
    return backups[-1]


def fetch_verified(jobs: Jobs, backup: dict, into) -> None:
    """Download a backup into a file and check its size, SHA-256 and HMAC before any use."""
    sha, mac, size = hashlib.sha256(), hmac.new(jobs.mac_key(), digestmod=hashlib.sha256), 0
    for block in jobs.s3().stream(backup["object"]):
        sha.update(block)
        mac.update(block)
        size += len(block)
        into.write(block)
    into.flush()
    into.seek(0)
    if size != backup["size"] or sha.hexdigest() != backup["sha256"] or not hmac.compare_digest(mac.hexdigest(), backup["hmac"]):
        raise SystemExit(f"{backup['object']}: size, checksum or HMAC differ from its manifest; refusing to restore it")


def decrypt(jobs: Jobs, source, sink) -> subprocess.Popen:
    return subprocess.Popen(
        ["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "100000", "-pass", f"file:{jobs.path('backup.key')}"],
        stdin=source, stdout=sink, stderr=subprocess.PIPE,
    )


def announce(jobs: Jobs, job: dict, at: str | None, target: str, dry_run: bool) -> dict | None:
    """Print the backup a restore would use and where it goes; None on a dry run."""
    backup = choose(jobs, job, at)
    print(f"backup: {backup['object']} ({backup['size']} bytes, taken {backup['created']})")
    print(f"target: {target}")
    if dry_run:
        print("dry run: nothing restored")
        return None
    return backup


def restore_postgres(jobs: Jobs, name: str, at: str | None, dry_run: bool) -> int:
    job = jobs.by_name[name]
    backup = announce(jobs, job, at, f"{job['service']} (pg_restore --clean --if-exists --single-transaction)", dry_run)
    if backup is None:
        return 0
    started = time.monotonic()
    container = database_container(job["service"], wait=60)
    with tempfile.TemporaryFile(dir=jobs.dir) as encrypted:
        fetch_verified(jobs, backup, encrypted)
        restore = subprocess.Popen(["docker", "exec", "-i", container, "sh", "-c", PG_RESTORE],
                                   stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        plain = decrypt(jobs, encrypted, restore.stdin)
        restore.stdin.close()
        if plain.wait() or restore.wait():
            raise SystemExit(f"restore failed: {plain.stderr.read().decode(errors='replace')[-300:]} "
                             f"{restore.stderr.read().decode(errors='replace')[-800:]}")
    print(f"restored in {time.monotonic() - started:.1f} s")
    return 0


def restore_swarm_state(jobs: Jobs, at: str | None, dry_run: bool, target: str) -> int:
    job = next(j for j in jobs.config["jobs"] if j["kind"] == "swarm-state")
    backup = announce(jobs, job, at, f"{target} (Docker must be stopped; then `docker swarm init --force-new-cluster`)", dry_run)
    if backup is None:
        return 0
    if docker_answers():
        raise SystemExit("Docker is running on this node: stop it first (systemctl stop docker)")
    if os.path.exists(target) and os.listdir(target):
        raise SystemExit(f"{target} is not empty: this is not a blank manager; move it aside first")
    with tempfile.TemporaryFile(dir=jobs.dir) as encrypted, tempfile.TemporaryFile(dir=jobs.dir) as archive:
        fetch_verified(jobs, backup, encrypted)
        plain = decrypt(jobs, encrypted, archive)
        if plain.wait():
            raise SystemExit(f"decryption failed: {plain.stderr.read().decode(errors='replace')[-300:]}")
        archive.seek(0)
        parent = os.path.dirname(os.path.abspath(target))
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            tar.extractall(parent, filter="tar") if hasattr(tarfile, "tar_filter") else tar.extractall(parent)
    print(f"restored {target}; now start Docker and run `docker swarm init --force-new-cluster --advertise-addr <this node's VPC address>`")
    return 0


def status(jobs: Jobs) -> dict:
    with jobs.state() as state:
        recorded = state["jobs"]
    return {name: {key: recorded.get(name, {}).get(key) for key in ("lastSuccess", "lastRun", "missed", "running")}
            for name in sorted({*jobs.by_name, *recorded})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swarm_jobs.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="the jobs folder (jobs.json, secrets.json, backup.key, state); default: this file's parent's parent")
    commands = parser.add_subparsers(dest="command", required=True)
    ticking = commands.add_parser("tick", help="start what is due (cron runs this every minute)")
    ticking.add_argument("--now", help="the time to act as (tests)")
    running = commands.add_parser("run", help="run one backup job now")
    running.add_argument("job")
    running.add_argument("--locked-fd", type=int, help=argparse.SUPPRESS)
    running.add_argument("--docker-fd", type=int, help=argparse.SUPPRESS)
    commands.add_parser("status", help="each job's last run, last success and missed runs, as JSON")
    listing = commands.add_parser("list", help="a job's backups in the bucket")
    listing.add_argument("job")
    restoring = commands.add_parser("restore-postgres", help="restore a database from its backup")
    restoring.add_argument("job")
    restoring.add_argument("--at", help="the latest backup taken at or before this time (UTC)")
    restoring.add_argument("--dry-run", action="store_true")
    raft = commands.add_parser("restore-swarm-state", help="restore the swarm state onto this (blank, stopped) manager")
    raft.add_argument("--at")
    raft.add_argument("--dry-run", action="store_true")
    raft.add_argument("--target", default="/var/lib/docker/swarm")
    args = parser.parse_args(argv)
    jobs = Jobs(args.dir)
    if args.command == "tick":
        return tick(jobs, parse_time(args.now) if args.now else utcnow())
    if args.command == "run":
        return run_job(jobs, args.job, args.locked_fd, args.docker_fd)
    if args.command == "status":
        print(json.dumps(status(jobs), indent=2, sort_keys=True))
        return 0
    if args.command == "list":
        for backup in backups_of(jobs, jobs.by_name[args.job]):
            print(f"{backup['created']}  {backup['size']:>12}  {backup['object']}")
        return 0
    if args.command == "restore-postgres":
        return restore_postgres(jobs, args.job, args.at, args.dry_run)
    return restore_swarm_state(jobs, args.at, args.dry_run, args.target)


if __name__ == "__main__":
    sys.exit(main())
