"""Restores on a manager (`swarm_jobs.py restore-postgres`, `restore-swarm-state`): a backup
chosen from the bucket, downloaded, verified against its manifest (size, SHA-256, HMAC) before
any use, decrypted and restored. Standard library only, shipped byte for byte beside swarm_jobs.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import tarfile
import tempfile
import time

from jobs_host import PG_RESTORE, Jobs, database_container, docker_answers, parse_time


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
