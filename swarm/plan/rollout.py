"""What a deployment needs around its services: the images to run, the folders to prepare on the
nodes before the services start, and what `pulumi up` waits for once they are created.

Pure: from the validated config and stack file to plain values the components wire in.
- Image overrides (`swarm:images`): a release from CI sets one service's image without editing
  the stack file; only that service changes.
- Where a service may be placed: the nodes matching its constraints, matched as the capacity
  check matches them (swarm.capacity.placement.node_matches), so both agree on every node.
- Bind-mount folders: every bind source of a service exists on every node where the service may
  be placed (swarm refuses to start a task whose source is missing), and on no other node.
- Convergence: the running tasks each service must reach: its replicas, or one on every node it
  matches for a global service.
- Volume data: a service that bind-mounts a path on a pool's block-storage volume must be pinned
  to exactly one node, the one holding that volume; each node has its own volume, so a task
  rescheduled elsewhere would start on another node's (empty) data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from swarm.capacity import cluster_nodes, node_matches
from swarm.compose import StackSpec, deployed_replicas
from swarm.config import ClusterConfig, ConfigError
from swarm.diagnostics import Problem, config_problem
from swarm.model import POSTGRES_IMAGE, Folder, service_name
from swarm.node_scripts import ConvergeTarget
from swarm.suggest import did_you_mean


@dataclass(frozen=True)
class Rollout:
    stack: StackSpec  # the stack file with swarm:images applied
    placeable: Mapping[str, tuple[str, ...]]  # service -> nodes it may be placed on
    folders: Mapping[str, tuple[Folder, ...]]  # node -> bind-mount folders to prepare on it

    def folder_nodes(self, service: str) -> tuple[str, ...]:
        """The nodes whose folders `service` needs before it starts: every node it may be placed
        on when it has a bind mount, none otherwise."""
        binds = any(mount.type == "bind" for mount in self.stack.services[service].mounts)
        return self.placeable[service] if binds else ()

    def convergence(self, stack: str) -> tuple[ConvergeTarget, ...]:
        """What each service converges to, under its deployed name."""
        targets = []
        for key, spec in self.stack.services.items():
            if spec.mode == "global":
                nodes = self.placeable[key]
                targets.append(ConvergeTarget(service_name(stack, key), len(nodes), nodes))
            else:
                # A scheduled job's template runs nothing until the scheduler starts a job from it.
                targets.append(ConvergeTarget(service_name(stack, key), deployed_replicas(spec) or 0))
        return tuple(targets)


def plan_rollout(config: ClusterConfig, stack: StackSpec) -> Rollout:
    """The rollout of `stack` on `config`'s nodes. Raises ConfigError when `swarm:images` or
    `swarm:bindMounts` name something the stack file does not have (a typo would otherwise
    deploy nothing new, silently)."""
    source = f"Pulumi.{config.stack}.yaml"
    stack_file = config.stack_file.name
    problems = [
        config_problem(("swarm:images", name), f"{stack_file} has no service {name!r}"
                       + (did_you_mean(name, stack.services, limit=1) or f"; its services are {', '.join(stack.services)}"))
        for name in config.images
        if name not in stack.services
    ]
    bind_sources = {mount.source for spec in stack.services.values() for mount in spec.mounts if mount.type == "bind"}
    problems += [
        config_problem(("swarm:bindMounts", path), f"no service of {stack_file} bind-mounts {path}; remove it or fix the path")
        for path in config.bind_mounts
        if path not in bind_sources
    ]
    services = {
        key: dataclasses.replace(spec, image=config.images[key]) if key in config.images else spec
        for key, spec in stack.services.items()
    }
    nodes = cluster_nodes(config)
    placeable = {
        key: tuple(node.name for node in nodes if node_matches(spec.constraints, node)) for key, spec in services.items()
    }
    problems += _unpinned_volume_data(config, services, placeable)
    problems += _data_off_the_volume(config, services, placeable)
    if problems:
        raise ConfigError(source, problems)
    needed: dict[str, set[str]] = {}
    for key, spec in services.items():
        for mount in spec.mounts:
            if mount.type == "bind":
                for node in placeable[key]:
                    needed.setdefault(node, set()).add(mount.source)
    folders = {
        node.name: tuple(config.bind_mounts.get(path, Folder(path)) for path in sorted(needed[node.name]))
        for node in nodes
        if node.name in needed
    }
    return Rollout(dataclasses.replace(stack, services=services), placeable, folders)


def _volume_paths(config: ClusterConfig) -> dict[str, PurePosixPath]:
    """Node name -> where its pool's block-storage volume is mounted, for the nodes that have one."""
    return {node.name: PurePosixPath(node.pool.volume.mount_path) for node in config.nodes if node.pool.volume}


