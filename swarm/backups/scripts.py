"""Shell scripts that install the scheduler and backup jobs on a manager, and read their status.

The scheduler (swarm/backups/node/swarm_jobs.py and the standard-library modules it imports) is copied
into `<dir>/lib` by `install_script` (swarm/node_scripts/install_jobs.sh), with the jobs
document in `<dir>/jobs.json`; the keys arrive on stdin (never in the script, which Pulumi keeps
in state and may print) and are written to `<dir>/secrets.json` and `<dir>/backup.key`, mode 0600. Cron runs `tick` every
minute. Installing again replaces the files and keeps the state (last runs, missed runs).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from swarm import node_scripts

_SWARM = Path(__file__).parents[1]
# Copied byte for byte: a changed text reinstalls the scheduler on the next `up`.
NODE_FILES = {
    "swarm_jobs.py": Path(__file__).parent / "node" / "swarm_jobs.py",
    "claims.py": Path(__file__).parent / "node" / "claims.py",
    "jobs_host.py": Path(__file__).parent / "node" / "jobs_host.py",
    "jobs_restore.py": Path(__file__).parent / "node" / "jobs_restore.py",
    "s3.py": Path(__file__).parent / "node" / "s3.py",
    "schedule.py": _SWARM / "values" / "schedule.py",
    "suggest.py": _SWARM / "suggest.py",
}
CRON_FILE = "/etc/cron.d/swarm-jobs"


def install_script(jobs: dict, *, cron: bool = True, droplet: str = "") -> str:
    """Install the scheduler for `jobs` (swarm.backups.jobs_document). stdin: a JSON object with
    accessKeyId, secretAccessKey and encryptionKey (`{}` without backups). `cron`: also install the cron entry (the
    sandbox, which has no cron daemon, ticks by hand). `droplet`: the ID of the manager's
    droplet, so that its successor's new ID makes `up` run the install again there."""
    directory = jobs["dir"]
    quoted = shlex.quote(directory)
    entry = f"* * * * * root python3 {quoted}/lib/swarm_jobs.py --dir {quoted} tick >>{quoted}/tick.log 2>&1"
    modules = {_input_name(name): path.read_text(encoding="utf-8") for name, path in NODE_FILES.items()}
    return node_scripts.render(
        "install_jobs", DIR=directory, JOBS_JSON=json.dumps(jobs, indent=2, sort_keys=True), **modules,
        CRON_FILE=CRON_FILE, CRON_ENTRY=entry if cron else "", DROPLET=droplet,
    )


def _input_name(file_name: str) -> str:
    """install_jobs.sh's input for a module: swarm_jobs.py -> SWARM_JOBS_PY."""
    return file_name.upper().replace(".", "_")


def status_script(directory: str, run_at: str) -> str:
    """Print the jobs' status as JSON. `run_at` (the time of this `pulumi up`) is written into
    the script so that every `up` runs it again and reports the current last backup."""
    return node_scripts.render("jobs_status", DIR=directory, RUN_AT=run_at)


def uninstall_script(directory: str) -> str:
    """Stop scheduling (the cron entry goes); the folder with the state and keys stays, so that
    backups in the bucket can still be restored from this manager."""
    return node_scripts.render("uninstall_jobs", DIR=directory, CRON_FILE=CRON_FILE)
