"""Capacity and placement check: where swarm will put each task, and which tasks it cannot place.

A pure model of swarmkit's scheduler, run over the validated config and stack before anything is
deployed, so that `REPLICAS 2/3` and `Pending: no suitable node` show up at preview instead.

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
- Capacity: a node offers its droplet size minus the OS and Docker allowance of `swarm.sizes`
  (swarm itself reserves nothing: the allowance keeps tasks' reservations from promising memory
  the OS uses); a GPU size offers `gpus` generic resources of kind `GPU`.

Deliberate simplifications, each on the safe side or stated in docs/capacity.md:
- Services are placed one after the other in stack-file order. A real deploy creates them
  concurrently, so when nodes are nearly full another order may leave a different service short.
- Placement preferences (`spread: node.labels.X`) are not modelled: they change which nodes
  tasks land on, rarely how many fit.
- Losing a node: its tasks are re-placed on the remaining nodes, whose tasks stay where they are
  (swarm does not rebalance). A service that would then run fewer replicas gets a warning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from swarm.compose import Constraint, ServiceSpec, StackSpec
from swarm.config import ClusterConfig
from swarm.service_args import update_order
from swarm.sizes import GIB
from swarm.suggest import close_matches

GPU_KIND = "GPU"  # the generic resource kind GPU nodes advertise (swarm/cloudinit.py, docs/gpus-and-catalogue.md)
NANO = 1_000_000_000
MIB = 1024**2
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


# ---- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlacement:
    service: str
    mode: str  # replicated | global
    wanted: int  # replicas, or matching nodes for a global service
    placed: int  # tasks that fit
    nodes: Mapping[str, int]  # node name -> tasks, in node order
    failure: str | None  # why not every task fits, and what to change
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeLoad:
    node: NodeCapacity
    tasks: Mapping[str, int]  # service -> tasks, in placement order
    reserved_nano_cpus: int
    reserved_memory_bytes: int
    reserved_generic: Mapping[str, int]


@dataclass(frozen=True)
class CapacityReport:
    services: tuple[ServicePlacement, ...]
    nodes: tuple[NodeLoad, ...]
    pool_warnings: tuple[str, ...] = ()  # about pools rather than one service (cost)

    @property
    def schedulable(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[str, ...]:
        return tuple(f"{s.service}: {s.failure}" for s in self.services if s.failure)

    @property
    def warnings(self) -> tuple[str, ...]:
        per_service = tuple(f"{s.service}: {warning}" for s in self.services for warning in s.warnings)
        return per_service + self.pool_warnings

    @property
    def monthly_cost(self) -> float:
        return round(sum(load.node.price_monthly for load in self.nodes), 2)

    def failure_text(self, stack_file: str) -> str:
        """The message a failed preview shows: every unschedulable service at once."""
        noun = "service" if len(self.failures) == 1 else "services"
        lines = "\n".join(f"  - {failure}" for failure in self.failures)
        return (
            f"{stack_file}: {len(self.failures)} {noun} cannot be scheduled on the stack's nodes "
            f"(swarm would leave tasks pending); nothing was deployed:\n{lines}"
        )


# ---- the check --------------------------------------------------------------------------------


def check_capacity(config: ClusterConfig, stack: StackSpec) -> CapacityReport:
    """Place `stack`'s services on the nodes `config` declares, as swarm would."""
    return schedule(cluster_nodes(config), stack.services.values())


def schedule(nodes: Sequence[NodeCapacity], services: Iterable[ServiceSpec]) -> CapacityReport:
    """Place `services` in the given order on `nodes`, then check that each could lose a node
    and, when updated start-first, start one extra task."""
    services = list(services)
    states = [_NodeState.empty(node, index) for index, node in enumerate(nodes)]
    eligible = {spec.name: [s for s in states if node_matches(spec.constraints, s.node)] for spec in services}
    for spec in services:
        _place(spec, eligible[spec.name], _wanted(spec, eligible[spec.name]))

    losses = _node_losses(services, states, eligible)
    placements = []
    for spec in services:
        wanted = _wanted(spec, eligible[spec.name])
        placed = sum(s.tasks[spec.name] for s in states)
        # A global service that matches no node runs nowhere: surely not what was meant.
        short = placed < wanted or (spec.mode == "global" and not eligible[spec.name])
        failure = _shortfall(spec, wanted, placed, eligible[spec.name], states) if short else None
        warnings = () if failure else _warnings(spec, wanted, eligible[spec.name], losses)
        placements.append(
            ServicePlacement(
                service=spec.name,
                mode=spec.mode,
                wanted=wanted,
                placed=placed,
                nodes={s.node.name: s.tasks[spec.name] for s in states if s.tasks[spec.name]},
                failure=failure,
                warnings=warnings,
            )
        )
    return CapacityReport(tuple(placements), tuple(s.load() for s in states), _gpu_pools_shared(services, eligible))


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


