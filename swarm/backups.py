"""Backups: `swarm:backups`, read and checked like every other key, and what follows from it.

- `parse_backups` validates the key itself (registered in the known-keys table).
- `check_backups` checks it against the stack file (the databases must be services of it, run
  where the backup job can reach them), called by swarm/preflight.py.
- `jobs_document` is what the scheduler on the manager runs (swarm/node/swarm_jobs.py), as JSON.
- `bucket_cost` is the bucket's estimated monthly cost, for `plan` and the program's outputs.

Why backups run on the manager's host, not in a container: the sandbox and CI have no registry,
so no image with pg_dump, an S3 client and an encryption tool can be pulled or built there; the
database's own container has exactly the server's pg_dump (`docker exec`); and the swarm-state
backup stops Docker on that manager, which a containerised job would not survive. See
docs/backups.md.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.config_keys import Collector, check_subkeys, known_key
from swarm.diagnostics import Problem, config_problem, config_warning
from swarm.schedule import ScheduleError, parse_schedule
from swarm.sizes import SPACES_EXTRA_GB_USD, SPACES_INCLUDED_GB, SPACES_MONTHLY_USD
from swarm.suggest import did_you_mean

BACKUP_KEYS = ("bucket", "region", "schedule", "keep", "databases", "swarmState")
DEFAULT_SCHEDULE = "0 3 * * *"
DEFAULT_KEEP = 14
MAX_KEEP = 1000
# Spaces regions (DigitalOcean's `doctl spaces` list); a droplet region without Spaces needs an explicit one.
SPACES_REGIONS = ("ams3", "atl1", "blr1", "fra1", "lon1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1")
# S3 bucket names: 3-63 lowercase letters, digits and '-', starting and ending with a letter or digit.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Days the lifecycle rule adds to the count's span before it deletes a backup: the job keeps
# `keep` backups by count; the rule is the safety net for what the job could not prune.
LIFECYCLE_MARGIN_DAYS = 7
POSTGRES_IMAGE = re.compile(r"(^|/)postgres(:|@|$)")
# Where the scheduler lives on the manager (created by components/backups.py).
JOBS_DIR = "/var/lib/swarm-jobs"
# A four-week February: the span over which a schedule's mean interval is measured.
_EPOCH = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Backups:
    bucket: str
    region: str
    schedule: str  # cron, UTC
    keep: int  # backups kept per database (and of the swarm state)
    databases: tuple[str, ...] | None  # stack-file services; None: the stack's Postgres services
    swarm_state: bool = True

    @property
    def endpoint(self) -> str:
        return f"https://{self.region}.digitaloceanspaces.com"

    @property
    def lifecycle_days(self) -> int:
        """Age at which the bucket's lifecycle rule deletes a backup: `keep` runs of the
        schedule, plus a margin."""
        schedule = parse_schedule(self.schedule)
        # The schedule's mean interval over four weeks (a cron need not be regular).
        start = _EPOCH
        runs = schedule.runs_between(start, start + dt.timedelta(days=28), limit=100_000)
        interval_days = 28 / max(len(runs), 1)
        return math.ceil(self.keep * interval_days) + LIFECYCLE_MARGIN_DAYS


@known_key("backups", type="object", default="no backups",
           doc="database and swarm-state backups to a Spaces bucket the program creates: "
               "`{bucket: prod-backups, schedule: '0 3 * * *', keep: 14}` (see [docs/backups.md](backups.md))")
def parse_backups(value: Any, region: Any, found: Collector) -> Backups | None:
    if value is None:
        return None
    example = "{bucket: acme-prod-backups, schedule: '0 3 * * *', keep: 14}"
    before = len(found.problems)
    if not check_subkeys(value, "backups", BACKUP_KEYS, found, not_mapping=f"must be a mapping, e.g. {example}"):
        return None
    bucket = value.get("bucket")
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        found.problem(("backups", "bucket"), f"{bucket!r} is not a bucket name: 3-63 lowercase letters, digits and '-' "
                                        "(bucket names are global to Spaces: include your company and the stack, e.g. acme-prod-backups)")
    spaces_region = value.get("region", region)
    if spaces_region not in SPACES_REGIONS:
        where = ("backups", "region") if "region" in value else ("backups",)
        hint = did_you_mean(spaces_region, SPACES_REGIONS) if isinstance(spaces_region, str) else ""
        found.problem(where, f"{spaces_region!r} has no Spaces" + (hint or f"; set backups.region to one of {', '.join(SPACES_REGIONS)}"))
    schedule = value.get("schedule", DEFAULT_SCHEDULE)
    try:
        parse_schedule(schedule)
    except ScheduleError as error:
        found.problem(("backups", "schedule"), str(error))
    keep = value.get("keep", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        found.problem(("backups", "keep"), f"{keep!r} is not a number of backups to keep; use a whole number from 1 to {MAX_KEEP}")
    databases = value.get("databases")
    if databases is not None and (
        not isinstance(databases, list) or not all(isinstance(name, str) and name for name in databases)
    ):
        found.problem(("backups", "databases"), "must be a list of the stack file's database services, e.g. [database]")
    swarm_state = value.get("swarmState", True)
    if not isinstance(swarm_state, bool):
        found.problem(("backups", "swarmState"), f"{swarm_state!r} must be true or false")
    if len(found.problems) > before:
        return None
    return Backups(bucket, spaces_region, schedule, keep, tuple(databases) if databases is not None else None, swarm_state)


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
    No secret here: the keys are in a separate file (see swarm/jobs_scripts.py). `endpoint`,
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
