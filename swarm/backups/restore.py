"""`python -m swarm restore`: put a database backup back onto the stack's database.

    python -m swarm restore --stack prod --database database [--at 2026-12-03T03:00Z] [--dry-run] [--yes]

Checks the request against the stack's configuration offline (the database must be one that
`swarm:backups` backs up), then works on the first manager over SSH, where the scheduler keeps
the keys: it first shows which backup it would restore (the latest taken at or before `--at`),
asks for the stack's name as confirmation (or `--yes`), then restores it: the backup is
downloaded, its size, SHA-256 and HMAC checked against its manifest, decrypted and fed to
`pg_restore --clean --if-exists --single-transaction` in the database's task. A failure leaves
the database as it was (one transaction).

The manager's address, SSH key and pinned host keys come from the stack's outputs, read with
`pulumi stack output` from the same backend as `scripts/pulumi-local` (PULUMI_BACKEND_URL, by
default .pulumi-state/ in the checkout), or from `--host`, `--identity` and `--known-hosts`. The
manager's host key is always checked: against the stack's `knownHosts` output (or
`--known-hosts`), else against the operator's own known_hosts (docs/security.md, "The operator's
way in"); an unknown or different key is refused before anything is sent.
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

# Never StrictHostKeyChecking=no: a host posing as the manager must not be sent the restore.
SSH_OPTIONS = ["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
               "-o", "BatchMode=yes"]


def ssh_options(known_hosts: str | None) -> list[str]:
    """Strict host key checking; against `known_hosts` alone when given (the stack's pinned keys),
    else against the operator's own known_hosts files."""
    pinned = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"] if known_hosts else []
    return [*SSH_OPTIONS, *pinned]


def pulumi_environment(project_root: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `scripts/pulumi-local` gives Pulumi: the same state backend, so that
    `restore` reads the outputs of the stack `pulumi-local up` deployed."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("PULUMI_BACKEND_URL", f"file://{project_root.resolve()}/.pulumi-state")
    return env


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


def manager_from_outputs(stack: str, project_root: Path) -> tuple[str, str, str]:
    """(address, private key, known_hosts lines) of the first manager, from the stack's outputs
    (needs the Pulumi CLI and the stack's passphrase, as `scripts/pulumi-local` does)."""
    env = pulumi_environment(project_root)
    try:
        result = subprocess.run(["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
                                capture_output=True, text=True, check=True, cwd=project_root, env=env)
    except OSError as error:
        raise RestoreError(f"cannot run pulumi ({error}); give --host, --identity and --known-hosts") from None
    except subprocess.CalledProcessError as error:
        raise RestoreError(f"cannot read the outputs of stack {stack} from {env['PULUMI_BACKEND_URL']}: "
                           f"{error.stderr.strip() or error}; give --host, --identity and --known-hosts") from None
    try:
        outputs = json.loads(result.stdout)
        return outputs["managerAddress"], outputs["sshPrivateKey"], outputs["knownHosts"]
    except (ValueError, KeyError, TypeError) as error:
        raise RestoreError(f"stack {stack}'s outputs lack {error} (has it been deployed with this version?); "
                           "give --host, --identity and --known-hosts") from None


def _private_file(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text if text.endswith("\n") else text + "\n")
    return path


def remote_command(job: str, at: str | None, dry_run: bool, jobs_dir: str) -> str:
    argv = ["python3", f"{jobs_dir}/lib/swarm_jobs.py", "--dir", jobs_dir, "restore-postgres", job]
    argv += ["--at", at] if at else []
    argv += ["--dry-run"] if dry_run else []
    return shlex.join(argv)


def restore(args: argparse.Namespace, project_root: Path, ask: Callable[[str], str] = input,
            say: Callable[[str], None] = print) -> int:
    job = check_request(args.stack, args.database, project_root)
    identity, known_hosts, host = args.identity, getattr(args, "known_hosts", None), args.host
    with tempfile.TemporaryDirectory(prefix="swarm-restore-") as directory:  # mode 0700
        if host is None:
            host, key, known = manager_from_outputs(args.stack, project_root)
            identity = identity or _private_file(directory, "id_swarm", key)
            known_hosts = known_hosts or _private_file(directory, "known_hosts", known)
        return _restore_on(host, identity, known_hosts, job, args, ask, say)


def _restore_on(host: str, identity: str | None, known_hosts: str | None, job: str, args: argparse.Namespace,
                ask: Callable[[str], str], say: Callable[[str], None]) -> int:
    def on_manager(dry_run: bool) -> subprocess.CompletedProcess:
        argv = ["ssh", *ssh_options(known_hosts), *(["-i", identity] if identity else []), f"root@{host}", "--",
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True)
    parser.add_argument("--database", required=True, help="the database's service in the stack file, e.g. database")
    parser.add_argument("--at", help="restore the latest backup taken at or before this time (UTC), e.g. 2026-12-03T03:00Z")
    parser.add_argument("--dry-run", action="store_true", help="show which backup would be restored; change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--host", help="the first manager's address (default: the stack's managerAddress output)")
    parser.add_argument("--identity", help="SSH private key file for root on the manager (default: the stack's key)")
    parser.add_argument("--known-hosts", help="known_hosts file with the manager's host key (default: the stack's "
                        "knownHosts output; with --host, your own known_hosts)")
    parser.add_argument("--jobs-dir", default=JOBS_DIR, help=f"the scheduler's folder on the manager (default {JOBS_DIR})")


def run(args: argparse.Namespace, project_root: Path) -> int:
    try:
        return restore(args, project_root)
    except RestoreError as error:
        print(f"restore: {error}", file=sys.stderr)
        return 1
