"""Time of the capacity check for 1,000 services on 50 nodes (target: well under a second).

Usage: python scripts/bench_capacity.py [--services N] [--nodes N] [--rounds R]

Prints figures; it is not a test. The cluster has five labelled worker pools plus managers; the
services mix constrained and unconstrained, replicated (1-4 replicas, some capped per node) and
global ones, with CPU and memory reservations that fill the nodes to about three quarters, so
the spread, the loss-of-a-node re-placement and the start-first check all do real work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm.capacity import check_capacity
from swarm.compose import Constraint, Resources, ServiceSpec, StackSpec
from swarm.config import ClusterConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]
POOLS = 5


def bench_pools(nodes: int) -> dict:
    """`swarm:nodePools` for `nodes` nodes: 3 managers and the rest in POOLS labelled worker pools
    (scripts/bench_plan.py builds the same cluster)."""
    managers = 3
    per_pool, extra = divmod(nodes - managers, POOLS)
    pools: dict = {"manager": {"role": "manager", "count": managers, "size": "s-4vcpu-8gb"}}
    for index in range(POOLS):
        pools[f"pool{index}"] = {
            "role": "worker",
            "count": per_pool + (index < extra),
            "size": "m-8vcpu-64gb",
            "labels": {"type": f"pool{index}"},
        }
    return pools


def cluster(nodes: int) -> ClusterConfig:
    values = {"region": "fra1", "adminCidrs": ["203.0.113.0/24"], "nodePools": bench_pools(nodes),
              "stackFile": str(ROOT / "stacks" / "prod.yaml")}
    return parse_config(values, stack="bench", project_root=ROOT, source="bench")


def stack(services: int) -> StackSpec:
    specs = {}
    for index in range(services):
        name = f"service-{index}"
        if index % 100 == 0:  # a few agents on every node
            specs[name] = ServiceSpec(name, "agent:1", mode="global", replicas=None,
                                      reservations=Resources(nano_cpus=10_000_000, memory_bytes=32 * 2**20))
            continue
        constraints = () if index % 5 == 0 else (
            Constraint("node.role", "==", "worker"),
            Constraint("node.labels.type", "==", f"pool{index % POOLS}"),
        )
        specs[name] = ServiceSpec(
            name,
            f"model-{index}:1",
            replicas=1 + index % 4,
            constraints=constraints,
            max_replicas_per_node=2 if index % 7 == 0 else None,
            reservations=Resources(nano_cpus=60_000_000 * (1 + index % 3), memory_bytes=(256 + 128 * (index % 5)) * 2**20),
        )
    return StackSpec("bench.yaml", "3.8", specs, {}, {}, {}, {}, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    config, spec = cluster(args.nodes), stack(args.services)
    times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        report = check_capacity(config, spec)
        times.append(time.perf_counter() - started)

    tasks = sum(s.placed for s in report.services)
    cpu = sum(n.reserved_nano_cpus for n in report.nodes) / sum(n.node.nano_cpus for n in report.nodes)
    memory = sum(n.reserved_memory_bytes for n in report.nodes) / sum(n.node.memory_bytes for n in report.nodes)
    print(f"{len(report.services)} services, {len(report.nodes)} nodes: {tasks} tasks placed, "
          f"{len(report.failures)} failures, {len(report.warnings)} warnings; "
          f"CPU {cpu:.0%} and memory {memory:.0%} reserved")
    print(f"check_capacity: median {statistics.median(times) * 1000:.0f} ms, "
          f"best {min(times) * 1000:.0f} ms over {args.rounds} rounds")


if __name__ == "__main__":
    main()
