"""Adding, removing or replacing a worker changes only what it must (issue 20, item 9): the
Docker provider reaches the swarm through the manager alone, so its inputs (the known_hosts it
checks the manager's host key against) hold the manager's key only, and the stack's services
stay untouched. Two `pulumi up`s on one state with the lifecycle engine (tests/lifecycle)."""

from __future__ import annotations

import copy

from tests.lifecycle.engine import Engine
from tests.pulumi_program import run_program, stack_config
from tests.sandbox.lifecycle_cloud import FakeOutputs
from tests.unit.test_volume_lifecycle import FakeDroplets

DROPLET = "digitalocean:index/droplet:Droplet"
PROVIDER = "pulumi:providers:docker"


def up(engine: Engine, config: dict):
    result = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
    assert result.error is None, result.error
    return result


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


def test_adding_an_ml_worker_changes_neither_the_docker_provider_nor_any_service():
    engine = Engine({DROPLET: FakeDroplets()}, default=FakeOutputs())
    config = copy.deepcopy(stack_config("prod"))
    up(engine, config)
    result = up(engine, with_ml_workers(config, 4))
    ops = touched(result)
    assert (DROPLET, "prod-ml-4") in ops["create"]
    changed = {item for op, items in ops.items() if op != "create" for item in items}
    assert not [item for item in changed if item[0] == PROVIDER or item[0].startswith("docker:")], changed


def test_removing_an_ml_worker_changes_neither_the_docker_provider_nor_any_service():
    engine = Engine({DROPLET: FakeDroplets()}, default=FakeOutputs())
    config = with_ml_workers(stack_config("prod"), 4)
    up(engine, config)
    result = up(engine, with_ml_workers(config, 3))
    ops = touched(result)
    assert (DROPLET, "prod-ml-4") in ops["delete"]
    changed = {item for op, items in ops.items() if op != "delete" for item in items}
    assert not [item for item in changed if item[0] == PROVIDER or item[0].startswith("docker:")], changed
