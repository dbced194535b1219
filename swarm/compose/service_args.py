"""Compose specs translated into the arguments of pulumi_docker resources.

Pure functions: each returns the keyword arguments of one resource as plain dicts in the
snake_case shape of pulumi_docker's *Args classes, so `docker.Service(name, **service_args(...))`
works and tests can compare plain values. Resource ids arrive as arguments (plain strings or
Pulumi Outputs, which are passed through untouched).

What `docker stack deploy` does, done the same way:
- services are named `<stack>_<service>` and carry `com.docker.stack.namespace=<stack>` on the
  service and on its containers, and `com.docker.stack.image` on the service;
- each network attachment gets the service's name as an alias, so `database` resolves;
- secrets and configs default to uid/gid 0 and mode 0444; a relative target lives in
  /run/secrets (secrets) or / (configs).

Differences, on purpose:
- networks are attached by id (attaching by name causes perpetual diffs,
  kreuzwerker/terraform-provider-docker#648);
- secret and config names carry an HMAC of their content under a per-stack key
  (`versioned_name`): swarm objects are immutable, so a new value is a new object. Keyed, so that
  the name (in `docker secret ls`, the state, a preview) cannot be used to test guesses of the value. Pulumi replaces the resource create-before-delete:
  the new object is created, services move to it, then the old one is deleted;
- update order. Compose's declared `order` always wins. When none is declared the service is
  updated start-first (the new task runs before the old one stops: no downtime) unless that
  is unsafe, and then stop-first, Docker's default. It is unsafe when two tasks of the service
  could not run side by side on one node: a port published in host mode (the second task cannot
  bind it), a writable bind mount or named volume (two writers on one data directory, e.g. a
  database), `max_replicas_per_node` (the extra task has no slot) or a generic resource
  reservation such as a GPU (usually all taken). A start-first service needs room for one more
  task's reservations while it updates; `update_order` tells the capacity check which ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from swarm.compose.model import (
    STACK_NAMESPACE_LABEL,
    ConfigSpec,
    Mount,
    NetworkSpec,
    SecretSpec,
    ServiceSpec,
    UpdatePolicy,
)
from swarm.model import service_name
from swarm.values import COMPLETIONS_LABEL, SCHEDULE_LABEL, format_duration, go_string

IMAGE_LABEL = "com.docker.stack.image"
MAX_OBJECT_NAME = 64  # swarm's limit for secret and config names
SECRETS_DIR = "/run/secrets/"


def versioned_name(stack: str, name: str, content: bytes, name_key: bytes) -> str:
    """`<stack>_<name>_<first 12 hex of HMAC-SHA256(name_key, content)>`, shortened to swarm's 64
    characters by cutting the `<stack>_<name>` part: a new value gives a new name, and without
    the key (a per-stack secret) the name says nothing about the value."""
    if len(name_key) < 16:
        raise ValueError("the naming key must be at least 16 random bytes")
    digest = hmac.new(name_key, content, hashlib.sha256).hexdigest()[:12]
    base = f"{stack}_{name}"[: MAX_OBJECT_NAME - len(digest) - 1]
    return f"{base}_{digest}"


def start_first_hazards(spec: ServiceSpec) -> list[str]:
    """Why two tasks of this service cannot safely run side by side on one node."""
    hazards = []
    if any(port.mode == "host" and port.published for port in spec.ports):
        hazards.append("it publishes a port in host mode")
    for mount in spec.mounts:
        if mount.type == "bind" and not mount.read_only:
            hazards.append(f"it writes to the bind mount {mount.source}")
        elif mount.type == "volume" and mount.volume is not None and not mount.read_only:
            hazards.append(f"it writes to the volume {mount.volume.name}")
    if spec.max_replicas_per_node:
        hazards.append("it sets max_replicas_per_node")
    if spec.reservations.generic_resources:
        hazards.append("it reserves generic resources (" + ", ".join(sorted(spec.reservations.generic_resources)) + ")")
    return hazards


def update_order(spec: ServiceSpec) -> str:
    """The update order the service is deployed with (see the module docstring)."""
    declared = spec.update_config.order if spec.update_config else None
    return declared or ("stop-first" if start_first_hazards(spec) else "start-first")


def service_args(
    spec: ServiceSpec,
    *,
    stack: str,
    network_ids: Mapping[str, Any],
    secret_ids: Mapping[str, tuple[Any, Any]],
    config_ids: Mapping[str, tuple[Any, Any]],
) -> dict[str, Any]:
    """Keyword arguments of `pulumi_docker.Service` for `spec`.

    `network_ids` maps each network key of the stack (including "default" when used) to the
    network's id; `secret_ids` and `config_ids` map each key to (id, deployed name).
    """
    container: dict[str, Any] = {
        "image": spec.image,
        "labels": _labels({**spec.labels, STACK_NAMESPACE_LABEL: stack}),
        "commands": list(spec.entrypoint) if spec.entrypoint else None,
        "args": list(spec.command) if spec.command else None,
        "env": dict(spec.environment) or None,
        "dir": spec.working_dir,
        "user": spec.user,
        "hostname": spec.hostname,
        "init": spec.init,
        "read_only": spec.read_only or None,
        "isolation": spec.isolation,
        "stop_signal": spec.stop_signal,
        "stop_grace_period": _duration(spec.stop_grace_period),
        "sysctl": dict(spec.sysctls) or None,
        "hosts": [{"host": host, "ip": ip} for host, ip in spec.extra_hosts] or None,
        "healthcheck": _healthcheck(spec),
        "mounts": [_mount(mount, stack) for mount in spec.mounts] or None,
        "secrets": [
            {
                "secret_id": secret_ids[ref.source][0],
                "secret_name": secret_ids[ref.source][1],
                "file_name": ref.target if ref.target.startswith("/") else SECRETS_DIR + ref.target,
                "file_uid": ref.uid,
                "file_gid": ref.gid,
                "file_mode": ref.mode,
            }
            for ref in spec.secrets
        ]
        or None,
        "configs": [
            {
                "config_id": config_ids[ref.source][0],
                "config_name": config_ids[ref.source][1],
                "file_name": ref.target if ref.target.startswith("/") else "/" + ref.target,
                "file_uid": ref.uid,
                "file_gid": ref.gid,
                "file_mode": ref.mode,
            }
            for ref in spec.configs
        ]
        or None,
    }
    if spec.dns or spec.dns_search:
        container["dns_config"] = _compact(
            {"nameservers": list(spec.dns) or None, "searches": list(spec.dns_search) or None}
        )
    cap_add, cap_drop = _capabilities(spec.cap_add, spec.cap_drop)
    container |= {"cap_adds": cap_add or None, "cap_drops": cap_drop or None}

    task: dict[str, Any] = {
        "container_spec": _compact(container),
        "networks_advanceds": [
            _compact(
                {
                    "id": network_ids[attachment.network],
                    "aliases": [*attachment.aliases, spec.name],
                    "driver_opts": [f"{key}={value}" for key, value in sorted(attachment.driver_opts.items())] or None,
                }
            )
            for attachment in sorted(spec.networks, key=lambda attachment: attachment.network)
        ],
        "placement": _compact(
            {
                "constraints": [str(constraint) for constraint in spec.constraints] or None,
                "prefs": [f"spread={spread}" for spread in spec.preferences] or None,
                "max_replicas": spec.max_replicas_per_node,
            }
        )
        or None,
        "resources": _resources(spec),
        "restart_policy": _compact(
            {
                "condition": spec.restart_policy.condition,
                "delay": _duration(spec.restart_policy.delay),
                "max_attempts": spec.restart_policy.max_attempts,
                "window": _duration(spec.restart_policy.window),
            }
        )
        if spec.restart_policy
        else None,
        "log_driver": _compact({"name": spec.logging.driver, "options": dict(spec.logging.options) or None})
        if spec.logging and spec.logging.driver
        else None,
    }
    update = _update_policy(spec.update_config or UpdatePolicy()) | {"order": update_order(spec)}
    return _compact(
        {
            "name": service_name(stack, spec.name),
            "labels": _labels({**spec.deploy_labels, STACK_NAMESPACE_LABEL: stack, IMAGE_LABEL: spec.image,
                               **job_labels(spec)}),
            "task_spec": _compact(task),
            "mode": {"global_": True} if spec.mode == "global" else {"replicated": {"replicas": deployed_replicas(spec)}},
            "endpoint_spec": _compact(
                {
                    "mode": spec.endpoint_mode,
                    "ports": [
                        _compact(
                            {
                                "target_port": port.target,
                                "published_port": port.published,
                                "protocol": port.protocol,
                                "publish_mode": port.mode,
                            }
                        )
                        for port in spec.ports
                    ]
                    or None,
                }
            )
            or None,
            "update_config": update,
            "rollback_config": _update_policy(spec.rollback_config) if spec.rollback_config else None,
        }
    )


def network_args(spec: NetworkSpec, *, stack: str) -> dict[str, Any]:
    """Keyword arguments of `pulumi_docker.Network`: an attachable overlay network. Networks the
    stack owns carry the stack label (as with docker stack deploy); external ones, shared with
    whatever else attaches to them, do not."""
    labels = dict(spec.labels) if spec.external else {**spec.labels, STACK_NAMESPACE_LABEL: stack}
    return _compact(
        {
            "name": spec.name,
            "driver": "overlay",
            "attachable": True,
            "internal": spec.internal or None,
            "options": dict(spec.driver_opts) or None,
            "labels": _labels(labels) or None,
            "ipam_driver": spec.ipam_driver,
            "ipam_configs": [{"subnet": subnet} for subnet in spec.subnets] or None,
        }
    )


def secret_args(spec: SecretSpec, *, stack: str, content: bytes, name_key: bytes) -> dict[str, Any]:
    """Keyword arguments of `pulumi_docker.Secret` holding `content`, named with `name_key` (see
    versioned_name). For an external secret the value is a Pulumi Output: call this inside
    `value.apply(...)` and index the result (`args["name"]`, `args["data"]`), keeping the data secret."""
    return _object_args(spec, stack, content, name_key)


def config_args(spec: ConfigSpec, *, stack: str, content: bytes, name_key: bytes) -> dict[str, Any]:
    """Keyword arguments of `pulumi_docker.ServiceConfig` holding `content` (see secret_args)."""
    return _object_args(spec, stack, content, name_key)


def _object_args(spec: SecretSpec, stack: str, content: bytes, name_key: bytes) -> dict[str, Any]:
    return {
        "name": versioned_name(stack, spec.key, content, name_key),
        "data": base64.b64encode(content).decode("ascii"),
        "labels": _labels({**spec.labels, STACK_NAMESPACE_LABEL: stack}),
    }


def deployed_replicas(spec: ServiceSpec) -> int | None:
    """A scheduled service (`x-schedule`) is deployed as a template that runs nothing: the
    scheduler on the manager starts a replicated job from it at each scheduled time
    (pulumi-docker 5.2's Service has no job mode; see swarm/values/schedule.py)."""
    return 0 if spec.schedule else spec.replicas


def job_labels(spec: ServiceSpec) -> dict[str, str]:
    """The labels by which the scheduler finds a job template: its schedule and completions."""
    if not spec.schedule:
        return {}
    return {SCHEDULE_LABEL: spec.schedule, COMPLETIONS_LABEL: str(spec.replicas or 1)}


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the unset (None) entries: pulumi_docker's defaults apply to those."""
    return {key: value for key, value in values.items() if value is not None}


def _labels(labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"label": key, "value": value} for key, value in sorted(labels.items())]


