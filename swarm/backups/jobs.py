"""Backups: what follows from `swarm:backups` (read and validated in swarm/config/backups.py).

- `check_backups` checks it against the stack file (the databases must be services of it, run
  where the backup job can reach them), called by swarm/plan/preflight.py.
- `jobs_document` is what the scheduler on the manager runs (swarm/backups/node/swarm_jobs.py), as JSON.
- `bucket_cost` is the bucket's estimated monthly cost, for `plan` and the program's outputs.

Why backups run on the manager's host, not in a container: the sandbox and CI have no registry,
so no image with pg_dump, an S3 client and an encryption tool can be pulled or built there; the
database's own container has exactly the server's pg_dump (`docker exec`); and the swarm-state
backup stops Docker on that manager, which a containerised job would not survive. See
docs/backups.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.config import SPACES_EXTRA_GB_USD, SPACES_INCLUDED_GB, SPACES_MONTHLY_USD, Backups
from swarm.diagnostics import Problem, config_problem, config_warning
from swarm.model import POSTGRES_IMAGE
from swarm.suggest import did_you_mean

# Where the scheduler lives on the manager (created by components/backups.py).
JOBS_DIR = "/var/lib/swarm-jobs"


@dataclass(frozen=True)
class DatabaseBackup:
    service: str  # stack-file service
    name: str  # job name on the manager: backup-<service>


def check_backups(backups: Backups, stack: Any, managers: int, stack_file: str) -> tuple[list[DatabaseBackup], list[Problem], list[Problem]]:
    """The databases to back up, with problems and warnings about `backups` against the stack
    file `stack` (a StackSpec) and the cluster's manager count."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    services = stack.services
    if backups.databases is None:
        names = [key for key, spec in services.items() if POSTGRES_IMAGE.search(spec.image or "")]
        if not names:
            warnings.append(config_warning("swarm:backups", f"{stack_file} has no Postgres service (image postgres:...): "
                                           "only the swarm state is backed up; list databases under backups.databases"))
    else:
        names = list(backups.databases)
    for index, name in enumerate(names):
        key = ("swarm:backups", "databases", index)
        if name not in services:
            hint = did_you_mean(name, services) or f"; its services are {', '.join(services)}"
            problems.append(config_problem(key, f"{stack_file} has no service {name!r}{hint}"))
            continue
        spec = services[name]
        if not POSTGRES_IMAGE.search(spec.image or ""):
            # The other reasons (placement, replicas) would only lead into making it look like one.
            problems.append(config_problem(key, f"{name} is not a database: its image {spec.image} is not PostgreSQL "
                                           "(postgres:<version>), and backups dump PostgreSQL only (pg_dump); "
                                           f"remove {name!r} from swarm:backups.databases"))
            continue
        reasons = []
        if not any(c.field == "node.role" and c.operator == "==" and c.value == "manager" for c in spec.constraints):
            reasons.append(f"{name} may run on a worker, and its backup runs on the manager (`docker exec` into "
                           "the database's task): add the placement constraint `node.role == manager`")
        if spec.mode != "replicated" or spec.replicas != 1:
            reasons.append(f"{name} must run one task (replicated, replicas 1) to be backed up consistently")
        if reasons:
            problems.append(config_problem(key, "; ".join(reasons)))
    if backups.swarm_state and managers == 1:
        warnings.append(config_warning(("swarm:backups", "swarmState"), "with one manager, the swarm-state backup stops Docker on it for a few "
                        "seconds at each run, and with it the tasks there (the database); add managers (3) or set "
                        "swarmState: false and back the swarm state up by hand"))
    return [DatabaseBackup(name, f"backup-{name}") for name in names if name in services], problems, warnings


def bucket_cost(backups: Backups, stored_gb: float) -> float:
    """Estimated monthly cost of the bucket holding `stored_gb` GiB: Spaces' subscription
    includes 250 GiB; each GiB beyond it is billed."""
    return round(SPACES_MONTHLY_USD + max(stored_gb - SPACES_INCLUDED_GB, 0) * SPACES_EXTRA_GB_USD, 2)


def stored_gb_upper_bound(backups: Backups, databases: list[DatabaseBackup], database_volume_gb: Mapping[str, int]) -> float:
    """At most what the bucket holds: `keep` backups of each database as large as the volume
    it lives on (1 GiB when it has none), uncompressed; the swarm state counts as nothing."""
    return float(sum(backups.keep * database_volume_gb.get(db.service, 1) for db in databases))


# How the swarm-state job stops and starts Docker on a droplet: the socket unit too, or the
# first API call would start Docker again (socket activation) while /var/lib/docker/swarm is copied.
DOCKER_STOP = "systemctl stop docker.socket docker.service"
DOCKER_START = "systemctl start docker.socket docker.service"


def jobs_document(backups: Backups | None, stack: str, databases: list[DatabaseBackup], *, jobs_dir: str = JOBS_DIR,
                  endpoint: str | None = None, docker_stop: str = DOCKER_STOP, docker_start: str = DOCKER_START) -> dict:
    """The host jobs the scheduler on the manager runs: one per database, and the swarm state.
    No secret here: the keys are in a separate file (see swarm/backups/scripts.py). `endpoint`,
    `docker_stop` and `docker_start` are for drills on hosts that are not droplets. Without
    backups, the scheduler only runs the stack file's `x-schedule` services."""
    if backups is None:
        return {"stack": stack, "dir": jobs_dir, "jobs": []}
    jobs = [
        {"name": db.name, "kind": "postgres", "schedule": backups.schedule, "service": f"{stack}_{db.service}",
         "prefix": f"{stack}/postgres/{db.service}/"}
        for db in databases
    ]
    if backups.swarm_state:
        jobs.append({"name": "backup-swarm-state", "kind": "swarm-state", "schedule": backups.schedule,
                     "prefix": f"{stack}/swarm-state/"})
    return {
        "stack": stack,
        "bucket": backups.bucket,
        "endpoint": endpoint or backups.endpoint,
        "region": backups.region,
        "keep": backups.keep,
        "dir": jobs_dir,
        "dockerStop": docker_stop,
        "dockerStart": docker_start,
        "jobs": jobs,
    }
