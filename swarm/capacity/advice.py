"""Why tasks do not fit, and what to change: the words of the capacity check's failures and of
its advice on GPU pools. Each failure names what blocks (a constraint no node matches, a
reservation larger than a size, a per-node limit, full nodes) and the change that fixes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from swarm.capacity.placement import NANO, NodeCapacity, NodeState, constraint_matches, host_mode_ports
from swarm.compose import Constraint, ServiceSpec
from swarm.config import GIB
from swarm.model import GPU_KIND
from swarm.suggest import close_matches

MIB = 1024**2


# ---- explanations -----------------------------------------------------------------------------


def shortfall(
    spec: ServiceSpec, wanted: int, placed: int, eligible: Sequence[NodeState], states: Sequence[NodeState]
) -> str:
    """Why only `placed` of the `wanted` tasks of `spec` fit (`eligible`: the nodes matching its
    constraints, after placement), and what to change."""
    if spec.mode == "global":
        if not eligible:
            return "a global service with no node to run on: " + _no_match(spec, [s.node for s in states])
        pending = [s.node.name for s in eligible if not s.tasks[spec.name]]
        head = f"runs on {placed} of the {wanted} nodes matching its constraints; no room on {', '.join(pending)}: "
        return head + why_full(spec, [s for s in eligible if not s.tasks[spec.name]], wanted)
    head = f"{placed} of {wanted} replicas fit: "
    if not eligible:
        return head + _no_match(spec, [s.node for s in states])
    return head + why_full(spec, eligible, wanted)


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
        f"{c} matches {pool_list([n for n in nodes if constraint_matches(c, n)])}" for c in spec.constraints
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
    if constraint.field == "node.labels.gpu" and constraint.value == "true":
        # The label every GPU pool's nodes carry: set by the pool key, not by hand.
        return ("add a GPU pool: `gpu: true` with a gpu-* size in swarm:nodePools.<pool> (its nodes get the "
                "label gpu=true and advertise their GPUs), or change the constraint")
    if constraint.field.startswith("node.labels."):
        key = constraint.field.removeprefix("node.labels.")
        return f"add `{key}: {constraint.value}` to a pool's labels (swarm:nodePools.<pool>.labels) or change the constraint"
    if constraint.field == "node.id":
        return "constrain on node.hostname or a node label instead"
    if constraint.field.startswith("engine.labels."):
        return "use node.labels.* (set per pool in swarm:nodePools.<pool>.labels) instead"
    return "change the constraint or the pools (swarm:nodePools)"


def why_full(spec: ServiceSpec, eligible: Sequence[NodeState], wanted: int) -> str:
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
        f"the eligible nodes are full: each task needs {demand(spec)}; left{after}: {blocked}; "
        f"lower the reservations, add nodes to {pool_list(s.node for s in roomy)} or use a larger size"
    )


def _per_node_advice(spec: ServiceSpec, wanted: int, roomy: Sequence[NodeState], limit: int, why: str) -> str:
    most = limit * len(roomy)
    extra_nodes = math.ceil(wanted / limit) - len(roomy)
    fixes = [f"lower replicas to {most}"]
    if host_mode_ports(spec):
        fixes.append("publish the port in ingress mode")
    else:
        fixes.append(f"raise max_replicas_per_node to {math.ceil(wanted / len(roomy))}")
    fixes.append(f"add {extra_nodes} node{'s' if extra_nodes > 1 else ''} to {pool_list(s.node for s in roomy)}")
    return (
        f"{wanted} replicas with {why} on {len(roomy)} eligible node{'s' if len(roomy) > 1 else ''} "
        f"({', '.join(s.node.name for s in roomy)}): at most {most} fit; {', '.join(fixes[:-1])} or {fixes[-1]}"
    )


def _what_blocks(spec: ServiceSpec, state: NodeState) -> str:
    """What one more task of `spec` finds on `state`: a taken host port, or the room left."""
    for port in sorted(host_mode_ports(spec)):
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
    ports = sorted(host_mode_ports(spec))
    if ports:
        protocol, port = ports[0]
        return 1, f"port {port}/{protocol} published in host mode (one task per node)"
    if spec.max_replicas_per_node:
        return spec.max_replicas_per_node, f"max_replicas_per_node: {spec.max_replicas_per_node}"
    return None


# ---- advice ---------------------------------------------------------------------------------------


def gpu_pools_shared(services: Sequence[ServiceSpec], eligible: Mapping[str, Sequence[NodeState]]) -> tuple[str, ...]:
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


def idle_gpu_pools(states: Sequence[NodeState]) -> tuple[str, ...]:
    """A GPU pool on which no task reserves a GPU: the most expensive droplets of the stack,
    paid for nothing a GPU does (a model's `gpus:` forgotten, or its constraints excluding them)."""
    pools: dict[str, list[NodeState]] = {}
    for state in states:
        if state.node.generic_resources.get(GPU_KIND):
            pools.setdefault(state.node.pool, []).append(state)
    warnings = []
    for pool, members in pools.items():
        if any(s.free_generic.get(GPU_KIND, 0) < s.node.generic_resources[GPU_KIND] for s in members):
            continue
        node = members[0].node
        cost = node.price_monthly * len(members)
        runs = "runs no task" if not any(s.total for s in members) else "runs no task that reserves a GPU"
        warnings.append(
            f"GPU pool {pool} ({len(members)} x {node.size}, ${cost:,.2f}/month) {runs}: reserve its GPUs in a "
            f"service (a catalogue model's `gpus: 1`, or deploy.resources.reservations.generic_resources kind GPU) "
            f"or set swarm:nodePools.{pool}.count to 0"
        )
    return tuple(warnings)


# ---- words and units ----------------------------------------------------------------------------


def _pools(nodes: Iterable[NodeCapacity]) -> dict[str, list[NodeCapacity]]:
    pools: dict[str, list[NodeCapacity]] = {}
    for node in nodes:
        pools.setdefault(node.pool, []).append(node)
    return pools


def pool_list(nodes: Iterable[NodeCapacity]) -> str:
    """The pools of `nodes`: "pool ml", "pools ml, gpu"."""
    names = list(_pools(nodes))
    if not names:
        return "no pool"
    return ("pool " if len(names) == 1 else "pools ") + ", ".join(names)


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}={value}" for key, value in sorted(labels.items())) + "}"


def _role_and_labels(node: NodeCapacity) -> str:
    return f"({node.role}, labels {_labels(node.labels)})"


def demand(spec: ServiceSpec) -> str:
    """What one task reserves, in words: "0.5 vCPU, 512 MiB, 1 GPU"."""
    reservations = spec.reservations
    parts = [_cpus(reservations.nano_cpus)] if reservations.nano_cpus else []
    parts += [format_memory(reservations.memory_bytes)] if reservations.memory_bytes else []
    parts += [f"{count} {kind}" for kind, count in sorted(reservations.generic_resources.items())]
    return ", ".join(parts) or "no reservations"


def _free(state: NodeState) -> str:
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

