"""`swarm:backups`: database and swarm-state backups to a Spaces bucket, read and validated like
every other key (registered in the known-keys table) into a frozen `Backups`.

What follows from the key (the databases it backs up, checked against the stack file; the jobs the
manager runs; the bucket's cost) is in swarm/backups/.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from swarm.config.keys import Collector, check_subkeys, known_key
from swarm.suggest import did_you_mean
from swarm.values import ScheduleError, parse_schedule

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
    # The cluster's region (None: it has a problem of its own, reported once, not twice).
    region_unknown = spaces_region is None and "region" not in value
    if spaces_region not in SPACES_REGIONS and not region_unknown:
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
    if len(found.problems) > before or region_unknown:
        return None
    return Backups(bucket, spaces_region, schedule, keep, tuple(databases) if databases is not None else None, swarm_state)

