"""Shell scripts that install the scheduler and backup jobs on a manager, and read their status.

The scheduler (swarm/node/swarm_jobs.py and the standard-library modules it imports) is copied
into `<dir>/lib` by `install_script`, with the jobs document in `<dir>/jobs.json`; the keys
arrive on stdin (never in the script, which Pulumi keeps in state and may print) and are
written to `<dir>/secrets.json` and `<dir>/backup.key`, mode 0600. Cron runs `tick` every
minute. Installing again replaces the files and keeps the state (last runs, missed runs).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

NODE_FILES = {
    "swarm_jobs.py": Path(__file__).parent / "node" / "swarm_jobs.py",
    "s3.py": Path(__file__).parent / "node" / "s3.py",
    "schedule.py": Path(__file__).parent / "schedule.py",
    "suggest.py": Path(__file__).parent / "suggest.py",
}
CRON_FILE = "/etc/cron.d/swarm-jobs"
_HEADER = "#!/bin/sh\nset -eu\n"


def install_script(jobs: dict, *, cron: bool = True) -> str:
    """Install the scheduler for `jobs` (swarm.backups.jobs_document). stdin: a JSON object with
    accessKeyId, secretAccessKey and encryptionKey (`{}` without backups). `cron`: also install the cron entry (the
    sandbox, which has no cron daemon, ticks by hand)."""
    directory = jobs["dir"]
    lines = [_HEADER, "umask 077", f"dir={shlex.quote(directory)}", 'mkdir -p "$dir/lib" "$dir/locks"']
    for name, path in NODE_FILES.items():
        text = path.read_text(encoding="utf-8")
        delimiter = "SWARM_JOBS_EOF"
        if delimiter in text:
            raise ValueError(f"{path} contains the heredoc delimiter {delimiter}")
        lines.append(f"cat >\"$dir/lib/{name}\" <<'{delimiter}'\n{text}{delimiter}")
    lines.append(f"cat >\"$dir/jobs.json\" <<'SWARM_JOBS_EOF'\n{json.dumps(jobs, indent=2, sort_keys=True)}\nSWARM_JOBS_EOF")
    # The keys: from stdin to files only root can read, split by python3 (no key in argv).
    lines.append(
        'python3 -c \'import json, sys\n'
        'd = sys.argv[1]\n'
        'keys = json.load(sys.stdin)\n'
        'open(d + "/secrets.json", "w").write(json.dumps({k: keys.get(k) for k in ("accessKeyId", "secretAccessKey")}))\n'
        'open(d + "/backup.key", "w").write(keys.get("encryptionKey", "") + "\\n")\' "$dir"'
    )
    lines.append('chmod 0600 "$dir/secrets.json" "$dir/backup.key"')
    lines.append('python3 "$dir/lib/swarm_jobs.py" --dir "$dir" status >/dev/null')
    if cron:
        entry = f'* * * * * root python3 {shlex.quote(directory)}/lib/swarm_jobs.py --dir {shlex.quote(directory)} tick >>{shlex.quote(directory)}/tick.log 2>&1'
        lines.append(f"printf '%s\\n' {shlex.quote('# Installed by the swarm program (Pulumi): scheduled jobs and backups.')} "
                     f"{shlex.quote(entry)} >{CRON_FILE}.tmp")
        lines.append(f"chmod 0644 {CRON_FILE}.tmp && mv {CRON_FILE}.tmp {CRON_FILE}")
    lines.append('echo "scheduler installed in $dir"')
    return "\n".join(lines) + "\n"


def status_script(directory: str, run_at: str) -> str:
    """Print the jobs' status as JSON. `run_at` (the time of this `pulumi up`) is written into
    the script so that every `up` runs it again and reports the current last backup."""
    return _HEADER + f"# pulumi up at {run_at}\npython3 {shlex.quote(directory)}/lib/swarm_jobs.py --dir {shlex.quote(directory)} status\n"


def uninstall_script(directory: str) -> str:
    """Stop scheduling (the cron entry goes); the folder with the state and keys stays, so that
    backups in the bucket can still be restored from this manager."""
    return _HEADER + f"rm -f {CRON_FILE}\necho 'scheduler stopped; {directory} kept'\n"
