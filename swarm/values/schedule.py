"""Schedules: cron expressions, as `x-schedule` on a stack file's service and `schedule` in
`swarm:backups`.

Swarm has no cron. A service with `x-schedule: "0 3 * * *"` is deployed as a template that runs
nothing (replicas 0, labelled with its schedule), and the scheduler on the manager
(swarm/node/swarm_jobs.py) starts a swarm replicated job from that template at each scheduled
time. The scheduler imports this module as it is: standard library only, no other import from
the project.

Times are UTC. The five fields are minute, hour, day of month, month, day of week (0 or 7 is
Sunday), with `*`, `a-b`, `a,b`, `*/n`, `a-b/n`, month and day names (`jan`, `mon`) and the
macros `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`). As in
cron, when both day of month and day of week are restricted, a day matching either runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    from swarm.suggest import did_you_mean
except ImportError:  # on a node: installed beside the scheduler, without the package
    from suggest import did_you_mean  # type: ignore[no-redef]

# Label that marks a service as a scheduled job's template; its value is the cron expression.
SCHEDULE_LABEL = "swarm.schedule"
# Tasks each run must complete (the service's `replicas`); they run at most that many at once.
COMPLETIONS_LABEL = "swarm.schedule.completions"
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, lowest, highest, names (first name = lowest value)
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# The search for the next run gives up after this many days (e.g. "0 0 30 2 *" never runs).
_HORIZON_DAYS = 4 * 366


class ScheduleError(ValueError):
    """Not a cron expression; the message says what is wrong and what would be right."""


@dataclass(frozen=True)
class Schedule:
    text: str  # as written
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool  # day of month is not `*`
    weekdays_restricted: bool

    def matches(self, when: dt.datetime) -> bool:
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day = when.day in self.days
        weekday = (when.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day or weekday
        return day and weekday

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """The first scheduled minute strictly after `when` (UTC)."""
        moment = _utc(when).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = moment + dt.timedelta(days=_HORIZON_DAYS)
        while moment < limit:
            if moment.month not in self.months:
                moment = (moment.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if self.matches(moment):
                return moment
            moment += dt.timedelta(minutes=1)
        raise ScheduleError(f"{self.text!r} never runs (no matching day within {_HORIZON_DAYS // 366} years)")

    def runs_between(self, start: dt.datetime, end: dt.datetime, limit: int = 1000) -> list[dt.datetime]:
        """Scheduled minutes in (start, end], at most `limit` of them (the most recent ones)."""
        found: list[dt.datetime] = []
        moment = _utc(start)
        end = _utc(end)
        while True:
            moment = self.next_after(moment)
            if moment > end:
                return found
            found.append(moment)
            if len(found) > limit:
                found.pop(0)

    def last_at_or_before(self, when: dt.datetime) -> dt.datetime | None:
        """The latest scheduled minute at or before `when`, within the last 366 days."""
        runs = self.runs_between(_utc(when) - dt.timedelta(days=366), when, limit=1)
        return runs[-1] if runs else None

    def _day_matches(self, moment: dt.datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.isoweekday() % 7) in self.weekdays
        return (day or weekday) if self.days_restricted and self.weekdays_restricted else (day and weekday)


def parse_schedule(text: object) -> Schedule:
    """A cron expression (five fields or a macro); ScheduleError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(f"{text!r} is not a schedule; write a cron expression in quotes, e.g. \"0 3 * * *\" (daily at 03:00 UTC)")
    expression = MACROS.get(text.strip().lower(), text.strip())
    if expression.startswith("@"):
        hint = did_you_mean(expression.lower(), MACROS) or f"; use one of {', '.join(sorted(MACROS))}"
        raise ScheduleError(f"{text!r} is not a cron macro{hint}")
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"{text!r} has {len(fields)} field(s); cron takes five: minute hour day-of-month month day-of-week, "
            "e.g. \"0 3 * * *\" (daily at 03:00 UTC)"
        )
    values = [_field(word, *spec) for word, spec in zip(fields, _FIELDS)]
    weekdays = frozenset(day % 7 for day in values[4])
    return Schedule(
        text=text,
        minutes=frozenset(values[0]),
        hours=frozenset(values[1]),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        days_restricted=fields[2] != "*",
        weekdays_restricted=fields[4] != "*",
    )


def read_service_schedule(
    raw: dict[str, Any],
    mode: str,
    restart_condition: str | None,
    problem: Callable[[str, str], None],
    warn: Callable[[str, str], None],
) -> str | None:
    """The `x-schedule` of a stack file's service (`raw`, its mapping), checked; None if it has
    none. `problem(key, message)` and `warn(key, message)` report under the service's keys."""
    if "x-schedule" not in raw:
        return None
    try:
        schedule = parse_schedule(raw["x-schedule"])
    except ScheduleError as error:
        problem("x-schedule", str(error))
        return None
    if mode != "replicated":
        problem("x-schedule", "a scheduled service runs as a replicated job: remove `deploy.mode: global`")
    if restart_condition in (None, "any"):
        warn("deploy.restart_policy.condition", "a scheduled job's task is not restarted once it has succeeded: "
             "it runs with `on-failure` (set it to `on-failure` or `none` to say so)")
    return schedule.text


def _field(word: str, name: str, low: int, high: int, names: list[str] | None) -> set[int]:
    result: set[int] = set()
    for part in word.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{name}: step {step_text!r} in {word!r} must be a whole number >= 1")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, _, last_text = body.partition("-")
            first, last = _value(first_text, name, low, high, names), _value(last_text, name, low, high, names)
            if first > last:
                raise ScheduleError(f"{name}: range {body!r} runs backwards; write it low-high")
        else:
            first = _value(body, name, low, high, names)
            last = high if step_text else first
        result.update(range(first, last + 1, step))
    return result


def _value(text: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise ScheduleError(f"{name}: {text!r} is not a number from {low} to {high}{known}")
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError(f"{name}: {value} is out of range; use {low}-{high}")
    return value


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)