def _duration(nanoseconds: int | None) -> str | None:
    return None if nanoseconds is None else format_duration(nanoseconds)


def _healthcheck(spec: ServiceSpec) -> dict[str, Any] | None:
    check = spec.healthcheck
    if check is None:
        return None
    if check.disable:
        return {"tests": ["NONE"]}
    return (
        _compact(
            {
                "tests": list(check.test) if check.test else None,
                "interval": _duration(check.interval),
                "timeout": _duration(check.timeout),
                "start_period": _duration(check.start_period),
                "retries": check.retries,
            }
        )
        or None
    )


def _mount(mount: Mount, stack: str) -> dict[str, Any]:
    args: dict[str, Any] = {"type": mount.type, "target": mount.target, "read_only": mount.read_only or None}
    if mount.type == "bind":
        args |= {
            "source": mount.source,
            "bind_options": {"propagation": mount.propagation} if mount.propagation else None,
        }
    elif mount.type == "tmpfs":
        args["tmpfs_options"] = {"size_bytes": mount.tmpfs_size} if mount.tmpfs_size is not None else None
    elif mount.volume is not None:  # a named volume; an anonymous one needs nothing more
        volume = mount.volume
        labels = dict(volume.labels) if volume.external else {**volume.labels, STACK_NAMESPACE_LABEL: stack}
        args["source"] = volume.name
        args["volume_options"] = (
            _compact(
                {
                    "no_copy": mount.no_copy or None,
                    "labels": _labels(labels) or None,
                    "driver_name": None if volume.external else volume.driver,
                    "driver_options": dict(volume.driver_opts) or None,
                }
            )
            or None
        )
    elif mount.no_copy:
        args["volume_options"] = {"no_copy": True}
    return _compact(args)