def _unpinned_volume_data(
    config: ClusterConfig, services: Mapping[str, object], placeable: Mapping[str, tuple[str, ...]]
) -> list[Problem]:
    """Services whose bind mounts live on a volume but whose constraints match more than the one
    node holding it (several volume nodes, or nodes without that volume)."""
    volume_paths = _volume_paths(config)
    problems = []
    for key, spec in services.items():
        for mount in spec.mounts:
            source = PurePosixPath(mount.source or "/")
            if mount.type != "bind" or not any(source.is_relative_to(path) for path in volume_paths.values()):
                continue
            holders = [name for name in placeable[key] if source.is_relative_to(volume_paths.get(name, "/nowhere"))]
            others = [name for name in placeable[key] if name not in holders]
            if len(holders) == 1 and not others:
                continue
            where = f"{len(holders)} nodes holding such a volume ({', '.join(holders)})" if len(holders) > 1 else (
                f"nodes without that volume ({', '.join(others)})")
            pin = f"node.hostname == {holders[0]}" if holders else "node.hostname == <the node holding the volume>"
            problems.append(Problem(
                config.stack_file.name, ("services", key),
                f"bind-mounts {mount.source}, on a node's own block-storage volume, but its constraints match {where}: "
                f"a task rescheduled there would start on other data; pin it to one node, e.g. add `{pin}` to its "
                "placement constraints",
            ))
            break
    return problems


# Where DigitalOcean, and this program, mount block-storage volumes.
VOLUMES_ROOT = PurePosixPath("/mnt")
# Where the official postgres image keeps its data (PGDATA's default lives below it).
POSTGRES_DATA = PurePosixPath("/var/lib/postgresql/data")


def _data_off_the_volume(
    config: ClusterConfig, services: Mapping[str, object], placeable: Mapping[str, tuple[str, ...]]
) -> list[Problem]:
    """Bind mounts that look like data on a volume but are on the droplet's root disk, lost with it
    when the droplet is replaced: a source under /mnt that no volume of the service's nodes holds
    (a mountPath of /mnt/postgres and a bind of /mnt/postgresql/data), and a Postgres service's data
    directory bound from anywhere but a volume."""
    volume_paths = _volume_paths(config)
    problems = []
    for key, spec in services.items():
        nodes = placeable[key]
        for mount in spec.mounts:
            if mount.type != "bind" or not mount.source:
                continue
            source = PurePosixPath(mount.source)
            on_volume = [name for name in nodes if name in volume_paths and source.is_relative_to(volume_paths[name])]
            if on_volume or not nodes:
                continue
            mounted = sorted({str(volume_paths[name]) for name in nodes if name in volume_paths})
            there = (f"the volume of its node{'s' if len(nodes) > 1 else ''} is mounted at {', '.join(mounted)}" if mounted
                     else f"none of the nodes it may run on ({', '.join(nodes)}) has a volume")
            if source.is_relative_to(VOLUMES_ROOT):
                what = f"bind-mounts {mount.source}, under {VOLUMES_ROOT} where volumes are mounted, but {there}"
            elif POSTGRES_IMAGE.search(getattr(spec, "image", "")) and PurePosixPath(mount.target).is_relative_to(POSTGRES_DATA):
                what = f"keeps the database's data ({mount.target}) in {mount.source}, but {there}"
            else:
                continue
            problems.append(Problem(
                config.stack_file.name, ("services", key, "volumes"),
                f"{what}: the data would go to the droplet's root disk and be lost when the droplet is replaced; "
                "bind a path below the volume's mountPath (swarm:nodePools.<pool>.volume.mountPath) or pin the "
                "service to the pool that has the volume",
            ))
    return problems
