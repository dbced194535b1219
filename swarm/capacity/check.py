"""Capacity and placement check: where swarm will put each task, and which tasks it cannot place.

A pure model of swarmkit's scheduler (swarm/capacity/placement.py), run over the validated config and
stack before anything is deployed, so that `REPLICAS 2/3` and `Pending: no suitable node` show up
at preview instead. Why a task does not fit, and what to change, is worded in
swarm/capacity/advice.py. This module places the stack, then asks what if: a node is lost, a
service is updated start-first.

Deliberate simplifications, each on the safe side or stated in docs/capacity.md:
- Services are placed one after the other in stack-file order. A real deploy creates them
  concurrently, so when nodes are nearly full another order may leave a different service short.
- Losing a node: its tasks are re-placed on the remaining nodes, whose tasks stay where they are
  (swarm does not rebalance). A service that would then run fewer replicas gets a warning.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from swarm.capacity.advice import demand, gpu_pools_shared, idle_gpu_pools, pool_list, shortfall, why_full
from swarm.capacity.placement import NodeCapacity, NodeLoad, NodeState, cluster_nodes, node_matches, place
from swarm.compose import ServiceSpec, StackSpec, update_order
from swarm.config import ClusterConfig
from swarm.diagnostics import WARNING, Problem

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
    def warnings(self) -> tuple[Problem, ...]:
        """Per service ("api: would run ..."), then about pools; printed, each is one line."""
        per_service = tuple(
            Problem("", (s.service,), warning, WARNING, s.service) for s in self.services for warning in s.warnings
        )
        return per_service + tuple(Problem("", (), warning, WARNING) for warning in self.pool_warnings)

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


def check_capacity(config: ClusterConfig, stack: StackSpec, backed_up: Collection[str] = ()) -> CapacityReport:
    """Place `stack`'s services on the nodes `config` declares, as swarm would. `backed_up`: the
    services swarm:backups backs up (their data on a node's volume is not warned about again)."""
    return schedule(cluster_nodes(config), stack.services.values(), node_loss=config.node_loss_warnings,
                    backed_up=backed_up)


def schedule(nodes: Sequence[NodeCapacity], services: Iterable[ServiceSpec], *, node_loss: bool = True,
             backed_up: Collection[str] = ()) -> CapacityReport:
    """Place `services` in the given order on `nodes`, then check that each could lose a node
    (unless `node_loss` is false: swarm:nodeLossWarnings) and, when updated start-first, start
    one extra task."""
    services = list(services)
    states = [NodeState.empty(node, index) for index, node in enumerate(nodes)]
    eligible = {spec.name: [s for s in states if node_matches(spec.constraints, s.node)] for spec in services}
    for spec in services:
        place(spec, eligible[spec.name], _wanted(spec, eligible[spec.name]))

    losses = _node_losses(services, states, eligible) if node_loss else {}
    placements = []
    for spec in services:
        wanted = _wanted(spec, eligible[spec.name])
        placed = sum(s.tasks[spec.name] for s in states)
        # A global service that matches no node runs nowhere: surely not what was meant.
        short = placed < wanted or (spec.mode == "global" and not eligible[spec.name])
        failure = shortfall(spec, wanted, placed, eligible[spec.name], states) if short else None
        warnings = () if failure else _warnings(spec, wanted, eligible[spec.name], losses, backed_up)
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
    pool_warnings = (*idle_gpu_pools(states), *gpu_pools_shared(services, eligible))
    return CapacityReport(tuple(placements), tuple(s.load() for s in states), pool_warnings)


def _wanted(spec: ServiceSpec, eligible: Sequence[NodeState]) -> int:
    return len(eligible) if spec.mode == "global" else spec.replicas or 0


# ---- what if -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loss:
    """A replicated service left short by the failure of one node."""

    node: NodeState  # the lost node, as it was
    lost: int  # replicas that found no other node
    remaining: list[NodeState]  # the other eligible nodes after re-placement


def _node_losses(
    services: Sequence[ServiceSpec], states: Sequence[NodeState], eligible: Mapping[str, Sequence[NodeState]]
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
            short = displaced - place(spec, remaining, displaced)
            if short and short > (worst[spec.name].lost if spec.name in worst else 0):
                worst[spec.name] = _Loss(lost, short, remaining)
    return worst


def _warnings(
    spec: ServiceSpec, wanted: int, eligible: Sequence[NodeState], losses: Mapping[str, _Loss],
    backed_up: Collection[str] = (),
) -> tuple[str, ...]:
    warnings = []
    loss = losses.get(spec.name)
    volume_data = loss is not None and not loss.remaining and _on_node_volume(spec, loss.node.node) is not None
    # Data on a node's own volume, backed up by swarm:backups: nothing left to act on (the plan
    # shows the backups; the downtime while the droplet is replaced is in the docs).
    if volume_data and spec.name in backed_up:
        loss = None
    if loss is not None:
        node = loss.node.node
        if loss.remaining:
            why = why_full(spec, loss.remaining, wanted)
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
            f"one more task ({demand(spec)}): an update would stall with the new task pending; free room on "
            f"{pool_list([s.node for s in eligible])} or set deploy.update_config.order: stop-first"
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


def _room_to_update(spec: ServiceSpec, eligible: Sequence[NodeState]) -> bool:
    """A start-first update runs one extra task: on the node it replaces (global) or on any
    eligible node (replicated)."""
    if spec.mode == "global":
        return all(state.room_for(spec) for state in eligible)
    return any(state.room_for(spec) for state in eligible)

