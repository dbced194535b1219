"""The top-level `networks:` section, and the networks a service attaches to."""

from __future__ import annotations

from typing import Any

from swarm.compose.model import DEFAULT_NETWORK, NetworkAttachment, NetworkSpec
from swarm.compose.reader import (
    V30,
    V32,
    V35,
    V313,
    Reader,
    Where,
    external_of,
    join,
    kind_of,
)
from swarm.suggest import did_you_mean


def read_networks(r: Reader, section: Any) -> dict[str, NetworkSpec]:
    keys = {
        **dict.fromkeys(("driver", "driver_opts", "ipam", "external", "internal", "labels"), V30),
        "attachable": V32,
        "name": V35,
    }
    networks = {}
    for key, definition in r.named_entries(section, "networks"):
        path = join("networks", key)
        definition = r.mapping(definition, path, keys)
        external, external_name = external_of(r, definition, path)
        name = r.string(definition["name"], join(path, "name")) if definition.get("name") is not None else None
        if "driver" in definition and r.string(definition["driver"], join(path, "driver")) not in (None, "overlay"):
            r.problem(
                join(path, "driver"), "swarm services need overlay networks: use `driver: overlay` or leave it out"
            )
        if "attachable" in definition and r.boolean(definition["attachable"], join(path, "attachable")) is False:
            r.warn(join(path, "attachable"), "ignored: the program creates every network attachable")
        ipam = r.mapping(definition.get("ipam"), join(path, "ipam"), {"driver": V30, "config": V30}, extensions=None)
        subnets = []
        config = ipam.get("config")
        if config is not None and not isinstance(config, list):
            r.problem(join(path, "ipam", "config"), f"must be a list of {{subnet: CIDR}}, not {kind_of(config)}")
        for index, pool in enumerate(config or []):
            pool_path = join(join(path, "ipam", "config"), index)
            pool = r.mapping(pool, pool_path, {"subnet": V30}, extensions=None)
            if "subnet" in pool and (subnet := r.string(pool["subnet"], join(pool_path, "subnet"))):
                subnets.append(subnet)
        internal = definition.get("internal")
        networks[key] = NetworkSpec(
            key=key,
            name=name or external_name or (key if external else f"{r.stack}_{key}"),
            external=external,
            driver_opts=r.options(definition.get("driver_opts"), join(path, "driver_opts")),
            internal=bool(internal is not None and r.boolean(internal, join(path, "internal"))),
            labels=r.labels(definition.get("labels"), join(path, "labels")),
            ipam_driver=r.string(ipam["driver"], join(path, "ipam", "driver")) if "driver" in ipam else None,
            subnets=tuple(subnets),
        )
    return networks


def read_attachments(r: Reader, value: Any, path: Where, declared: dict[str, NetworkSpec]) -> tuple[NetworkAttachment, ...]:
    if isinstance(value, list):
        names = r.strings(value, path)
        entries: list[tuple[str, Any, Where]] = [(name, None, join(path, index)) for index, name in enumerate(names)]
    elif isinstance(value, dict):
        entries = [(name, options, join(path, name)) for name, options in r.named_entries(value, path)]
    else:
        if value is not None:
            r.problem(path, f"must be a list of network names or a mapping of names to options, not {kind_of(value)}")
        entries = []
    attachments = []
    keys = {"aliases": V30, "ipv4_address": V30, "ipv6_address": V30, "driver_opts": V313}
    for name, options, entry_path in entries:
        if name not in declared and name != DEFAULT_NETWORK:
            hint = did_you_mean(name, declared)
            r.problem(entry_path, f"network {name!r} is not declared under the top-level `networks:`{hint}")
        options = r.mapping(options, entry_path, keys, extensions=None)
        for ignored in ("ipv4_address", "ipv6_address"):
            if ignored in options:
                r.warn(join(entry_path, ignored), "ignored: swarm assigns task addresses itself")
        aliases = r.strings(options["aliases"], join(entry_path, "aliases")) if "aliases" in options else ()
        driver_opts = r.options(options.get("driver_opts"), join(entry_path, "driver_opts"))
        attachments.append(NetworkAttachment(name, aliases, driver_opts))
    return tuple(attachments) or (NetworkAttachment(DEFAULT_NETWORK),)
