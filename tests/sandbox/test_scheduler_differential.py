"""The capacity check against swarm's real scheduler.

Five sandbox hosts form a swarm (a manager, two `type=ml` workers, a `type=cheap` worker and a
`type=gpu` worker advertising one fake GPU). The checker gets the nodes exactly as swarm reports
them (`docker node inspect`: NanoCPUs, MemoryBytes, generic resources, labels, role, platform),
each scenario's stack file has reservations scaled to that capacity, and its services are
created one after the other with `docker service create`, in stack-file order, as the checker
places them. For every service the running tasks per node must be a placement the checker
allows when ties are broken either way (swarm breaks them at random), and the tasks that found
no room must be pending with "no suitable node".
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm.capacity import schedule
from swarm.capacity.placement import NodeCapacity
from swarm.compose import Constraint, ServiceSpec, load_stack_file
from tests.sandbox.harness import DEFAULT_IMAGE, Host, Sandbox, wait_for

# A sandbox of its own: it must not collide with sandbox_five or other suites' sandboxes.
PREFIX = "swcap"
SUBNET = "10.231.60.0/24"
MANAGER = "cap-manager-1"
HOSTS = {
    MANAGER: ({}, {}),
    "cap-ml-1": ({"type": "ml"}, {}),
    "cap-ml-2": ({"type": "ml"}, {}),
    "cap-cheap-1": ({"type": "cheap"}, {}),
    "cap-gpu-1": ({"type": "gpu"}, {"node-generic-resources": ["GPU=fake-uuid-1"]}),
}
# Stops at once on SIGTERM (a bare `sleep` as PID 1 would make every task stop take 10 s).
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


# Each scenario: services in stack-file order; `cpus` and `memory` reservations are fractions of
# one host's capacity, scaled into the stack file.
SCENARIOS: dict[str, dict[str, Any]] = {
    "spread, memory and competition": {
        # 4 workers hold 2 each: 5 replicas spread 2-1-1-1.
        "big": {"replicas": 5, "constraints": ["node.role==worker"], "reservations": {"memory": 0.45}},
        # Left on the ml nodes: 0.1 on one that got 2 big tasks, 0.55 on one with 1: 1 or 2 fit.
        "medium": {"replicas": 4, "constraints": ["node.labels.type==ml"], "reservations": {"memory": 0.3}},
        # The manager holds two.
        "cpu": {"replicas": 3, "constraints": ["node.role==manager"], "reservations": {"cpus": 0.4}},
    },
    "constraints, limits, global services and GPUs": {
        "capped": {"replicas": 3, "constraints": ["node.labels.type==ml"], "max_replicas_per_node": 1},
        "agent": {"mode": "global", "constraints": ["node.platform.os==linux"], "reservations": {"cpus": 0.3}},
        "nowhere": {"replicas": 2, "constraints": ["node.labels.type==database"]},
        "inference": {"replicas": 2, "reservations": {"generic_resources": [
            {"discrete_resource_spec": {"kind": "GPU", "value": 1}}]}},
        "cheap-hog": {"replicas": 1, "constraints": ["node.labels.type==cheap"], "reservations": {"cpus": 0.2}},
        # 0.7 left on the workers after the agent, 0.5 on the cheap one after the hog.
        "worker-agent": {"mode": "global", "constraints": ["node.role==worker"], "reservations": {"cpus": 0.6}},
        # Fewest tasks first: the cheap node (2 tasks; its worker-agent is pending), then two of
        # the three workers holding 3.
        "filler": {"replicas": 3, "constraints": ["node.role==worker"]},
    },
}


@dataclasses.dataclass
class Swarm:
    manager: Host
    hosts: list[Host]
    nodes: list[NodeCapacity]  # as the checker sees them, from `docker node inspect`


@pytest.fixture(scope="module")
def swarm(sandbox_workdir: Path, timings: dict[str, float]) -> Iterator[Swarm]:
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "capacity", subnet=SUBNET, prefix=PREFIX) as sandbox:
        with ThreadPoolExecutor() as pool:
            hosts = list(pool.map(lambda item: sandbox.add_host(item[0], item[1][1]), HOSTS.items()))
        sandbox.load_image()
        manager, *workers = hosts
        manager.docker("swarm", "init", "--advertise-addr", manager.ip)
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        with ThreadPoolExecutor() as pool:  # the token goes on stdin, never into a command line
            list(pool.map(lambda w: w.ssh(f'docker swarm join --token "$(cat)" {manager.ip}:2377', stdin=token),
                          workers))
        for name, (labels, _) in HOSTS.items():
            if labels:
                adds = [arg for key, value in labels.items() for arg in ("--label-add", f"{key}={value}")]
                manager.docker("node", "update", *adds, name)
        wait_for(lambda: len(ready_nodes(manager)) == len(HOSTS), f"{len(HOSTS)} Ready nodes")
        timings["scheduler differential: 5-node swarm up"] = time.monotonic() - started
        yield Swarm(manager, hosts, inspect_nodes(manager))


def ready_nodes(manager: Host) -> list[str]:
    out = manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
    return [line.split()[0] for line in out.splitlines() if line.endswith(" Ready")]


def inspect_nodes(manager: Host) -> list[NodeCapacity]:
    """The swarm's nodes as the checker's input, in the order HOSTS declares them."""
    ids = manager.docker("node", "ls", "-q").stdout.split()
    nodes = {}
    for raw in json.loads(manager.docker("node", "inspect", *ids).stdout):
        description, spec = raw["Description"], raw["Spec"]
        generic: Counter[str] = Counter()
        for resource in description["Resources"].get("GenericResources") or []:
            if "NamedResourceSpec" in resource:
                generic[resource["NamedResourceSpec"]["Kind"]] += 1
            else:
                generic[resource["DiscreteResourceSpec"]["Kind"]] += resource["DiscreteResourceSpec"]["Value"]
        name = description["Hostname"]
        nodes[name] = NodeCapacity(
            name=name,
            pool=name,
            role=spec["Role"],
            labels=spec.get("Labels") or {},
            size="sandbox host",
            nano_cpus=description["Resources"]["NanoCPUs"],
            memory_bytes=description["Resources"]["MemoryBytes"],
            generic_resources=dict(generic),
            engine_labels=description["Engine"].get("Labels") or {},
            os=description["Platform"]["OS"],
            arch=description["Platform"]["Architecture"],
        )
    return [nodes[name] for name in HOSTS]


def stack_file(tmp_path: Path, scenario: dict[str, Any], node: NodeCapacity) -> Path:
    """The scenario as a Compose file, its reservations scaled to `node`."""
    services = {}
    for name, definition in scenario.items():
        deploy: dict[str, Any] = {"mode": definition.get("mode", "replicated")}
        if "replicas" in definition:
            deploy["replicas"] = definition["replicas"]
        deploy["placement"] = {"constraints": definition.get("constraints", [])}
        if "max_replicas_per_node" in definition:
            deploy["placement"]["max_replicas_per_node"] = definition["max_replicas_per_node"]
        if "reservations" in definition:
            deploy["resources"] = {"reservations": {
                key: scale(key, value, node) for key, value in definition["reservations"].items()}}
        services[name] = {"image": DEFAULT_IMAGE, "deploy": deploy}
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump({"version": "3.8", "services": services}, sort_keys=False))
    return path


def scale(key: str, value: Any, node: NodeCapacity) -> Any:
    if key == "memory":
        return str(int(node.memory_bytes * value))  # bytes
    if key == "cpus":
        return str(Decimal(int(node.nano_cpus * value)) / 10**9)
    return value


def create_args(spec: ServiceSpec) -> list[str]:
    """`docker service create` for `spec`: what the program deploys, on the command line."""
    args = ["service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", spec.name]
    args += ["--mode", "global"] if spec.mode == "global" else ["--replicas", str(spec.replicas)]
    for constraint in spec.constraints:
        args += ["--constraint", str(constraint)]
    if spec.max_replicas_per_node:
        args += ["--replicas-max-per-node", str(spec.max_replicas_per_node)]
    reservations = spec.reservations
    if reservations.nano_cpus:
        args += ["--reserve-cpu", str(Decimal(reservations.nano_cpus) / 10**9)]
    if reservations.memory_bytes:
        args += ["--reserve-memory", str(reservations.memory_bytes)]
    for kind, count in reservations.generic_resources.items():
        args += ["--generic-resource", f"{kind}={count}"]
    return [*args, DEFAULT_IMAGE, *COMMAND]


def tasks(manager: Host, service: str) -> list[tuple[str, str, str]]:
    """(node, state, error) of the service's tasks that should run."""
    out = manager.docker("service", "ps", service, "--no-trunc", "--filter", "desired-state=running",
                         "--format", "{{.Node}}\t{{.CurrentState}}\t{{.Error}}").stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]  # type: ignore[misc]


