"""Schedules: cron expressions as cron reads them, the next run, missed runs, and `x-schedule`
on a stack file's service (deployed as a job template the scheduler starts jobs from)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from swarm.compose import StackFileError, load_stack_file
from swarm.compose.service_args import service_args
from swarm.plan.rollout import Rollout
from swarm.values.schedule import ScheduleError, parse_schedule

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("expression, after, expected", [
    ("0 3 * * *", "2026-12-03 10:00", "2026-12-04 03:00"),
    ("0 3 * * *", "2026-12-03 02:59", "2026-12-03 03:00"),
    ("*/15 * * * 1-5", "2026-12-05 10:00", "2026-12-07 00:00"),  # Saturday -> Monday
    ("30 2 1 * *", "2026-12-03 00:00", "2027-01-01 02:30"),
    ("0 0 * * sun", "2026-12-03 00:00", "2026-12-06 00:00"),
    ("0 12 * jan,jul *", "2026-12-03 00:00", "2027-01-01 12:00"),
    ("@weekly", "2026-12-03 00:00", "2026-12-06 00:00"),
    ("0 0 29 2 *", "2026-12-03 00:00", "2028-02-29 00:00"),
    # Day of month and day of week both restricted: either matches, as in cron.
    ("0 0 13 * 5", "2026-12-03 00:00", "2026-12-04 00:00"),
])
def test_the_next_run_is_the_one_cron_would_start(expression, after, expected):
    assert parse_schedule(expression).next_after(at(after)) == at(expected)


def test_runs_between_two_ticks_are_every_scheduled_minute_in_between():
    runs = parse_schedule("0 3 * * *").runs_between(at("2026-12-10 02:59"), at("2026-12-13 03:00"))
    assert runs == [at("2026-12-10 03:00"), at("2026-12-11 03:00"), at("2026-12-12 03:00"), at("2026-12-13 03:00")]


@pytest.mark.parametrize("expression, words", [
    ("0 3 * *", "has 4 field(s); cron takes five"),
    ("61 * * * *", "minute: 61 is out of range; use 0-59"),
    ("* * * * funday", "day of week: 'funday' is not a number from 0 to 7 or a name"),
    ("@dialy", "did you mean @daily"),
    ("*/0 * * * *", "step '0'"),
    ("5-1 * * * *", "runs backwards"),
    (3, "is not a schedule; write a cron expression in quotes"),
])
def test_a_bad_schedule_says_what_is_wrong(expression, words):
    with pytest.raises(ScheduleError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_schedule(expression)


def test_a_schedule_that_never_comes_says_so():
    with pytest.raises(ScheduleError, match="never runs"):
        parse_schedule("0 0 30 2 *").next_after(at("2026-12-03 00:00"))


STACK = """
version: "3.8"
services:
  report:
    image: registry.example.com/report:1
    x-schedule: "0 3 * * *"
    deploy:
      replicas: 2
      restart_policy: {condition: on-failure}
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return load_stack_file(path, stack="prod")


def test_a_scheduled_service_is_deployed_as_a_template_that_runs_nothing_labelled_with_its_schedule(tmp_path):
    spec = load(tmp_path, STACK).services["report"]
    assert spec.schedule == "0 3 * * *"
    args = service_args(spec, stack="prod", network_ids={"default": "n1"}, secret_ids={}, config_ids={})
    assert args["mode"] == {"replicated": {"replicas": 0}}
    labels = {item["label"]: item["value"] for item in args["labels"]}
    assert labels["swarm.schedule"] == "0 3 * * *" and labels["swarm.schedule.completions"] == "2"


def test_up_waits_for_no_task_of_a_scheduled_service(tmp_path):
    stack = load(tmp_path, STACK)
    rollout = Rollout(stack, {"report": ()}, {})
    (target,) = rollout.convergence("prod")
    assert (target.service, target.tasks) == ("prod_report", 0)


def test_a_scheduled_service_must_be_replicated_and_its_schedule_valid(tmp_path):
    text = STACK.replace('"0 3 * * *"', '"0 25 * * *"').replace("replicas: 2", "mode: global")
    with pytest.raises(StackFileError) as raised:
        load(tmp_path, text)
    messages = [problem.message for problem in raised.value.problems]
    assert any("hour: 25 is out of range" in m for m in messages)
    text = STACK.replace("replicas: 2", "mode: global")
    with pytest.raises(StackFileError, match="runs as a replicated job: remove `deploy.mode: global`"):
        load(tmp_path, text)


def test_a_scheduled_service_that_would_restart_forever_is_warned_about(tmp_path):
    stack = load(tmp_path, STACK.replace("restart_policy: {condition: on-failure}", "restart_policy: {condition: any}"))
    assert any("not restarted once it has succeeded" in warning for warning in map(str, stack.warnings))


def test_a_service_without_schedule_deploys_as_before(tmp_path):
    spec = load(tmp_path, STACK.replace('    x-schedule: "0 3 * * *"\n', "")).services["report"]
    args = service_args(spec, stack="prod", network_ids={"default": "n1"}, secret_ids={}, config_ids={})
    assert spec.schedule is None and args["mode"] == {"replicated": {"replicas": 2}}
    assert "swarm.schedule" not in {item["label"] for item in args["labels"]}
