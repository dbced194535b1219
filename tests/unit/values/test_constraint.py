"""Placement constraints checked as swarm checks them."""

from __future__ import annotations

import pytest

from swarm.compose import (
    Constraint,
    parse_constraint,
)


def test_constraints_are_checked_as_swarm_checks_them():
    assert parse_constraint("node.role == worker") == Constraint("node.role", "==", "worker")
    assert parse_constraint("node.labels.type!=cheap") == Constraint("node.labels.type", "!=", "cheap")
    assert parse_constraint("NODE.LABELS.Zone==a") == Constraint("node.labels.Zone", "==", "a")
    assert str(parse_constraint("engine.labels.os == linux")) == "engine.labels.os==linux"
    for bad in (
        "node.role = worker",
        "node.labels.bad key!=x",
        "node.lables.type==x",
        "node.role==boss",
        "node.hostname==",
        "node.labels.==x",
    ):
        with pytest.raises(ValueError):
            parse_constraint(bad)
