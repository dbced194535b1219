"""Published ports, short syntax expanded as Docker's nat.ParsePortSpec does."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple


class Port(NamedTuple):
    target: int
    published: int | None  # None: swarm picks one (or none is published, for host mode)
    protocol: str  # tcp | udp | sctp
    mode: str  # ingress | host


PROTOCOLS = ("tcp", "udp", "sctp")


def _port_range(text: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    if not (first.isascii() and first.isdigit() and (not dash or (last.isascii() and last.isdigit()))):
        raise ValueError
    start, end = int(first), int(last) if dash else int(first)
    if end > 65535 or end < start:
        raise ValueError
    return start, end


def parse_port(text: str) -> tuple[list[Port], str | None]:
    """Ports in a short-syntax entry ("8080:80/udp", "9000-9002", "127.0.0.1:80:80"), expanded
    and ordered as Docker's nat.ParsePortSpec does, and the host IP if one was given (swarm
    ignores it and listens on every address)."""
    invalid = ValueError(
        f"invalid port {text!r}: expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL] with ports or ranges "
        'in 1-65535 and protocol tcp, udp or sctp, like "8080:80" or "53:53/udp"'
    )
    parts = text.split(":")
    container = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""
    ip = ":".join(parts[:-2])
    target, _, protocol = container.partition("/")
    protocol = protocol.partition("/")[0].lower() or "tcp"
    if not target or protocol not in PROTOCOLS:
        raise invalid
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise invalid from None
    try:
        start, end = _port_range(target)
        host_start, host_end = _port_range(host) if host else (0, 0)
    except ValueError:
        raise invalid from None
    if host and end - start != host_end - host_start and end != start:
        raise invalid
    ports = []
    for offset in range(end - start + 1):
        if not host:
            published = [None]
        elif start == end:  # one target port published on each port of a host range
            published = list(range(host_start, host_end + 1))
        else:
            published = [host_start + offset]
        ports.extend(Port(start + offset, p or None, protocol, "ingress") for p in published)
    # Docker sorts the expanded ports as strings ("1000/tcp" before "998/tcp").
    ports.sort(key=lambda port: f"{port.target}/{port.protocol}")
    unspecified = ip in ("", "0.0.0.0", "::")
    return ports, None if unspecified else ip
