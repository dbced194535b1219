"""Short-syntax ports expanded as Docker's nat package expands them."""

from __future__ import annotations

import pytest

from swarm.compose import (
    Port,
    parse_port,
)


def test_ports_expand_as_docker_does():
    assert parse_port("8080:80/udp") == ([Port(80, 8080, "udp", "ingress")], None)
    assert parse_port("8000-8002:80")[0] == [Port(80, p, "tcp", "ingress") for p in (8000, 8001, 8002)]
    # Docker sorts expanded ports as strings: 1000/tcp before 998/tcp.
    assert [port.target for port in parse_port("998-1001")[0]] == [1000, 1001, 998, 999]
    assert parse_port("80/TCP")[0] == [Port(80, None, "tcp", "ingress")]
    assert parse_port("0:80")[0] == [Port(80, None, "tcp", "ingress")]
    assert parse_port("127.0.0.1:8080:80") == ([Port(80, 8080, "tcp", "ingress")], "127.0.0.1")
    assert parse_port("[::1]:8080:80")[1] == "::1"
    assert parse_port("0.0.0.0:80:80")[1] is None
    for bad in (
        "65536:80",
        "8000-8001:80-82",
        "80/xyz",
        "abc",
        "8080:",
        "80-79",
        "80-",
        "1.2.3.4:80",
        " 80",
        "8080:80:90",
    ):
        with pytest.raises(ValueError):
            parse_port(bad)