@dataclass
class _NodeState:
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
    def empty(cls, node: NodeCapacity, index: int) -> _NodeState:
        return cls(node, index, node.nano_cpus, node.memory_bytes, dict(node.generic_resources), {}, Counter())

    def copy(self) -> _NodeState:
        return _NodeState(
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
            and not _host_ports(spec) & self.host_ports.keys()
        )

    def add(self, spec: ServiceSpec) -> None:
        reservations = spec.reservations
        self.free_nano_cpus -= reservations.nano_cpus
        self.free_memory_bytes -= reservations.memory_bytes
        for kind, count in reservations.generic_resources.items():
            self.free_generic[kind] -= count
        self.host_ports |= dict.fromkeys(_host_ports(spec), spec.name)
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


def _host_ports(spec: ServiceSpec) -> set[tuple[str, int]]:
    return {(port.protocol, port.published) for port in spec.ports if port.mode == "host" and port.published}


def _wanted(spec: ServiceSpec, eligible: Sequence[_NodeState]) -> int:
    return len(eligible) if spec.mode == "global" else spec.replicas or 0


def _place(spec: ServiceSpec, eligible: Sequence[_NodeState], count: int) -> int:
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


@dataclass(frozen=True)
class _Loss:
    """A replicated service left short by the failure of one node."""

    node: _NodeState  # the lost node, as it was
    lost: int  # replicas that found no other node
    remaining: list[_NodeState]  # the other eligible nodes after re-placement


def _node_losses(
    services: Sequence[ServiceSpec], states: Sequence[_NodeState], eligible: Mapping[str, Sequence[_NodeState]]
) -> dict[str, _Loss]:
    """For each replicated service, the worst single-node failure (most replicas lost; ties:
    the node declared first), when some node's failure leaves it short."""
    worst: dict[str, _Loss] = {}
    for lost in states:
        if not lost.total:
            continue
        survivors = {state.index: state.copy() for state in states if state is not lost}
        for spec in services:
            displaced = lost.tasks[spec.name]
            if not displaced or spec.mode == "global":  # a global task dies with its node
                continue
            remaining = [survivors[s.index] for s in eligible[spec.name] if s is not lost]
            short = displaced - _place(spec, remaining, displaced)
            if short and short > (worst[spec.name].lost if spec.name in worst else 0):
                worst[spec.name] = _Loss(lost, short, remaining)
    return worst


# ---- explanations -----------------------------------------------------------------------------


def _shortfall(
    spec: ServiceSpec, wanted: int, placed: int, eligible: Sequence[_NodeState], states: Sequence[_NodeState]
) -> str:
    if spec.mode == "global":
        if not eligible:
            return "a global service with no node to run on: " + _no_match(spec, [s.node for s in states])
        pending = [s.node.name for s in eligible if not s.tasks[spec.name]]
        head = f"runs on {placed} of the {wanted} nodes matching its constraints; no room on {', '.join(pending)}: "
        return head + _why_full(spec, [s for s in eligible if not s.tasks[spec.name]], wanted)
    head = f"{placed} of {wanted} replicas fit: "
    if not eligible:
        return head + _no_match(spec, [s.node for s in states])
    return head + _why_full(spec, eligible, wanted)


