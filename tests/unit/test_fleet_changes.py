"""Adding or removing a worker changes only what it must (issue 20, item 9): the
Docker provider reaches the swarm through the manager alone, so its inputs (the known_hosts it
checks the manager's host key against) hold the manager's key only, and the stack's services
stay untouched. Two `pulumi up`s on one state with the lifecycle engine (tests/lifecycle)."""

from __future__ import annotations

import copy

import pytest

from tests.lifecycle.engine import Engine
from tests.pulumi_program import cluster_config
from tests.sandbox.lifecycle_cloud import FakeOutputs
from tests.unit.test_node_config import up
from tests.unit.test_volume_lifecycle import FakeDroplets

DROPLET = "digitalocean:index/droplet:Droplet"


def touched(result) -> dict[str, set[tuple[str, str]]]:
    """op -> (type, name) of every resource that op touched (no-change steps left out)."""
    ops: dict[str, set[tuple[str, str]]] = {}
    for step in result.steps:
        if step.op != "same":
            ops.setdefault(step.op, set()).add((step.type, step.name))
    return ops


def with_ml_workers(config: dict, count: int) -> dict:
    config = copy.deepcopy(config)
    config["nodePools"]["ml"]["count"] = count
    return config


@pytest.mark.parametrize(("before", "after", "op"), [(3, 4, "create"), (4, 3, "delete")], ids=["added", "removed"])
def test_an_ml_worker_added_or_removed_changes_neither_the_docker_provider_nor_any_service(before, after, op):
    engine = Engine({DROPLET: FakeDroplets()}, default=FakeOutputs())
    # prod without backups: the scheduler's status command carries the time of every up
    config = with_ml_workers(cluster_config("prod"), before)
    up(engine, config)
    ops = touched(up(engine, with_ml_workers(config, after)))
    assert (DROPLET, "prod-ml-4") in ops[op]
    changed = {item for kind, items in ops.items() if kind != op for item in items}
    # the convergence check runs again after any node change, by design (components/workloads.py)
    assert {name for _, name in changed} <= {"prod-converge"}, changed
