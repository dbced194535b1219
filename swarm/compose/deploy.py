"""A service's `deploy:` section: mode, replicas, placement, resources and the policies."""

from __future__ import annotations

from typing import Any

from swarm.compose.model import Resources, RestartPolicy, UpdatePolicy
from swarm.compose.reader import (
    PROVIDER,
    V30,
    V32,
    V33,
    V34,
    V35,
    V37,
    V38,
    V39,
    Reader,
    Where,
    join,
    kind_of,
)
from swarm.values import Constraint, parse_constraint, parse_cpus, parse_memory

_DEPLOY_KEYS = {
    **dict.fromkeys(("mode", "replicas", "labels", "update_config", "resources", "restart_policy", "placement"), V30),
    "endpoint_mode": V32,
    "rollback_config": V37,
}


_UPDATE_KEYS = {
    **dict.fromkeys(("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio"), V30),
    "order": V34,
}


def read_deploy(r: Reader, value: Any, path: Where) -> dict[str, Any]:
    """The ServiceSpec fields that `deploy:` gives, by field name, but for its labels and update and
    rollback policies (read with the service's other keys, see services.SERVICE_FIELDS)."""
    deploy = r.mapping(value, path, _DEPLOY_KEYS, extensions=None)
    mode = "replicated"
    if "mode" in deploy:
        mode_path = join(path, "mode")
        mode = r.string(deploy["mode"], mode_path) or mode
        if mode in ("replicated-job", "global-job"):
            r.problem(mode_path, f"jobs are {PROVIDER}: use replicated or global")
        elif mode not in ("replicated", "global"):
            r.problem(mode_path, f"must be replicated or global, not {mode!r}")
    replicas: int | None = None if mode == "global" else 1
    if "replicas" in deploy:
        replicas = r.integer(deploy["replicas"], join(path, "replicas"))
        if mode == "global":
            r.problem(
                join(path, "replicas"),
                "a global service runs one task per node: remove `replicas` or use mode replicated",
            )
            replicas = None
    constraints, preferences, max_replicas = read_placement(r, deploy.get("placement"), join(path, "placement"))
    if max_replicas is not None and mode == "global":
        r.problem(join(path, "placement", "max_replicas_per_node"), "applies to replicated services only")
    resources = r.mapping(
        deploy.get("resources"), join(path, "resources"), {"limits": V30, "reservations": V30}, extensions=None
    )
    limits = read_resources(r, resources.get("limits"), join(path, "resources", "limits"), reservations=False)
    reservations = read_resources(r, resources.get("reservations"), join(path, "resources", "reservations"), reservations=True)
    check_reservations_within_limits(r, reservations, limits, join(path, "resources"))
    endpoint_mode = None
    if "endpoint_mode" in deploy and (text := r.string(deploy["endpoint_mode"], join(path, "endpoint_mode"))):
        endpoint_mode = text.lower()  # Docker lower-cases it
        if endpoint_mode not in ("vip", "dnsrr"):
            r.problem(join(path, "endpoint_mode"), f"must be vip or dnsrr, not {text!r}")
    return dict(
        mode=mode,
        replicas=replicas,
        constraints=constraints,
        preferences=preferences,
        max_replicas_per_node=max_replicas,
        limits=limits,
        reservations=reservations,
        endpoint_mode=endpoint_mode,
        restart_policy=read_restart_policy(r, deploy.get("restart_policy"), join(path, "restart_policy")),
    )


