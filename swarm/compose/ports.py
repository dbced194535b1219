"""A service's `ports:`, short and long syntax, expanded as Docker expands them."""

from __future__ import annotations

from typing import Any

from swarm.compose.reader import V32, Reader, Where, join, kind_of
from swarm.values import PROTOCOLS, Port, parse_port


def read_ports(r: Reader, value: Any, path: Where) -> tuple[Port, ...]:
    if not isinstance(value, list):
        r.problem(path, f"must be a list of ports, not {kind_of(value)}")
        return ()
    r.unique(value, path)
    ports: list[Port] = []
    keys = dict.fromkeys(("mode", "target", "published", "protocol"), V32)
    for index, item in enumerate(value):
        item_path = join(path, index)
        if isinstance(item, dict):
            r.require(V32, item_path, "the long port syntax")
            item = r.mapping(item, item_path, keys, extensions=None)
            if "target" not in item:
                r.problem(item_path, "needs `target`: the port inside the container")
                continue
            target = r.integer(item["target"], join(item_path, "target"), 1, 65535)
            published = (
                r.integer(item["published"], join(item_path, "published"), 0, 65535) if "published" in item else None
            )
            protocol = (
                r.choice(item["protocol"], join(item_path, "protocol"), PROTOCOLS) if "protocol" in item else "tcp"
            )
            mode = (
                r.choice(item["mode"], join(item_path, "mode"), ("ingress", "host")) if "mode" in item else "ingress"
            )
            if target is not None and protocol is not None and mode is not None:
                ports.append(Port(target, published or None, protocol, mode))
        elif isinstance(item, (str, int)) and not isinstance(item, bool):
            try:
                expanded, ip = parse_port(str(item))
            except ValueError as error:
                r.problem(item_path, str(error))
                continue
            if ip:
                r.warn(item_path, f"host IP {ip} is ignored: swarm publishes on every address of every node")
            if any(port.target == 0 for port in expanded):
                r.problem(item_path, "the container port must be between 1 and 65535")
                continue
            ports.extend(expanded)
        else:
            r.problem(item_path, f'must be a port string like "8080:80", a number or a mapping, not {kind_of(item)}')
    published = [(port.published, port.protocol) for port in ports if port.published]
    for number, protocol in sorted({entry for entry in published if published.count(entry) > 1}):
        r.problem(path, f"port {number}/{protocol} is published more than once")
    return tuple(ports)
