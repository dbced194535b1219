"""Swarmkit's scheduler as a pure model: the nodes as it sees them, which of them a task may go
to, and where each task lands. swarm/capacity/check.py runs it over a whole stack; this module places.

What it models, as swarmkit does it:
- Eligibility: a node takes a task of a service when it matches every placement constraint
  (`==`/`!=`, values compared case-insensitively, a missing label counting as the empty string),
  the node's remaining resources cover the task's reservations (CPU, memory, generic resources
  such as `GPU`), `max_replicas_per_node` is not reached, and no task on it already publishes
  the same port in host mode.
- What constraints can see offline: `node.role` and `node.labels.*` from the pool,
  `node.hostname` from the droplet name (DigitalOcean names the host after the droplet),
  `node.platform.os`/`arch` as `linux`/`x86_64` (every droplet; swarm reports `x86_64`, so a
  constraint on `amd64` matches nothing, as on a real swarm), `engine.labels.*` as none (the
  program sets no daemon labels). A node ID exists only once the node has joined and changes
  when a droplet is replaced: `node.id==X` matches no node (pin by hostname or label instead)
  and `node.id!=X` matches every node.
- Spread: each task of a replicated service goes to the eligible node with the fewest tasks of
  that service, then the fewest tasks in total (swarmkit's order; ties go to the node declared
  first, where swarm picks either). A global service gets one task on every node matching its
  constraints; a task whose reservations do not fit stays pending.
- Capacity: a node offers its droplet size minus the OS and Docker allowance of `swarm.config.sizes`
  (swarm itself reserves nothing: the allowance keeps tasks' reservations from promising memory
  the OS uses); a GPU size offers `gpus` generic resources of kind `GPU`.

Placement preferences (`spread: node.labels.X`) are not modelled: they change which nodes tasks
land on, rarely how many fit (docs/capacity.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from swarm.compose import Constraint, ServiceSpec
from swarm.config import ClusterConfig
from swarm.model import GPU_KIND

NANO = 1_000_000_000
# What every droplet reports to swarm (the Ubuntu images are all x86_64 Linux).
DROPLET_OS = "linux"
DROPLET_ARCH = "x86_64"


@dataclass(frozen=True)
class NodeCapacity:
    """One node as the scheduler sees it: what constraints match against and what tasks may
    reserve. Built from a pool by `cluster_nodes`, or by hand for a swarm that exists."""

    name: str  # the hostname (node.hostname)
    pool: str
    role: str  # manager | worker
    labels: Mapping[str, str]  # node labels (node.labels.*)
    size: str  # what the node is, for messages: a size slug
    nano_cpus: int  # allocatable CPU, in billionths of a CPU as swarm counts it
    memory_bytes: int  # allocatable memory
    generic_resources: Mapping[str, int] = field(default_factory=dict)  # kind -> count
    price_monthly: float = 0.0
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    volume_path: str | None = None  # the pool's block-storage volume, attached to this droplet only
    os: str = DROPLET_OS
    arch: str = DROPLET_ARCH


def cluster_nodes(config: ClusterConfig) -> tuple[NodeCapacity, ...]:
    """The nodes of `config`, in pool order, with what their droplet size leaves for tasks."""
    return tuple(
        NodeCapacity(
            name=node.name,
            pool=node.pool.name,
            role=node.role,
            labels=dict(node.pool.labels),
            size=node.pool.size.slug,
            nano_cpus=round(node.pool.size.allocatable_cpus * NANO),
            memory_bytes=node.pool.size.allocatable_memory_bytes,
            generic_resources={GPU_KIND: node.pool.size.gpus} if node.pool.size.gpus else {},
            price_monthly=node.pool.size.price_monthly,
            volume_path=node.pool.volume.mount_path if node.pool.volume else None,
        )
        for node in config.nodes
    )


def node_matches(constraints: Iterable[Constraint], node: NodeCapacity) -> bool:
    return all(constraint_matches(constraint, node) for constraint in constraints)


def constraint_matches(constraint: Constraint, node: NodeCapacity) -> bool:
    """Swarmkit's constraint.Match: case-insensitive values, a missing label is ""."""
    field_, operator, value = constraint
    if field_ == "node.id":  # unknowable before the node joins (module docstring)
        return operator == "!="
    if field_.startswith("node.labels."):
        actual = node.labels.get(field_.removeprefix("node.labels."), "")
    elif field_.startswith("engine.labels."):
        actual = node.engine_labels.get(field_.removeprefix("engine.labels."), "")
    else:
        actual = {
            "node.hostname": node.name,
            "node.role": node.role,
            "node.platform.os": node.os,
            "node.platform.arch": node.arch,
        }[field_]
    return (actual.casefold() == value.casefold()) == (operator == "==")