def read_placement(r: Reader, value: Any, path: Where) -> tuple[tuple[Constraint, ...], tuple[str, ...], int | None]:
    raw = r.mapping(
        value, path, {"constraints": V30, "preferences": V33, "max_replicas_per_node": V38}, extensions=None
    )
    constraints = []
    if "constraints" in raw:
        for index, text in enumerate(r.strings(raw["constraints"], join(path, "constraints"), unique=False)):
            try:
                constraints.append(parse_constraint(text))
            except ValueError as error:
                r.problem(join(join(path, "constraints"), index), str(error))
    spreads = []
    preferences = raw.get("preferences")
    if preferences is not None and not isinstance(preferences, list):
        r.problem(
            join(path, "preferences"), f"must be a list of {{spread: node.labels.KEY}}, not {kind_of(preferences)}"
        )
        preferences = []
    for index, preference in enumerate(preferences or []):
        preference_path = join(join(path, "preferences"), index)
        preference = r.mapping(preference, preference_path, {"spread": V33}, extensions=None)
        if (spread := r.string(preference.get("spread"), join(preference_path, "spread"))) is not None:
            try:  # a spread descriptor names what a constraint can name
                spreads.append(parse_constraint(f"{spread}==x").field)
            except ValueError:
                r.problem(join(preference_path, "spread"), f"{spread!r} is not a node attribute: use node.labels.KEY")
    max_replicas = None
    if "max_replicas_per_node" in raw:
        max_replicas = r.integer(raw["max_replicas_per_node"], join(path, "max_replicas_per_node")) or None
    return tuple(constraints), tuple(spreads), max_replicas


# How a swarm service reserves a GPU, for the keys docker compose uses for it (`gpus`, `devices`).
GPU_ADVICE = (
    "swarm reserves GPUs as generic resources: deploy.resources.reservations.generic_resources: "
    "[{discrete_resource_spec: {kind: GPU, value: 1}}] (or a catalogue model's `gpus: 1`), with a GPU pool "
    "to run on (`gpu: true` and a gpu-* size in swarm:nodePools.<pool>)"
)


def read_resources(r: Reader, value: Any, path: Where, *, reservations: bool) -> Resources:
    keys = {"cpus": V30, "memory": V30, **({"generic_resources": V35} if reservations else {"pids": V39})}
    if reservations and isinstance(value, dict) and "devices" in value:
        # docker compose's device requests (capabilities: [gpu]): swarm has none.
        r.problem(join(path, "devices"), f"docker stack deploy refuses it: {GPU_ADVICE}", key=True)
        value = {key: item for key, item in value.items() if key != "devices"}
    raw = r.mapping(value, path, keys, extensions=None)
    nano_cpus = memory = pids = 0
    if "cpus" in raw and (text := r.string(raw["cpus"], join(path, "cpus"))) is not None:
        try:
            nano_cpus = parse_cpus(text)
        except ValueError as error:
            r.problem(join(path, "cpus"), str(error))
    if "memory" in raw and (text := r.string(raw["memory"], join(path, "memory"))) is not None:
        try:
            memory = parse_memory(text)
        except ValueError as error:
            r.problem(join(path, "memory"), str(error))
    if "pids" in raw:
        pids = r.integer(raw["pids"], join(path, "pids")) or 0
        r.warn(join(path, "pids"), f"ignored: {PROVIDER}")
    generic: dict[str, int] = {}
    if "generic_resources" in raw:
        entries = raw["generic_resources"]
        entries_path = join(path, "generic_resources")
        if not isinstance(entries, list):
            r.problem(
                entries_path, f"must be a list of {{discrete_resource_spec: {{kind, value}}}}, not {kind_of(entries)}"
            )
            entries = []
        for index, entry in enumerate(entries):
            entry_path = join(entries_path, index)
            spec_path = join(entry_path, "discrete_resource_spec")
            entry = r.mapping(entry, entry_path, {"discrete_resource_spec": V35}, extensions=None)
            spec = r.mapping(
                entry.get("discrete_resource_spec"), spec_path, {"kind": V35, "value": V35}, extensions=None
            )
            if "kind" not in spec or "value" not in spec:
                r.problem(spec_path, "needs `kind` (like GPU) and `value` (how many)")
                continue
            kind = r.string(spec["kind"], join(spec_path, "kind"))
            count = r.number(spec["value"], join(spec_path, "value"), 1)
            if kind in generic:
                r.problem(join(spec_path, "kind"), f"{kind} is reserved more than once")
            elif kind and count is not None:
                generic[kind] = int(count)
    return Resources(nano_cpus, memory, pids, generic)


