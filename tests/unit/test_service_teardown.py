"""Two `pulumi up`s on one state (the lifecycle engine, tests/lifecycle): a pool removed in the
same `up` as the services placed on it. Pulumi deletes in order of the *direct* dependencies
recorded in the state (the engine's ScheduleDeletes: a resource's dependencies intersected with
the condemned set), so each service must list every node's `settings` command itself: reaching
them only through the network, which stays, would delete the service and retire its nodes side
by side, and the retirement would wait for the tasks of a service that is going away.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import yaml

from tests.lifecycle.engine import Engine
from tests.pulumi_program import cluster_config, reference_stack_text, run_program
from tests.sandbox.lifecycle_cloud import FakeOutputs

SERVICE = "docker:index/service:Service"
DROPLET = "digitalocean:index/droplet:Droplet"


class FakeDroplets(FakeOutputs):
    """Droplet IDs are numbers, as DigitalOcean's are (the reserved IP assignment takes an int)."""

    def create(self, step):
        _, outputs = super().create(step)
        return str(next(self._ids)), outputs


class SlowServiceDeletes(FakeOutputs):
    """Deleting a service takes a moment, so a retirement that does not wait for it overlaps it."""

    def delete(self, step):
        time.sleep(0.3)


def up(engine: Engine, config: dict):
    return engine.up(lambda monitor: run_program("prod", config, monitor=monitor))


def test_a_pool_removed_with_its_services_retires_its_nodes_only_after_the_services_are_gone(tmp_path: Path):
    engine = Engine({SERVICE: SlowServiceDeletes(), DROPLET: FakeDroplets()}, default=FakeOutputs())
    config = copy.deepcopy(cluster_config("prod"))
    stack = yaml.safe_load(reference_stack_text())
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(stack))
    config["stackFile"] = str(tmp_path / "prod.yaml")
    first = up(engine, config)
    assert first.error is None, first.error

    # The ML pool goes, and with it `api`, the one service placed on it (else: nowhere to run).
    del config["nodePools"]["ml"]
    del stack["services"]["api"]
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(stack))
    second = up(engine, config)
    assert second.error is None, second.error

    deletes = {s.name: s for s in second.steps if s.op == "delete"}
    api = deletes["prod-api"]
    retirements = [s for name, s in deletes.items() if name.startswith("prod-ml-") and name.endswith("-settings")]
    assert len(retirements) == 3, sorted(deletes)
    for retirement in retirements:
        assert retirement.started >= api.started + api.seconds, (retirement.name, "started before prod-api was deleted")
