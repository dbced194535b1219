"""How long an `up` may take, at most, before anything in it is stuck: the deploy job's timeout.

A deploy killed by its job's timeout in the middle of a rolling change leaves work half done
(docs/day-2-operations.md, "A killed up"), so the job must outlast the slowest change the
program can legitimately make: every droplet replaced (a new image for every pool). Each step
of that change is bounded by the program's own timeouts, so the bound is a sum of them, not a
guess:

- the new droplets are created side by side, and each is waited for until it answers and has
  finished cloud-init (the ready command's bound);
- the old nodes then retire one slot at a time: every manager in one slot cluster-wide, each
  worker pool in `maxUnavailable` slots of its own, the pools side by side; a retirement takes
  at most RETIRE_TIMEOUT_SECONDS before it gives up;
- then the convergence check waits at most `swarm:convergeTimeout`.

The job also checks out, installs and previews before `up` (SETUP_MINUTES). A bound beyond what
a GitHub-hosted job may run (JOB_LIMIT_MINUTES) is refused: such a change would be killed
halfway, on every attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from swarm.config import ClusterConfig
from swarm.diagnostics import Problem, config_problem
from swarm.node_scripts import READY_TIMEOUT_SECONDS, RETIRE_TIMEOUT_SECONDS

# Checkout, Python and the CLI installed, the stack selected, SSH opened: measured at 2 to 4
# minutes on GitHub's runners for comparable Pulumi jobs; rounded up.
SETUP_MINUTES = 10
# GitHub-hosted runners end any job after 6 hours (docs.github.com, "Usage limits": job
# execution time).
JOB_LIMIT_MINUTES = 360


@dataclass(frozen=True)
class DeployBound:
    ready_seconds: int
    retire_seconds: int  # the longest chain of retirements, slot after slot
    retire_chain: str  # what that chain is: "managers" or "pool ml"
    converge_seconds: int

    @property
    def up_minutes(self) -> int:
        return math.ceil((self.ready_seconds + self.retire_seconds + self.converge_seconds) / 60)

    @property
    def job_timeout_minutes(self) -> int:
        return self.up_minutes + SETUP_MINUTES

    def as_json(self) -> dict:
        return {"up_minutes": self.up_minutes, "job_timeout_minutes": self.job_timeout_minutes,
                "longest_retirement_chain": self.retire_chain, "job_limit_minutes": JOB_LIMIT_MINUTES}


def deploy_bound(config: ClusterConfig) -> DeployBound:
    """The longest an `up` replacing every droplet of `config` can take without a step timing out."""
    chains = {"managers": sum(pool.count for pool in config.pools if pool.role == "manager")}
    for pool in config.pools:
        if pool.role != "manager":
            chains[f"pool {pool.name}"] = math.ceil(pool.count / max(pool.max_unavailable, 1))
    chain, slots = max(chains.items(), key=lambda item: item[1])
    return DeployBound(READY_TIMEOUT_SECONDS, slots * RETIRE_TIMEOUT_SECONDS, chain,
                       config.converge_timeout_seconds)


def deploy_problems(config: ClusterConfig) -> list[Problem]:
    """A fleet no deploy job can replace within GitHub's limit, refused with the bound."""
    bound = deploy_bound(config)
    if bound.job_timeout_minutes <= JOB_LIMIT_MINUTES:
        return []
    pool = bound.retire_chain.removeprefix("pool ")
    path = ("swarm:nodePools", pool, "maxUnavailable") if bound.retire_chain != "managers" else ("swarm:nodePools",)
    return [config_problem(path, (
        f"replacing every droplet may take up to {bound.job_timeout_minutes} minutes (the {bound.retire_chain} "
        f"retire one slot at a time, up to {RETIRE_TIMEOUT_SECONDS // 60} minutes each), more than the "
        f"{JOB_LIMIT_MINUTES}-minute limit of a deploy job: a new image would be killed halfway; "
        + ("raise maxUnavailable" if bound.retire_chain != "managers" else "use fewer managers")
        + " (docs/day-2-operations.md, \"A killed up\")"))]