# ---- simulation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeLoad:
    node: NodeCapacity
    tasks: Mapping[str, int]  # service -> tasks, in placement order
    reserved_nano_cpus: int
    reserved_memory_bytes: int
    reserved_generic: Mapping[str, int]


@dataclass
class NodeState:
    """A node during placement: what is left on it and what runs there."""

    node: NodeCapacity
    index: int  # declaration order: breaks ties
    free_nano_cpus: int
    free_memory_bytes: int
    free_generic: dict[str, int]
    host_ports: dict[tuple[str, int], str]  # (protocol, port) published in host mode -> service
    tasks: Counter[str]
    total: int = 0

    @classmethod
    def empty(cls, node: NodeCapacity, index: int) -> NodeState:
        return cls(node, index, node.nano_cpus, node.memory_bytes, dict(node.generic_resources), {}, Counter())

    def copy(self) -> NodeState:
        return NodeState(
            self.node, self.index, self.free_nano_cpus, self.free_memory_bytes, dict(self.free_generic),
            dict(self.host_ports), Counter(self.tasks), self.total,
        )

    def room_for(self, spec: ServiceSpec) -> bool:
        """Swarmkit's resource, max-replicas and host-port filters."""
        reservations = spec.reservations
        return (
            reservations.nano_cpus <= self.free_nano_cpus
            and reservations.memory_bytes <= self.free_memory_bytes
            and all(count <= self.free_generic.get(kind, 0) for kind, count in reservations.generic_resources.items())
            and (not spec.max_replicas_per_node or self.tasks[spec.name] < spec.max_replicas_per_node)
            and not host_mode_ports(spec) & self.host_ports.keys()
        )

    def add(self, spec: ServiceSpec) -> None:
        reservations = spec.reservations
        self.free_nano_cpus -= reservations.nano_cpus
        self.free_memory_bytes -= reservations.memory_bytes
        for kind, count in reservations.generic_resources.items():
            self.free_generic[kind] -= count
        self.host_ports |= dict.fromkeys(host_mode_ports(spec), spec.name)
        self.tasks[spec.name] += 1
        self.total += 1

    def load(self) -> NodeLoad:
        node = self.node
        return NodeLoad(
            node=node,
            tasks=dict(self.tasks),
            reserved_nano_cpus=node.nano_cpus - self.free_nano_cpus,
            reserved_memory_bytes=node.memory_bytes - self.free_memory_bytes,
            reserved_generic={k: n - self.free_generic.get(k, 0) for k, n in node.generic_resources.items()},
        )


def host_mode_ports(spec: ServiceSpec) -> set[tuple[str, int]]:
    return {(port.protocol, port.published) for port in spec.ports if port.mode == "host" and port.published}


def place(spec: ServiceSpec, eligible: Sequence[NodeState], count: int) -> int:
    """Place up to `count` tasks of `spec` on `eligible`; return how many fit."""
    if spec.mode == "global":  # one task per node, pinned there: it fits or stays pending
        fitting = [state for state in eligible if state.room_for(spec)]
        for state in fitting:
            state.add(spec)
        return len(fitting)
    candidates = list(eligible)
    for placed in range(count):
        # A node that is full stays full while this service is placed: drop it for good.
        candidates = [state for state in candidates if state.room_for(spec)]
        if not candidates:
            return placed
        min(candidates, key=lambda s: (s.tasks[spec.name], s.total, s.index)).add(spec)
    return count

