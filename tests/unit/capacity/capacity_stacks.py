"""Stacks, pools and nodes for the capacity tests (test_placement, test_check,
test_advice): the reference stack, a cluster from pools, services from their placement
and reservations, and nodes built by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from swarm.capacity.placement import NodeCapacity
from swarm.compose import StackSpec, load_stack_file
from swarm.config import ClusterConfig, load_stack_config_file, parse_config
from swarm.config.sizes import GIB
from tests.pulumi_program import PROJECT_ROOT, reference_stack_text

PROD_STACK = reference_stack_text()
FOUR_API_REPLICAS_ONE_PER_NODE = PROD_STACK.replace(
    "      replicas: 3\n      placement:\n", "      replicas: 4\n      placement:\n        max_replicas_per_node: 1\n"
)
MANAGER_POOL = {"role": "manager", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "database"}}


def prod_config() -> ClusterConfig:
    return load_stack_config_file(PROJECT_ROOT, "prod")


def cluster(pools: dict[str, Any]) -> ClusterConfig:
    gpus = any(isinstance(pool, dict) and pool.get("gpu") for pool in pools.values())
    values = {"region": "tor1" if gpus else "fra1", "adminCidrs": ["203.0.113.0/24"], "nodePools": pools,
              "stackFile": str(PROJECT_ROOT / "stacks" / "prod.yaml")}
    return parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")


def stack(tmp_path: Path, text: str) -> StackSpec:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return load_stack_file(path, stack="prod")


def services(tmp_path: Path, definitions: dict[str, Any]) -> StackSpec:
    return stack(tmp_path, yaml.safe_dump({"version": "3.8", "services": definitions}, sort_keys=False))


def service(replicas: int | None = 1, constraints: tuple[str, ...] = (), cpus: str | None = None,
            memory: str | None = None, gpus: int = 0, max_per_node: int | None = None, **deploy: Any) -> dict:
    """A Compose service definition with the placement and reservations given."""
    reservations: dict[str, Any] = {}
    if cpus:
        reservations["cpus"] = cpus
    if memory:
        reservations["memory"] = memory
    if gpus:
        reservations["generic_resources"] = [{"discrete_resource_spec": {"kind": "GPU", "value": gpus}}]
    placement: dict[str, Any] = {"constraints": list(constraints)} if constraints else {}
    if max_per_node:
        placement["max_replicas_per_node"] = max_per_node
    section: dict[str, Any] = {**deploy}
    if replicas is not None:
        section["replicas"] = replicas
    if placement:
        section["placement"] = placement
    if reservations:
        section["resources"] = {"reservations": reservations}
    return {"image": "registry.example.com/app:1", "deploy": section}


def node(name: str, cpus: float = 4, memory_gib: float = 8, pool: str = "pool", role: str = "worker",
         labels: dict[str, str] | None = None, gpus: int = 0) -> NodeCapacity:
    return NodeCapacity(name=name, pool=pool, role=role, labels=labels or {}, size="test-size",
                        nano_cpus=int(cpus * 1e9), memory_bytes=int(memory_gib * GIB),
                        generic_resources={"GPU": gpus} if gpus else {})


def by_name(report):
    return {placement.service: placement for placement in report.services}
