"""Earlier names of pools and of the stack (swarm/config/renames.py): validated, and turned into the
aliases that let a rename keep its resources."""

from __future__ import annotations

from tests.unit.config.stack_configs import parse, problems, prod


def test_earlier_pool_and_stack_names_become_aliases():
    values = prod(previousStackNames=["production"])
    pools = values["nodePools"]
    values["nodePools"] = {"db": {**pools.pop("manager"), "previousNames": ["manager", "postgres"]}, **pools}
    config = parse(values)
    db = config.pools[0]
    assert db.previous_names == ("manager", "postgres")
    assert config.pool_aliases(db) == (
        "prod-manager", "prod-postgres", "production-db", "production-manager", "production-postgres")
    assert config.stack_aliases() == ("production",)


def test_earlier_names_are_validated():
    values = prod(previousStackNames=["prod", "Old Stack"])
    pools = values["nodePools"]
    pools["ml"]["previousNames"] = ["backoffice", "workers", "old", "old"]
    pools["manager"]["previousNames"] = ["workers"]
    pools["backoffice"]["previousNames"] = ["backoffice"]
    found = problems(values)
    assert found["swarm:previousStackNames[0]"].startswith("'prod' is the stack's current name")
    assert "is not a stack name" in found["swarm:previousStackNames[1]"]
    assert "is the name of a pool of this stack" in found["swarm:nodePools.ml.previousNames[0]"]
    assert found["swarm:nodePools.ml.previousNames[3]"] == "'old' is listed twice"
    assert "is the pool's current name" in found["swarm:nodePools.backoffice.previousNames[0]"]
    assert "also an earlier name of pool 'manager'" in found["swarm:nodePools.ml.previousNames[1]"]