def _no_match(spec: ServiceSpec, nodes: Sequence[NodeCapacity]) -> str:
    """Name the constraint that excludes every node, or the combination that does."""
    pools = _pools(nodes)
    for constraint in spec.constraints:
        if not any(constraint_matches(constraint, node) for node in nodes):
            hint = _similar_constraint(constraint, nodes)
            return (
                f"no node matches {constraint} ({_what_nodes_have(constraint, nodes)}); "
                f"{hint or _fix_constraint(constraint)}"
            )
    matches = [
        f"{c} matches {_pool_list([n for n in nodes if constraint_matches(c, n)])}" for c in spec.constraints
    ]
    return (
        f"no node matches all of its constraints together: {'; '.join(matches)} "
        f"(pools: {', '.join(f'{name} {_role_and_labels(pool[0])}' for name, pool in pools.items())}); "
        "change the constraints or a pool's role or labels so that one pool satisfies them all"
    )


def _what_nodes_have(constraint: Constraint, nodes: Sequence[NodeCapacity]) -> str:
    field_ = constraint.field
    pools = _pools(nodes)
    if field_.startswith("node.labels."):
        return "the pools' labels: " + ", ".join(f"{name} {_labels(pool[0].labels)}" for name, pool in pools.items())
    if field_ == "node.role":
        return "the pools' roles: " + ", ".join(f"{name} {pool[0].role}" for name, pool in pools.items())
    if field_ == "node.hostname":
        return "the nodes: " + ", ".join(node.name for node in nodes)
    if field_ == "node.id":
        return "node IDs are assigned when nodes join and change when a droplet is replaced, so no stack can rely on one"
    if field_.startswith("engine.labels."):
        return "the nodes' Docker daemons carry no engine labels"
    return f"every node is {nodes[0].os}/{nodes[0].arch}" if nodes else "there are no nodes"


def _similar_constraint(constraint: Constraint, nodes: Sequence[NodeCapacity]) -> str:
    """'did you mean ...?' when the constraint looks like a typo of one some node satisfies: a
    label key or value (`machine-learnig`), a hostname or a role."""
    field_, operator, value = constraint
    if operator != "==":
        return ""
    if field_.startswith("node.labels."):
        key = field_.removeprefix("node.labels.")
        keys = {k for node in nodes for k in node.labels}
        if key not in keys:
            return "".join(
                f"did you mean node.labels.{match}?" for match in close_matches(key, keys, limit=1)
            )
        values = [node.labels[key] for node in nodes if key in node.labels]
    elif field_ in ("node.hostname", "node.role"):
        values = [node.name if field_ == "node.hostname" else node.role for node in nodes]
    else:
        return ""
    matches = [f"{field_} == {match}" for match in close_matches(value, values)]
    return f"did you mean {' or '.join(matches)}?" if matches else ""


def _fix_constraint(constraint: Constraint) -> str:
    if constraint.field.startswith("node.labels."):
        key = constraint.field.removeprefix("node.labels.")
        return f"add `{key}: {constraint.value}` to a pool's labels (swarm:nodePools.<pool>.labels) or change the constraint"
    if constraint.field == "node.id":
        return "constrain on node.hostname or a node label instead"
    if constraint.field.startswith("engine.labels."):
        return "use node.labels.* (set per pool in swarm:nodePools.<pool>.labels) instead"
    return "change the constraint or the pools (swarm:nodePools)"


def _why_full(spec: ServiceSpec, eligible: Sequence[_NodeState], wanted: int) -> str:
    """Why `eligible` (after placement) holds no more tasks of `spec`: too big for any of them
    even empty, a per-node limit, or room taken by other services."""
    nodes = [state.node for state in eligible]
    too_big = {node.pool: excess for node in nodes if (excess := _exceeds_empty(spec, node))}
    if len(too_big) == len(_pools(nodes)):
        return "; ".join(too_big.values())

    roomy = [state for state in eligible if state.node.pool not in too_big]
    per_node = _per_node_limit(spec) if spec.mode == "replicated" else None
    if per_node is not None:
        limit, why = per_node
        most = limit * len(roomy)
        if most < wanted and sum(state.tasks[spec.name] for state in roomy) == most:
            return _per_node_advice(spec, wanted, roomy, limit, why)

    blocked = ", ".join(f"{state.node.name} {_what_blocks(spec, state)}" for state in roomy)
    others = sorted({name for state in roomy for name in state.tasks if name != spec.name})
    after = f" after {', '.join(others)}" if others else ""
    return (
        f"the eligible nodes are full: each task needs {_demand(spec)}; left{after}: {blocked}; "
        f"lower the reservations, add nodes to {_pool_list(s.node for s in roomy)} or use a larger size"
    )


