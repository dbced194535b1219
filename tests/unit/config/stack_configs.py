"""Stack configuration values for the config tests (tests/unit/config: test_cluster, test_pools, test_workloads,
test_keys, test_renames): the checked-in prod stack's values with changes, parsed, and
the problems they raise keyed by their key's text or path."""

from __future__ import annotations

import copy

import pytest

from swarm.config import ConfigError, parse_config
from tests.pulumi_program import PROJECT_ROOT, stack_config


def parse(values, stack="prod"):
    return parse_config(values, stack=stack, project_root=PROJECT_ROOT, source=f"Pulumi.{stack}.yaml")


def problems(values, stack="prod"):
    with pytest.raises(ConfigError) as raised:
        parse(values, stack)
    return {problem.key: problem.message for problem in raised.value.problems}


def prod(**changes):
    values = copy.deepcopy(stack_config("prod"))
    values.update(changes)
    return values


def paths(values):
    with pytest.raises(ConfigError) as raised:
        parse(values)
    return [problem.path for problem in raised.value.problems]
