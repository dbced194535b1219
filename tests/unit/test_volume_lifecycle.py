"""Two `pulumi up`s on one state (the lifecycle engine, tests/lifecycle), for the data volume:
a renamed pool or stack keeps it, a protected one is never deleted, a new mount path replaces
nothing. Every resource is a fake with FakeCloud's outputs; what is checked is the engine's plan.
"""

from __future__ import annotations

import copy

from tests.lifecycle.engine import Engine
from tests.pulumi_program import cluster_config, run_program
from tests.sandbox.lifecycle_cloud import FakeOutputs

VOLUME = "digitalocean:index/volume:Volume"
DROPLET = "digitalocean:index/droplet:Droplet"


class FakeDroplets(FakeOutputs):
    """Droplet IDs are numbers, as DigitalOcean's are (the reserved IP assignment takes an int)."""

    def create(self, step):
        _, outputs = super().create(step)
        return str(next(self._ids)), outputs


def up(engine: Engine, config: dict):
    result = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
    return result


def deployed() -> tuple[Engine, dict]:
    engine = Engine({DROPLET: FakeDroplets()}, default=FakeOutputs())
    config = copy.deepcopy(cluster_config("prod"))
    first = up(engine, config)
    assert first.error is None, first.error
    return engine, config


def test_a_renamed_pool_keeps_its_volume_and_replaces_its_droplet_in_place():
    engine, config = deployed()
    (volume_id,) = [r.id for r in engine.state.values() if r.type == VOLUME]
    pools = config["nodePools"]
    config["nodePools"] = {"db": {**pools.pop("manager"), "previousNames": ["manager"]}, **pools}
    result = up(engine, config)
    assert result.error is None, result.error
    assert [s.op for s in result.steps if s.type == VOLUME] in (["same"], ["update"])
    assert [r.id for r in engine.state.values() if r.type == VOLUME] == [volume_id]
    # the droplet gets its new name and hostname by replacement, delete first (the volume moves)
    steps = [(s.op, s.name) for s in result.steps if s.type == DROPLET and s.op != "same"]
    assert ("replace", "prod-db-1") in steps and ("create", "prod-db-1") not in steps, steps


def test_without_its_earlier_name_a_renamed_pool_would_delete_the_volume_and_protect_stops_it():
    engine, config = deployed()
    pools = config["nodePools"]
    config["nodePools"] = {"db": pools.pop("manager"), **pools}
    result = up(engine, config)
    assert result.error is not None
    assert "protect" in str(result.error)
    # Pulumi creates before it deletes: the new, empty volume exists, and the old one, with the
    # data, is still there; `up` failed on it, naming the protection.
    assert "prod-manager-1-data" in [r.name for r in engine.state.values() if r.type == VOLUME]


def test_a_new_mount_path_replaces_no_droplet_and_no_volume():
    engine, config = deployed()
    # one that still holds the database's bind mount, /mnt/postgresql/data (else refused: data off the volume)
    config["nodePools"]["manager"]["volume"]["mountPath"] = "/mnt"
    result = up(engine, config)
    assert result.error is None, result.error
    changed = {(s.op, s.type) for s in result.steps if s.op != "same"}
    assert not {op for op, type_ in changed if type_ in (VOLUME, DROPLET)}