def _per_node_advice(spec: ServiceSpec, wanted: int, roomy: Sequence[_NodeState], limit: int, why: str) -> str:
    most = limit * len(roomy)
    extra_nodes = math.ceil(wanted / limit) - len(roomy)
    fixes = [f"lower replicas to {most}"]
    if _host_ports(spec):
        fixes.append("publish the port in ingress mode")
    else:
        fixes.append(f"raise max_replicas_per_node to {math.ceil(wanted / len(roomy))}")
    fixes.append(f"add {extra_nodes} node{'s' if extra_nodes > 1 else ''} to {_pool_list(s.node for s in roomy)}")
    return (
        f"{wanted} replicas with {why} on {len(roomy)} eligible node{'s' if len(roomy) > 1 else ''} "
        f"({', '.join(s.node.name for s in roomy)}): at most {most} fit; {', '.join(fixes[:-1])} or {fixes[-1]}"
    )


def _what_blocks(spec: ServiceSpec, state: _NodeState) -> str:
    """What one more task of `spec` finds on `state`: a taken host port, or the room left."""
    for port in sorted(_host_ports(spec)):
        if port in state.host_ports:
            return f"(port {port[1]}/{port[0]} taken in host mode by {state.host_ports[port]})"
    return _free(state)


def _exceeds_empty(spec: ServiceSpec, node: NodeCapacity) -> str | None:
    """Why one task of `spec` would not fit even on an empty `node`, or None."""
    reservations, fix = spec.reservations, f"or use a larger size for pool {node.pool}"
    if reservations.nano_cpus > node.nano_cpus:
        return (
            f"reservation of {_cpus(reservations.nano_cpus)} exceeds what {node.size} offers "
            f"({_cpus(node.nano_cpus)} available after the OS allowance); lower deploy.resources.reservations.cpus {fix}"
        )
    if reservations.memory_bytes > node.memory_bytes:
        return (
            f"reservation of {format_memory(reservations.memory_bytes)} exceeds what {node.size} offers "
            f"({format_memory(node.memory_bytes)} available after the OS allowance); "
            f"lower deploy.resources.reservations.memory {fix}"
        )
    for kind, count in reservations.generic_resources.items():
        offered = node.generic_resources.get(kind, 0)
        if count > offered:
            hint = (
                f"give pool {node.pool} a GPU size (gpu-*, `gpu: true`) or constrain the service to a GPU pool"
                if kind == GPU_KIND
                else f"no pool advertises {kind}"
            )
            return f"reservation of {count} {kind} exceeds what {node.size} offers ({offered}); {hint}"
    return None


def _per_node_limit(spec: ServiceSpec) -> tuple[int, str] | None:
    """How many tasks of `spec` one node can hold whatever its size, and why."""
    ports = sorted(_host_ports(spec))
    if ports:
        protocol, port = ports[0]
        return 1, f"port {port}/{protocol} published in host mode (one task per node)"
    if spec.max_replicas_per_node:
        return spec.max_replicas_per_node, f"max_replicas_per_node: {spec.max_replicas_per_node}"
    return None


def _warnings(
    spec: ServiceSpec, wanted: int, eligible: Sequence[_NodeState], losses: Mapping[str, _Loss]
) -> tuple[str, ...]:
    warnings = []
    loss = losses.get(spec.name)
    if loss is not None:
        node = loss.node.node
        if loss.remaining:
            why = _why_full(spec, loss.remaining, wanted)
        elif (volume := _on_node_volume(spec, node)) is not None:
            # Another node would not have the data: a DigitalOcean volume attaches to one droplet.
            why = (
                f"it keeps its data on {volume}, on the block-storage volume of pool {node.pool}, which attaches to one "
                f"droplet at a time, so another node would not help; keep backups and expect downtime while "
                f"the droplet is replaced (docs/day-2-operations.md)"
            )
        else:
            why = (
                f"it is the only node matching {' and '.join(map(str, spec.constraints)) or 'its constraints'}; "
                f"add a node to pool {node.pool}"
            )
        warnings.append(f"would run {wanted - loss.lost} of {wanted} replicas if {node.name} failed: {why}")
    if wanted and update_order(spec) == "start-first" and not _room_to_update(spec, eligible):
        warnings.append(
            f"is updated start-first (each new task starts before the old one stops), but no node has room for "
            f"one more task ({_demand(spec)}): an update would stall with the new task pending; free room on "
            f"{_pool_list([s.node for s in eligible])} or set deploy.update_config.order: stop-first"
        )
    return tuple(warnings)


