"""Claims: the cluster-wide record of scheduled runs, kept in the swarm's raft store.

The scheduler is installed on every manager and cron ticks it on each of them, so that jobs run
whichever manager leads, is up or was just replaced. A run happens once per job and scheduled
time cluster-wide: before starting it, a manager creates a swarm *config* named after the job
and the time the run was due (its claim). Swarm refuses a second object of the same name (HTTP
409, decided by the raft leader), so of the managers whose cron fires for that time exactly one
creates the claim and runs the job; the others see the conflict and do nothing. Without quorum
no claim can be created and nothing runs (and the next tick reports the run as missed).

A claim's labels record the run (`swarm.jobs.run`, JSON: node, status, times, error, result);
a config's labels are the one part of it swarm lets change, so the manager that ran the job
writes its outcome there. `status` reads every claim, so it reports each job's last runs
wherever they ran. Old claims are pruned (`KEEP_CLAIMS` per job).

Pure functions (names, labels, the status merge, what blocks a run): unit-tested in
tests/unit/backups/test_claims.py. Standard library only: installed beside swarm_jobs.py on the
managers, byte for byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re

PREFIX = "swarm-jobs"
JOB_LABEL = "swarm.jobs.job"  # the job's name; also the filter that lists claims
DUE_LABEL = "swarm.jobs.due"  # the scheduled time the claim is for (UTC, ISO)
RUN_LABEL = "swarm.jobs.run"  # JSON: node, nodeId, status, started, finished, error, why, ...
STATUSES = ("running", "succeeded", "failed", "missed")
KEEP_CLAIMS = 50  # per job: the status reads the last runs from them
MISSED_KEPT = 20
# Swarm object names: 64 characters of [a-zA-Z0-9-_.], starting and ending with a letter or digit.
_NAME_LIMIT = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def stamp(due: dt.datetime) -> str:
    """`2026-12-03T03:00Z` -> `20261203T0300Z` (runs are scheduled to the minute)."""
    return due.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim_name(job: str, due: dt.datetime) -> str:
    """The claim's config name: readable (`swarm-jobs.backup-database.20261203T0300Z`), or with a
    digest of the job's name in its place when that name is too long or not a valid swarm name."""
    name = f"{PREFIX}.{job}.{stamp(due)}"
    if _UNSAFE.search(job) or not job[:1].isalnum() or len(name) > _NAME_LIMIT:
        name = f"{PREFIX}.{hashlib.sha256(job.encode()).hexdigest()[:16]}.{stamp(due)}"
    return name


def claim_spec(job: str, due: dt.datetime, run: dict) -> dict:
    """The Engine API body that creates the claim for `job`'s run due at `due`."""
    return {
        "Name": claim_name(job, due),
        "Labels": {JOB_LABEL: job, DUE_LABEL: iso(due), RUN_LABEL: json.dumps(run, sort_keys=True)},
        "Data": base64.b64encode(json.dumps({"job": job, "due": iso(due)}).encode()).decode(),
    }


def record_of(config: dict) -> dict | None:
    """The run a claim (a config as the Engine API lists it) records, with `job`, `due`, `id`
    and `version` added; None for a config that is not a claim."""
    spec = config.get("Spec") or {}
    labels = spec.get("Labels") or {}
    if JOB_LABEL not in labels or DUE_LABEL not in labels:
        return None
    try:
        run = json.loads(labels.get(RUN_LABEL) or "{}")
    except ValueError:
        run = {}
    if not isinstance(run, dict):
        run = {}
    return {**run, "job": labels[JOB_LABEL], "due": labels[DUE_LABEL], "id": config.get("ID"),
            "version": (config.get("Version") or {}).get("Index")}


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def blocking_run(records: list[dict], job: str, now: dt.datetime, ready_nodes: set[str],
                 stale_seconds: float = 3600) -> dict | None:
    """A run of `job` still going somewhere, which a new run must not overlap: a claim `running`
    on a node that is up (Ready), or one that started less than `stale_seconds` ago (its node
    may be restarting Docker: the swarm-state backup). A running claim of a node gone longer
    than that no longer blocks: its run died with the node."""
    for record in sorted(records, key=lambda r: r.get("due", ""), reverse=True):
        if record.get("job") != job or record.get("status") != "running":
            continue
        started = _time(record.get("started"))
        if record.get("nodeId") in ready_nodes or (started is not None and (now - started).total_seconds() < stale_seconds):
            return record
    return None


