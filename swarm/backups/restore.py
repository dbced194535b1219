"""`python -m swarm restore`: put a database backup back onto the stack's database.

    python -m swarm restore --stack prod --database database [--at 2026-12-03T03:00Z] [--dry-run] [--yes]

Checks the request against the stack's configuration offline (the database must be one that
`swarm:backups` backs up), then works on the first manager over SSH, where the scheduler keeps
the keys: it first shows which backup it would restore (the latest taken at or before `--at`),
asks for the stack's name as confirmation (or `--yes`), then restores it: the backup is
downloaded, its size, SHA-256 and HMAC checked against its manifest, decrypted and fed to
`pg_restore --clean --if-exists --single-transaction` in the database's task. A failure leaves
the database as it was (one transaction).

The manager's address and SSH key come from the stack's outputs (`pulumi stack output`), or from
`--host` and `--identity`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from swarm.backups.jobs import JOBS_DIR
from swarm.compose import StackFileError
from swarm.config import ConfigError, load_stack_config_file
from swarm.plan import preflight
from swarm.suggest import did_you_mean

SSH_OPTIONS = ["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]


class RestoreError(Exception):
    pass


def check_request(stack: str, database: str, project_root: Path) -> str:
    """The job that backs `database` up, or RestoreError saying why there is none."""
    try:
        checked = preflight(load_stack_config_file(project_root, stack))
    except (ConfigError, StackFileError) as error:
        raise RestoreError(str(error)) from None
    if checked.config.backups is None:
        raise RestoreError(f"Pulumi.{stack}.yaml sets no swarm:backups: stack {stack} has no backups to restore")
    services = {db.service: db.name for db in checked.databases}
    if database not in services:
        hint = did_you_mean(database, services) or f"; the backed-up databases are {', '.join(services) or 'none'}"
        raise RestoreError(f"stack {stack} backs up no database {database!r}{hint}")
    return services[database]


def manager_from_outputs(stack: str) -> tuple[str, str]:
    """(address, private key) of the first manager, from the stack's outputs (needs the Pulumi CLI)."""
    try:
        result = subprocess.run(["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise RestoreError(f"cannot read the outputs of stack {stack} ({error}); give --host and --identity") from None
    outputs = json.loads(result.stdout)
    return outputs["managerAddress"], outputs["sshPrivateKey"]


def remote_command(job: str, at: str | None, dry_run: bool, jobs_dir: str) -> str:
    argv = ["python3", f"{jobs_dir}/lib/swarm_jobs.py", "--dir", jobs_dir, "restore-postgres", job]
    argv += ["--at", at] if at else []
    argv += ["--dry-run"] if dry_run else []
    return shlex.join(argv)


def restore(args: argparse.Namespace, project_root: Path, ask: Callable[[str], str] = input,
            say: Callable[[str], None] = print) -> int:
    job = check_request(args.stack, args.database, project_root)
    identity, temporary = args.identity, None
    host = args.host
    if host is None:
        host, key = manager_from_outputs(args.stack)
        descriptor, temporary = tempfile.mkstemp(prefix="swarm-restore-")
        with os.fdopen(descriptor, "w") as file:  # mkstemp: mode 0600
            file.write(key if key.endswith("\n") else key + "\n")
        identity = temporary
    try:
        def on_manager(dry_run: bool) -> subprocess.CompletedProcess:
            argv = ["ssh", *SSH_OPTIONS, *(["-i", identity] if identity else []), f"root@{host}", "--",
                    remote_command(job, args.at, dry_run, args.jobs_dir)]
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)

        plan = on_manager(dry_run=True)
        say(plan.stdout.rstrip())
        if plan.returncode != 0:
            raise RestoreError(f"the manager found nothing to restore: {plan.stderr.strip() or plan.stdout.strip()}")
        if args.dry_run:
            return 0
        if not args.yes:
            answer = ask(f"This replaces the data of {args.stack}_{args.database} with that backup. "
                         f"Type the stack's name ({args.stack}) to go on: ")
            if answer.strip() != args.stack:
                say("not confirmed: nothing restored")
                return 1
        done = on_manager(dry_run=False)
        say(done.stdout.rstrip())
        if done.returncode != 0:
            raise RestoreError(f"restore failed on the manager: {done.stderr.strip()[-1500:]}")
        return 0
    finally:
        if temporary:
            os.unlink(temporary)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True)
    parser.add_argument("--database", required=True, help="the database's service in the stack file, e.g. database")
    parser.add_argument("--at", help="restore the latest backup taken at or before this time (UTC), e.g. 2026-12-03T03:00Z")
    parser.add_argument("--dry-run", action="store_true", help="show which backup would be restored; change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--host", help="the first manager's address (default: the stack's managerAddress output)")
    parser.add_argument("--identity", help="SSH private key file for root on the manager (default: the stack's key)")
    parser.add_argument("--jobs-dir", default=JOBS_DIR, help=f"the scheduler's folder on the manager (default {JOBS_DIR})")


def run(args: argparse.Namespace, project_root: Path) -> int:
    try:
        return restore(args, project_root)
    except RestoreError as error:
        print(f"restore: {error}", file=sys.stderr)
        return 1