def settled(manager: Host, service: str, expected: int) -> bool:
    """Every task runs, or the scheduler has given up on it for now."""
    found = tasks(manager, service)
    return len(found) == expected and all(
        state.startswith("Running") or (state.startswith("Pending") and error) for _, state, error in found
    )


def allowed_placements(nodes: list[NodeCapacity], earlier: list[tuple[ServiceSpec, Counter[str]]],
                       spec: ServiceSpec) -> set[frozenset[tuple[str, int]]]:
    """Every placement of `spec` the checker predicts, whatever order ties are broken in, on
    nodes that already hold the real placement of the services created before it."""
    # Earlier tasks pinned where swarm put them: only their reservations, host ports and count
    # of tasks per node matter to the next service.
    pinned = [
        dataclasses.replace(earlier_spec, name=f"{earlier_spec.name}@{node}", mode="replicated", replicas=count,
                            constraints=(Constraint("node.hostname", "==", node),), max_replicas_per_node=None)
        for earlier_spec, placement in earlier
        for node, count in placement.items()
    ]
    placements = set()
    for order in itertools.permutations(nodes):
        report = schedule(order, [*pinned, spec])
        *before, this = report.services
        assert all(p.failure is None for p in before), "swarm placed tasks where the checker sees no room"
        placements.add(frozenset(this.nodes.items()))
    return placements


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_real_scheduler_places_tasks_as_predicted(swarm: Swarm, scenario: str, tmp_path: Path,
                                                  timings: dict[str, float]) -> None:
    started = time.monotonic()
    stack = load_stack_file(stack_file(tmp_path, SCENARIOS[scenario], swarm.nodes[0]), stack="cap")
    prediction = {p.service: p for p in schedule(swarm.nodes, stack.services.values()).services}
    # Every scenario exercises both outcomes: tasks that run and tasks left pending.
    assert any(p.placed for p in prediction.values()) and any(p.failure for p in prediction.values())

    earlier: list[tuple[ServiceSpec, Counter[str]]] = []
    try:
        for spec in stack.services.values():
            swarm.manager.docker(*create_args(spec))
            wanted = prediction[spec.name].wanted
            wait_for(lambda name=spec.name, wanted=wanted: settled(swarm.manager, name, wanted),
                     f"{spec.name}: tasks settled")
            found = tasks(swarm.manager, spec.name)
            running = Counter(node for node, state, _ in found if state.startswith("Running"))
            pending = len(found) - sum(running.values())
            allowed = allowed_placements(swarm.nodes, earlier, spec)
            assert frozenset(running.items()) in allowed, (
                f"{spec.name}: swarm placed {dict(running)} ({pending} pending); "
                f"the checker allows {[dict(p) for p in allowed]}"
            )
            assert pending == wanted - sum(running.values())
            if spec.mode == "replicated":  # a global task waits on its own node, with the filter's reason
                assert all("no suitable node" in error for _, state, error in found if state.startswith("Pending"))
            earlier.append((spec, running))
    finally:
        swarm.manager.docker("service", "rm", *stack.services, check=False)
        wait_for(lambda: not any(h.docker("ps", "-q").stdout.strip() for h in swarm.hosts), "tasks removed")
    timings[f"scheduler differential: {scenario}"] = time.monotonic() - started