def check_reservations_within_limits(r: Reader, reservations: Resources, limits: Resources, path: Where) -> None:
    """A reservation above its own limit: Docker refuses the task (the container could never get
    what the scheduler reserved for it), so it would only show up after deploy."""
    for name, reserved, limit in (
        ("cpus", reservations.nano_cpus, limits.nano_cpus),
        ("memory", reservations.memory_bytes, limits.memory_bytes),
    ):
        if limit and reserved > limit:
            r.problem(
                join(path, "reservations", name),
                f"reserves more than its own limit (limits.{name}); Docker refuses such a task: "
                f"raise limits.{name} or lower reservations.{name}",
            )


def read_restart_policy(r: Reader, value: Any, path: Where) -> RestartPolicy | None:
    raw = r.mapping(value, path, dict.fromkeys(("condition", "delay", "max_attempts", "window"), V30), extensions=None)
    if not isinstance(value, dict):
        return None
    return RestartPolicy(
        condition=r.choice(raw["condition"], join(path, "condition"), ("none", "on-failure", "any"))
        if "condition" in raw
        else None,
        delay=r.duration(raw["delay"], join(path, "delay")) if "delay" in raw else None,
        max_attempts=r.integer(raw["max_attempts"], join(path, "max_attempts")) if "max_attempts" in raw else None,
        window=r.duration(raw["window"], join(path, "window")) if "window" in raw else None,
    )


def read_legacy_restart(r: Reader, value: Any, path: Where) -> RestartPolicy | None:
    """`restart:`, used by docker stack deploy only when there is no deploy.restart_policy."""
    text = r.string(value, path)
    if text is None:
        return None
    policy, _, count = text.partition(":")
    if policy in ("", "no"):
        r.warn(
            path,
            "does not stop swarm from restarting tasks (its default condition is any): "
            "use deploy.restart_policy.condition: none",
        )
        return None
    if policy in ("always", "unless-stopped") and not count:
        return RestartPolicy("any")
    if policy == "on-failure" and (not count or count.isdigit()):
        return RestartPolicy("on-failure", max_attempts=int(count) if count else None)
    r.problem(path, f"invalid restart policy {text!r}: expected no, always, unless-stopped or on-failure[:MAX_RETRIES]")
    return None


def read_update_policy(r: Reader, value: Any, path: Where, failure_actions: tuple[str, ...]) -> UpdatePolicy | None:
    raw = r.mapping(value, path, _UPDATE_KEYS, extensions=None)
    if not isinstance(value, dict):
        return None
    ratio = (
        r.number(raw["max_failure_ratio"], join(path, "max_failure_ratio"), 0, 1)
        if "max_failure_ratio" in raw
        else None
    )
    return UpdatePolicy(
        parallelism=r.integer(raw["parallelism"], join(path, "parallelism")) if "parallelism" in raw else None,
        delay=r.duration(raw["delay"], join(path, "delay")) if "delay" in raw else None,
        failure_action=r.choice(raw["failure_action"], join(path, "failure_action"), failure_actions)
        if "failure_action" in raw
        else None,
        monitor=r.duration(raw["monitor"], join(path, "monitor")) if "monitor" in raw else None,
        max_failure_ratio=ratio,
        order=r.choice(raw["order"], join(path, "order"), ("start-first", "stop-first")) if "order" in raw else None,
    )


def read_update_config(r: Reader, value: Any, path: Where) -> UpdatePolicy | None:
    return read_update_policy(r, value, path, ("continue", "pause", "rollback"))


def read_rollback_config(r: Reader, value: Any, path: Where) -> UpdatePolicy | None:
    return read_update_policy(r, value, path, ("continue", "pause"))
