"""Backups and scheduled jobs: what follows from `swarm:backups` (read in swarm/config/backups.py) and
from the stack file's `x-schedule` services. Offers the checks and costs, the scheduler's jobs
document and install scripts. `restore` (`python -m swarm restore`, imported by the CLI as
`swarm.backups.restore`) sits above the plan, whose checks it runs, so it is not imported here.

`node/` holds what the manager runs, copied there byte for byte: the scheduler (`swarm_jobs.py`)
and its S3 client.
"""

from swarm.backups.jobs import DatabaseBackup, bucket_cost, check_backups, jobs_document, stored_gb_upper_bound
from swarm.backups.scripts import install_script, status_script, uninstall_script

__all__ = [
    "DatabaseBackup",
    "bucket_cost",
    "check_backups",
    "install_script",
    "jobs_document",
    "status_script",
    "stored_gb_upper_bound",
    "uninstall_script",
]