def _resources(spec: ServiceSpec) -> dict[str, Any] | None:
    limits = _compact({"nano_cpus": spec.limits.nano_cpus or None, "memory_bytes": spec.limits.memory_bytes or None})
    generic = [f"{kind}={count}" for kind, count in sorted(spec.reservations.generic_resources.items())]
    reservation = _compact(
        {
            "nano_cpus": spec.reservations.nano_cpus or None,
            "memory_bytes": spec.reservations.memory_bytes or None,
            "generic_resources": {"discrete_resources_specs": generic} if generic else None,
        }
    )
    return _compact({"limits": limits or None, "reservation": reservation or None}) or None


def _update_policy(policy: UpdatePolicy) -> dict[str, Any]:
    return _compact(
        {
            "parallelism": policy.parallelism,
            "delay": _duration(policy.delay),
            "failure_action": policy.failure_action,
            "monitor": _duration(policy.monitor),
            "max_failure_ratio": None
            if policy.max_failure_ratio is None
            else go_string(float(policy.max_failure_ratio)),
            "order": policy.order,
        }
    )


def _capabilities(add: tuple[str, ...], drop: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Capabilities as Docker normalises them: upper case with the CAP_ prefix, ALL trumping the
    rest, and a capability both added and dropped is added."""

    def normalise(names: tuple[str, ...]) -> list[str]:
        upper = {name.upper() for name in names}
        if "ALL" in upper:
            return ["ALL"]
        return sorted(name if name.startswith("CAP_") else f"CAP_{name}" for name in upper)

    added = normalise(add)
    return added, [name for name in normalise(drop) if name not in added]
