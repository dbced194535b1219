#!/usr/bin/env python3
"""Scheduled jobs and backups on a swarm manager.

Installed by the program (components/backups.py) on every manager into <dir>/lib with
claims.py, jobs_host.py, jobs_restore.py, schedule.py, suggest.py and s3.py, and run by cron
every minute as `swarm_jobs.py tick`. Standard library only: it runs
with the manager's own python3.

    tick [--now TIME]        start what is due: scheduled stack-file services (x-schedule) as swarm
                             replicated jobs, and the backups; report missed runs
    run JOB                  run one backup job now, in the foreground (exit status = its result)
    status                   JSON: each job's last run, last successful run and missed runs,
                             wherever they ran (the claims) and as this manager recorded them
    list JOB                 the backups a job has in the bucket, oldest first
    restore-postgres JOB [--at TIME] [--dry-run]
    restore-swarm-state [--at TIME] [--dry-run] [--target /var/lib/docker/swarm]

Guarantees: installed on every manager, cron ticks it on each, and each scheduled run happens
once cluster-wide, whichever manager leads: the manager that creates the run's claim in the
swarm (claims.py) runs it. A job never runs twice at once (a claim still running somewhere, or
the local lock held for the whole run, or a swarm job still running, blocks the next); a run
whose time passed while no scheduler ran, or while the previous run was still going, is recorded
as missed (in its claim) and printed; a backup counts as successful only once its upload is
verified (size and S3 checksum) and its marker is written. No secret is ever in a command line
or a log line: keys are read from <dir>/secrets.json and <dir>/backup.key (mode 0600).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import blocking_run, merge_status, prunable  # noqa: E402
from jobs_host import (  # noqa: E402
    PG_DUMP,
    Jobs,
    database_container,
    docker,
    docker_answers,
    iso,
    local_task,
    log,
    parse_time,
    this_manager,
    try_lock,
    utcnow,
    wait_until,
)
from jobs_restore import backups_of, restore_postgres, restore_swarm_state  # noqa: E402
from s3 import S3, multipart_etag  # noqa: E402
from schedule import COMPLETIONS_LABEL, SCHEDULE_LABEL, parse_schedule  # noqa: E402

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (the last part excepted)
TERMINAL = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}


# --- the scheduler ---------------------------------------------------------------------------

def tick(jobs: Jobs, now: dt.datetime) -> int:
    ticking = try_lock(jobs.path("tick.lock"))
    if ticking is None:
        log("tick: the previous tick is still running; this one does nothing")
        return 0
    if not docker_answers():
        return 0  # Docker stopped (a swarm-state backup here): the other managers' ticks act
    me = this_manager()
    if me is None:
        return 0  # not a manager (demoted, or outside the swarm): the managers schedule
    claims = jobs.claims()
    records = claims.list()
    settle_own_runs(jobs, me, records)
    templates = docker("GET", "/services", query={"filters": {"label": [SCHEDULE_LABEL]}})
    schedules = {job["name"]: ("host", job, job["schedule"]) for job in jobs.config["jobs"]}
    for service in templates:
        labels = service["Spec"].get("Labels") or {}
        schedules[service["Spec"]["Name"]] = ("service", service, labels[SCHEDULE_LABEL])
    later = []
    for name, (kind, subject, expression) in sorted(schedules.items()):
        with jobs.state() as state:
            job_state = state["jobs"].setdefault(name, {})
            checked = parse_time(job_state["checked"]) if "checked" in job_state else now - dt.timedelta(seconds=60)
            job_state["checked"] = iso(now)
        if kind == "service":
            collect_service_job(jobs, name)
        due = parse_schedule(expression).runs_between(checked, now)
        for missed in due[:-1]:  # unless another manager ran it (its claim exists)
            report_missed(jobs, me, name, missed, "no scheduler ran at that time")
        if not due:
            continue
        if first_choice(jobs, me, kind, subject):
            attempt(jobs, me, records, name, kind, subject, due[-1], now)
        else:
            later.append((name, kind, subject, due[-1]))
    if later:
        # Another manager is the better place for these (it runs the database's task; it is not
        # the leader, whose Docker stopping would move leadership): it claims them first, and
        # this one only if it did not (it is down, or nothing runs the database).
        time.sleep(float(jobs.config.get("claimDelaySeconds", 20)))
        records = claims.list()
        for name, kind, subject, when in later:
            attempt(jobs, me, records, name, kind, subject, when, now)
    return 0


def first_choice(jobs: Jobs, me: dict, kind: str, subject: dict) -> bool:
    """Whether this manager claims a run at once (else after claimDelaySeconds): a database's
    backup where its task runs; the swarm-state backup on a follower that runs no database (or
    on a lone manager); a swarm job anywhere."""
    if kind == "service" or me["managers"] == 1:
        return True
    if subject["kind"] == "postgres":
        return local_task(subject["service"])
    databases = [job["service"] for job in jobs.config["jobs"] if job["kind"] == "postgres"]
    return not me["leader"] and not any(local_task(service) for service in databases)


def attempt(jobs: Jobs, me: dict, records: list[dict], name: str, kind: str, subject: dict, due: dt.datetime,
            now: dt.datetime) -> None:
    """Claim the run of `name` due at `due` and start it here; or, when the previous run is
    still going, claim it as missed. Nothing when another manager claimed it first."""
    lock = None
    busy = blocking_run(records, name, now, me["ready"])
    why = f"the previous run (due {busy['due']}, on {busy.get('node')}) was still running" if busy else ""
    if not busy and kind == "host":
        lock = try_lock(jobs.lock_path(name))
        why = "" if lock else "the previous run was still running"
    if not busy and kind == "service" and collect_service_job(jobs, name) == "running":
        why = "the previous run was still running"
    run = {"node": me["hostname"], "nodeId": me["id"], "status": "missed" if why else "running", "started": iso(utcnow())}
    if why:
        run["why"] = why
    try:
        created = jobs.claims().create(name, due, run)
    except BaseException:
        if lock:
            lock.close()
        raise
    if not created:  # another manager's run
        if lock:
            lock.close()
        return
    if why:
        log(f"MISSED {name}: the run due at {iso(due)} did not start: {why}")
    elif kind == "host":
        start_host_job(jobs, name, lock, due)
    else:
        start_service_job(jobs, subject, due)
    prune_claims(jobs, name)


def report_missed(jobs: Jobs, me: dict, name: str, when: dt.datetime, why: str) -> None:
    run = {"node": me["hostname"], "nodeId": me["id"], "status": "missed", "why": why, "started": iso(utcnow())}
    if jobs.claims().create(name, when, run):
        log(f"MISSED {name}: the run due at {iso(when)} did not start: {why}")


def settle_own_runs(jobs: Jobs, me: dict, records: list[dict]) -> None:
    """A claim this manager holds as running whose run is gone (the job's lock is free: the
    process was killed, or the node rebooted) is recorded as failed, so that it blocks nothing."""
    for record in records:
        if record.get("status") != "running" or record.get("nodeId") != me["id"] or record["job"] not in jobs.by_name:
            continue
        lock = try_lock(jobs.lock_path(record["job"]))
        if lock is None:
            continue  # still running
        with lock:
            jobs.claims().update(record["job"], parse_time(record["due"]), status="failed", finished=iso(utcnow()),
                                 error="the run ended without a result (its process or its node stopped)")


def prune_claims(jobs: Jobs, name: str) -> None:
    claims = jobs.claims()
    for config_id in prunable([r for r in claims.list() if r["job"] == name]):
        with contextlib.suppress(RuntimeError):
            claims.delete(config_id)


def start_host_job(jobs: Jobs, name: str, lock, due: dt.datetime) -> None:
    """Start `run NAME` in the background, holding the job's lock (`lock`, taken by the caller)
    for its whole life; it records its outcome in the claim for `due`. A database dump also gets
    its shared hold on Docker here, before a swarm-state job started in the same tick can stop
    Docker: dumps due at the same time go first."""
    held = [lock]
    argv = [sys.executable, os.path.abspath(__file__), "--dir", jobs.dir, "run", name, "--locked-fd", str(lock.fileno()),
            "--due", iso(due)]
    if jobs.by_name[name]["kind"] == "postgres" and (docker_lock := try_lock(jobs.lock_path("docker"), shared=True)):
        held.append(docker_lock)
        argv += ["--docker-fd", str(docker_lock.fileno())]
    with open(jobs.path(f"{name}.log"), "ab") as output:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                         pass_fds=tuple(h.fileno() for h in held), start_new_session=True)
    for handle in held:
        handle.close()  # the child holds the locks now
    log(f"started {name}")


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
    if labels.get("swarm.schedule.run"):
        # Whichever manager sees it over first records it in the run's claim (none for a run
        # started before claims: nothing to record then).
        with contextlib.suppress(RuntimeError):
            jobs.claims().update(template, parse_time(labels["swarm.schedule.run"]), only_running=True, status=status,
                                 finished=iso(utcnow()), error="; ".join(errors))
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

def run_job(jobs: Jobs, name: str, locked_fd: int | None, docker_fd: int | None = None, due: str | None = None) -> int:
    """Run backup job `name` here; with `due` (a run the tick claimed), record its outcome in its claim too."""
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
        outcome = {"status": "failed", "started": iso(started), "finished": iso(utcnow()), "error": str(error)[:500]}
        jobs.record(name, running=None, lastRun=outcome)
        log(f"FAILED {name}: {error}")
        record_claim(jobs, name, due, outcome)
        return 1
    outcome = {"status": "succeeded", "started": iso(started), "finished": iso(utcnow()), **result}
    jobs.record(name, running=None, lastRun=outcome)
    log(f"succeeded {name}: {result['object']} ({result['size']} bytes in {result['seconds']:.1f} s)")
    record_claim(jobs, name, due, outcome)
    return 0


def record_claim(jobs: Jobs, name: str, due: str | None, outcome: dict) -> None:
    """The run's outcome into its claim, waiting for Docker and the swarm to answer (the
    swarm-state backup has just started Docker again here) for up to three minutes."""
    if due is None:
        return  # run by hand: no claim
    deadline = time.monotonic() + 180
    while True:
        try:
            jobs.claims().update(name, parse_time(due), **{k: v for k, v in outcome.items() if k != "started"})
            return
        except (OSError, RuntimeError, ValueError) as error:
            if time.monotonic() > deadline:
                log(f"{name}: could not record the outcome in the run's claim: {error}")
                return
            time.sleep(2)


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


def status(jobs: Jobs) -> dict:
    """Each job's last run, last success, missed runs and current run, wherever they ran: from
    the claims in the swarm, and this manager's own state (runs by hand, runs before claims).
    Outside a swarm (a blank host being restored), from the local state alone."""
    with jobs.state() as state:
        recorded = state["jobs"]
    records: list[dict] = []
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        if docker_answers() and (docker("GET", "/info").get("Swarm") or {}).get("ControlAvailable"):
            records = jobs.claims().list()
    return merge_status(list(jobs.by_name), recorded, records)


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
    running.add_argument("--due", help=argparse.SUPPRESS)
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
        return run_job(jobs, args.job, args.locked_fd, args.docker_fd, args.due)
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
