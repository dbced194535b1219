"""The deploy job's timeout comes from the plan: the longest an `up` replacing every droplet can
take before one of its steps times out, and a fleet no job can replace is refused."""

from __future__ import annotations

import pytest

from swarm.config import ConfigError
from swarm.plan import check
from swarm.plan.duration import JOB_LIMIT_MINUTES, SETUP_MINUTES, deploy_bound
from tests.unit.config.stack_configs import parse, prod


def test_prods_bound_is_the_ready_wait_its_ml_pools_three_retirements_and_the_convergence_check():
    bound = deploy_bound(parse(prod()))
    # 15 min for the new droplets, 3 x 10 min for ml's nodes one at a time, 10 min to converge.
    assert (bound.ready_seconds, bound.retire_seconds, bound.retire_chain, bound.converge_seconds) == (900, 1800, "pool ml", 600)
    assert bound.up_minutes == 55 and bound.job_timeout_minutes == 55 + SETUP_MINUTES


def test_max_unavailable_shortens_the_chain_and_managers_share_one_chain_across_pools():
    values = prod()
    values["nodePools"]["ml"]["maxUnavailable"] = 3
    values["nodePools"]["control"] = {"role": "manager", "count": 2, "size": "s-2vcpu-4gb"}
    bound = deploy_bound(parse(values))
    assert (bound.retire_chain, bound.retire_seconds) == ("managers", 3 * 600)


def test_a_pool_no_deploy_job_can_replace_is_refused_with_the_bound_and_the_fix():
    values = prod()
    values["nodePools"]["ml"]["count"] = 40  # 40 retirements of up to 10 minutes each, one at a time
    with pytest.raises(ConfigError) as raised:
        check(lambda: parse(values))
    (problem,) = raised.value.problems
    assert problem.key == "swarm:nodePools.ml.maxUnavailable"
    assert problem.message.startswith(f"replacing every droplet may take up to 435 minutes (the pool ml retire one "
                                      f"slot at a time, up to 10 minutes each), more than the {JOB_LIMIT_MINUTES}-minute")
    assert "raise maxUnavailable" in problem.message
    values["nodePools"]["ml"]["maxUnavailable"] = 4
    assert check(lambda: parse(values)).config.pools[2].count == 40
