"""Capacity and placement: a pure model of swarmkit's scheduler, run over the configuration and the
stack file so that preview refuses what swarm would leave pending. Offers `check_capacity` and its
report, and the node model (`cluster_nodes`, `node_matches`) the rollout and the plan share.

Modules: `placement` (the scheduler model), `check` (the check and its report), `advice` (why
tasks do not fit and what to change).
"""

from swarm.capacity.advice import format_cpus, format_memory
from swarm.capacity.check import CapacityReport, check_capacity, schedule
from swarm.capacity.placement import NANO, cluster_nodes, node_matches

__all__ = [
    "NANO",
    "CapacityReport",
    "check_capacity",
    "cluster_nodes",
    "format_cpus",
    "format_memory",
    "node_matches",
    "schedule",
]
