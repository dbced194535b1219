"""What the scheduler (swarm_jobs.py) and its restores (jobs_restore.py) need on a manager:
UTC times and the log, Docker's Engine API on the local socket, the jobs folder (jobs.json,
secrets.json, backup.key, state.json) and its locks. Standard library only, shipped byte for
byte beside swarm_jobs.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.parse

from claims import Claims
from s3 import S3

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


def this_manager() -> dict | None:
    """This node as a manager of the swarm: its ID, hostname, whether it leads, the managers'
    count and the nodes that are up; None on a worker or a node outside any swarm."""
    swarm = docker("GET", "/info").get("Swarm") or {}
    if not swarm.get("ControlAvailable"):
        return None
    nodes = docker("GET", "/nodes")
    me = next(node for node in nodes if node["ID"] == swarm["NodeID"])
    return {"id": me["ID"], "hostname": me["Description"]["Hostname"],
            "leader": bool((me.get("ManagerStatus") or {}).get("Leader")),
            "managers": sum(1 for node in nodes if node.get("ManagerStatus")),
            "ready": {node["ID"] for node in nodes if (node.get("Status") or {}).get("State") == "ready"}}


def local_task(service: str) -> bool:
    """Whether a task of `service` runs on this node (a database the backup must reach)."""
    return bool(docker("GET", "/containers/json", query={"filters": {"label": [f"com.docker.swarm.service.name={service}"],
                                                                        "status": ["running"]}}))


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

    def claims(self) -> Claims:
        return Claims(docker)

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


def wait_until(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)