def prunable(records: list[dict], keep: int = KEEP_CLAIMS) -> list[str]:
    """Config IDs of the claims beyond the newest `keep` of each job (never a running one)."""
    by_job: dict[str, list[dict]] = {}
    for record in records:
        by_job.setdefault(record["job"], []).append(record)
    old = []
    for runs in by_job.values():
        runs.sort(key=lambda r: r.get("due", ""))
        old += [r["id"] for r in runs[:-keep] if r.get("status") != "running" and r.get("id")]
    return old


_RUN_KEYS = ("status", "started", "finished", "error", "node", "due", "object", "size", "seconds", "sha256",
             "service", "dockerStoppedSeconds")


def merge_status(names: list[str], local: dict, records: list[dict]) -> dict:
    """Each job's status, as `swarm_jobs.py status` prints it: lastSuccess, lastRun, missed and
    running, from the claims (every manager's runs) and this manager's own state (`local`: its
    state.json's jobs, which also holds runs started by hand and those from before claims)."""
    status = {}
    for name in sorted({*names, *local, *(r["job"] for r in records)}):
        mine = local.get(name, {})
        claims = [r for r in records if r["job"] == name]
        finished = [{k: r[k] for k in _RUN_KEYS if r.get(k) is not None}
                    for r in claims if r.get("status") in ("succeeded", "failed")]
        if mine.get("lastRun"):
            finished.append(mine["lastRun"])
        last_run = max(finished, key=lambda r: (r.get("started") or "", r.get("finished") or ""), default=None)
        successes = [r.get("finished") for r in finished if r.get("status") == "succeeded"] + [mine.get("lastSuccess")]
        last_success = max((s for s in successes if s), default=None)
        missed = {m["due"]: m for m in mine.get("missed") or []}
        for r in claims:
            if r.get("status") == "missed":
                missed[r["due"]] = {"due": r["due"], "why": r.get("why", ""), **({"node": r["node"]} if r.get("node") else {})}
        running = [r for r in claims if r.get("status") == "running"]
        current = max(running, key=lambda r: r["due"], default=None)
        status[name] = {
            "lastSuccess": last_success,
            "lastRun": last_run,
            "missed": [missed[due] for due in sorted(missed)][-MISSED_KEPT:] or None,
            "running": ({"started": current.get("started"), "node": current.get("node"), "due": current["due"]}
                        if current else mine.get("running")),
        }
    return status


class Claims:
    """The claims in the swarm, through the scheduler's Engine API client `docker(method, path,
    body=None, query=None)`, which raises RuntimeError with the HTTP status on a refusal."""

    def __init__(self, docker):
        self.docker = docker

    def list(self) -> list[dict]:
        configs = self.docker("GET", "/configs", query={"filters": {"label": [JOB_LABEL]}})
        return [record for record in map(record_of, configs) if record is not None]

    def create(self, job: str, due: dt.datetime, run: dict) -> bool:
        """True when this call created the claim (the run is ours), False when it exists."""
        try:
            self.docker("POST", "/configs/create", body=claim_spec(job, due, run))
        except RuntimeError as error:
            if "HTTP 409" in str(error):
                return False
            raise
        return True

    def update(self, job: str, due: dt.datetime, *, only_running: bool = False, **changes: object) -> None:
        """Merge `changes` into the run the claim records (its labels; a concurrent update, by
        another manager collecting the same swarm job, is read again and merged). `only_running`:
        leave a run already recorded as over alone."""
        error: Exception | None = None
        for _ in range(5):
            config = self.docker("GET", f"/configs/{claim_name(job, due)}")
            record = record_of(config) or {}
            if only_running and record.get("status") != "running":
                return
            run = {key: value for key, value in record.items() if key not in ("job", "due", "id", "version")}
            run.update(changes)
            spec = config["Spec"]
            spec["Labels"][RUN_LABEL] = json.dumps(run, sort_keys=True)
            try:
                self.docker("POST", f"/configs/{config['ID']}/update", body=spec,
                            query={"version": str(config["Version"]["Index"])})
                return
            except RuntimeError as refused:  # update out of sequence: read it again
                error = refused
        raise RuntimeError(f"could not record the run of {job} due at {iso(due)}: {error}")

    def delete(self, config_id: str) -> None:
        self.docker("DELETE", f"/configs/{config_id}")