def _on_node_volume(spec: ServiceSpec, node: NodeCapacity) -> str | None:
    """The bind-mount source of `spec` that lies on `node`'s block-storage volume, if any."""
    if not node.volume_path:
        return None
    for mount in spec.mounts:
        if mount.type == "bind" and mount.source and (
            mount.source == node.volume_path or mount.source.startswith(node.volume_path.rstrip("/") + "/")
        ):
            return mount.source
    return None


def _gpu_pools_shared(services: Sequence[ServiceSpec], eligible: Mapping[str, Sequence[_NodeState]]) -> tuple[str, ...]:
    """A GPU pool whose nodes services without a GPU reservation may run on: they can take the
    CPU and memory of the most expensive droplets, and nothing says so until the bill."""
    shared: dict[str, list[str]] = {}
    nodes: dict[str, NodeCapacity] = {}
    for spec in services:
        if spec.reservations.generic_resources.get(GPU_KIND):
            continue
        for state in eligible[spec.name]:
            if state.node.generic_resources.get(GPU_KIND):
                nodes.setdefault(state.node.pool, state.node)
                if spec.name not in shared.setdefault(state.node.pool, []):
                    shared[state.node.pool].append(spec.name)
    return tuple(
        f"pool {pool} ({nodes[pool].size}, ${nodes[pool].price_monthly:,.2f}/month per node) may run "
        f"{len(names)} service{'s' if len(names) > 1 else ''} that reserve no GPU ({', '.join(names)}): "
        f"they can fill the GPU nodes' CPU and memory; constrain them to another pool "
        f"(e.g. node.labels.gpu != true) or give the GPU pool labels of its own"
        for pool, names in shared.items()
    )


def _room_to_update(spec: ServiceSpec, eligible: Sequence[_NodeState]) -> bool:
    """A start-first update runs one extra task: on the node it replaces (global) or on any
    eligible node (replicated)."""
    if spec.mode == "global":
        return all(state.room_for(spec) for state in eligible)
    return any(state.room_for(spec) for state in eligible)


# ---- words and units ----------------------------------------------------------------------------


def _pools(nodes: Iterable[NodeCapacity]) -> dict[str, list[NodeCapacity]]:
    pools: dict[str, list[NodeCapacity]] = {}
    for node in nodes:
        pools.setdefault(node.pool, []).append(node)
    return pools


def _pool_list(nodes: Iterable[NodeCapacity]) -> str:
    names = list(_pools(nodes))
    if not names:
        return "no pool"
    return ("pool " if len(names) == 1 else "pools ") + ", ".join(names)


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}={value}" for key, value in sorted(labels.items())) + "}"


def _role_and_labels(node: NodeCapacity) -> str:
    return f"({node.role}, labels {_labels(node.labels)})"


def _demand(spec: ServiceSpec) -> str:
    reservations = spec.reservations
    parts = [_cpus(reservations.nano_cpus)] if reservations.nano_cpus else []
    parts += [format_memory(reservations.memory_bytes)] if reservations.memory_bytes else []
    parts += [f"{count} {kind}" for kind, count in sorted(reservations.generic_resources.items())]
    return ", ".join(parts) or "no reservations"


def _free(state: _NodeState) -> str:
    parts = [_cpus(state.free_nano_cpus), format_memory(state.free_memory_bytes)]
    parts += [f"{count} {kind}" for kind, count in sorted(state.free_generic.items())]
    return "(" + ", ".join(parts) + ")"


def format_cpus(nano_cpus: int) -> str:
    return f"{nano_cpus / NANO:.2f}".rstrip("0").rstrip(".")


def format_memory(memory_bytes: int) -> str:
    if not memory_bytes:
        return "0"
    if memory_bytes >= GIB:
        return f"{memory_bytes / GIB:.1f}".removesuffix(".0") + " GiB"
    return f"{memory_bytes / MIB:.0f} MiB"


def _cpus(nano_cpus: int) -> str:
    return f"{format_cpus(nano_cpus)} vCPU"
