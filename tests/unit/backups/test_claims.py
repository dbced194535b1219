"""swarm/backups/node/claims.py: the cluster-wide record of scheduled runs (issue 20: jobs do
not depend on which manager leads). A run is claimed by creating a swarm config named after
the job and its due time; the second creator is refused; the status merges every manager's runs.
The real swarm's answers are checked on the sandbox (tests/sandbox/test_backups.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest

from swarm.backups.node.claims import (
    JOB_LABEL,
    KEEP_CLAIMS,
    Claims,
    blocking_run,
    claim_name,
    claim_spec,
    merge_status,
    prunable,
    record_of,
)

DUE = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.UTC)
NOW = DUE + dt.timedelta(minutes=5)
SWARM_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")  # swarmkit's rule for configs


class FakeSwarm:
    """The Engine API's configs, as swarm keeps them: unique names (409 on a second create),
    labels the one thing an update may change, a version that must match."""

    def __init__(self):
        self.configs: dict[str, dict] = {}
        self.stale_updates = 0  # updates to refuse as out of sequence (a concurrent writer)

    def __call__(self, method: str, path: str, body=None, query=None):
        if method == "POST" and path == "/configs/create":
            if any(c["Spec"]["Name"] == body["Name"] for c in self.configs.values()):
                raise RuntimeError(f"docker POST {path}: HTTP 409 config {body['Name']} already exists")
            config_id = f"id{len(self.configs) + 1}"
            self.configs[config_id] = {"ID": config_id, "Version": {"Index": 1}, "Spec": json.loads(json.dumps(body))}
            return {"ID": config_id}
        if method == "GET" and path == "/configs":
            wanted = query["filters"]["label"][0]
            return [c for c in self.configs.values() if wanted in c["Spec"].get("Labels", {})]
        if method == "GET" and path.startswith("/configs/"):
            key = path.rsplit("/", 1)[1]
            for config in self.configs.values():
                if key in (config["ID"], config["Spec"]["Name"]):
                    return json.loads(json.dumps(config))
            raise RuntimeError(f"docker GET {path}: HTTP 404 no such config")
        if method == "POST" and path.endswith("/update"):
            config = self.configs[path.split("/")[2]]
            if self.stale_updates or int(query["version"]) != config["Version"]["Index"]:
                self.stale_updates = max(0, self.stale_updates - 1)
                raise RuntimeError("docker POST: HTTP 500 update out of sequence")
            assert body["Name"] == config["Spec"]["Name"] and body["Data"] == config["Spec"]["Data"], "only labels change"
            config["Spec"] = body
            config["Version"]["Index"] += 1
            return b""
        if method == "DELETE":
            del self.configs[path.rsplit("/", 1)[1]]
            return b""
        raise AssertionError(f"unexpected {method} {path}")


def run(status: str, **values) -> dict:
    return {"node": "prod-manager-1", "nodeId": "n1", "status": status, "started": "2026-12-03T03:00:01Z", **values}


def test_a_claims_name_is_a_valid_swarm_name_that_says_job_and_due_time():
    assert claim_name("backup-database", DUE) == "swarm-jobs.backup-database.20261203T0300Z"
    for job in ("prod_nightly-report", "x" * 80, "odd name!", "_leading"):
        name = claim_name(job, DUE)
        assert SWARM_NAME.match(name) and len(name) <= 64, name
        assert name.endswith(".20261203T0300Z")
    assert claim_name("x" * 80, DUE) != claim_name("x" * 81, DUE), "long names stay distinct"


def test_the_second_manager_to_claim_a_run_is_refused_and_the_first_keeps_it():
    swarm = FakeSwarm()
    first, second = Claims(swarm), Claims(swarm)
    assert first.create("backup-database", DUE, run("running")) is True
    assert second.create("backup-database", DUE, run("running", node="prod-control-1")) is False
    assert first.create("backup-database", DUE + dt.timedelta(days=1), run("running")) is True, "the next period is free"
    (record,) = [r for r in first.list() if r["due"] == "2026-12-03T03:00:00Z"]
    assert record["node"] == "prod-manager-1" and record["status"] == "running"


def test_a_refusal_other_than_a_name_conflict_is_raised_not_taken_for_someone_elses_claim():
    def no_quorum(method, path, body=None, query=None):
        raise RuntimeError("docker POST /configs/create: HTTP 503 The swarm does not have a leader")
    with pytest.raises(RuntimeError, match="503"):
        Claims(no_quorum).create("backup-database", DUE, run("running"))


def test_the_outcome_is_merged_into_the_claims_labels_and_survives_a_concurrent_update():
    swarm = FakeSwarm()
    claims = Claims(swarm)
    claims.create("backup-database", DUE, run("running"))
    swarm.stale_updates = 2
    claims.update("backup-database", DUE, status="succeeded", finished="2026-12-03T03:00:09Z", size=42)
    (record,) = claims.list()
    assert (record["status"], record["finished"], record["size"], record["node"]) == (
        "succeeded", "2026-12-03T03:00:09Z", 42, "prod-manager-1")
    claims.update("backup-database", DUE, only_running=True, status="failed")
    assert claims.list()[0]["status"] == "succeeded", "a run recorded as over is left alone"


def test_a_claim_is_created_with_its_job_due_time_and_run_as_labels():
    spec = claim_spec("backup-database", DUE, run("running"))
    assert spec["Labels"][JOB_LABEL] == "backup-database"
    assert json.loads(base64.b64decode(spec["Data"])) == {"job": "backup-database", "due": "2026-12-03T03:00:00Z"}
    assert record_of({"ID": "x", "Spec": {"Name": "other", "Labels": {}}}) is None, "other configs are no claims"


def test_a_run_still_going_blocks_the_next_unless_its_node_is_gone_for_long():
    records = [{**run("running", nodeId="n2"), "job": "backup-swarm-state", "due": "2026-12-03T03:00:00Z"}]
    assert blocking_run(records, "backup-swarm-state", NOW, {"n1", "n2"}) is records[0]
    assert blocking_run(records, "backup-swarm-state", NOW, {"n1"}) is records[0], "its Docker may be restarting"
    later = NOW + dt.timedelta(hours=2)
    assert blocking_run(records, "backup-swarm-state", later, {"n1"}) is None, "its node is gone: the run died with it"
    assert blocking_run(records, "backup-database", NOW, {"n1", "n2"}) is None, "another job's run blocks nothing"
    done = [{**records[0], "status": "succeeded"}]
    assert blocking_run(done, "backup-swarm-state", NOW, {"n2"}) is None


def test_the_status_reports_the_last_runs_wherever_they_ran():
    records = [
        {**run("succeeded", node="prod-control-1", finished="2026-12-01T03:00:09Z"), "job": "backup-database",
         "due": "2026-12-01T03:00:00Z", "started": "2026-12-01T03:00:01Z"},
        {**run("failed", node="prod-control-2", finished="2026-12-02T03:00:30Z", error="no running task"),
         "job": "backup-database", "due": "2026-12-02T03:00:00Z", "started": "2026-12-02T03:00:01Z"},
        {**run("missed", why="no scheduler ran at that time"), "job": "backup-database", "due": "2026-11-30T03:00:00Z"},
        {**run("running"), "job": "backup-swarm-state", "due": "2026-12-03T03:00:00Z"},
    ]
    local = {"backup-database": {"lastRun": {"status": "succeeded", "started": "2026-11-29T03:00:01Z",
                                             "finished": "2026-11-29T03:00:05Z"},
                                 "lastSuccess": "2026-11-29T03:00:05Z",
                                 "missed": [{"due": "2026-11-28T03:00:00Z", "why": "old"}]}}
    status = merge_status(["backup-database", "backup-swarm-state", "prod_report"], local, records)
    database = status["backup-database"]
    assert database["lastRun"]["status"] == "failed" and database["lastRun"]["node"] == "prod-control-2"
    assert database["lastSuccess"] == "2026-12-01T03:00:09Z", "a success on another manager counts"
    assert [m["due"] for m in database["missed"]] == ["2026-11-28T03:00:00Z", "2026-11-30T03:00:00Z"]
    assert database["running"] is None
    assert status["backup-swarm-state"]["running"]["node"] == "prod-manager-1"
    assert status["prod_report"] == {"lastSuccess": None, "lastRun": None, "missed": None, "running": None}


def test_old_claims_are_pruned_beyond_the_newest_of_each_job_never_a_running_one():
    records = [{"job": "j", "due": f"2026-01-01T00:{m:02d}:00Z", "status": "succeeded", "id": f"c{m}"}
               for m in range(KEEP_CLAIMS + 3)]
    records[0]["status"] = "running"
    records.append({"job": "other", "due": "2025-01-01T00:00:00Z", "status": "failed", "id": "o"})
    assert prunable(records) == ["c1", "c2"]
