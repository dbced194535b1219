"""Networks: named and created as docker stack deploy does."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compose.stackfiles import (
    load,
)


def test_networks_follow_docker_stack_deploy_naming(tmp_path: Path):
    spec = load(
        tmp_path,
        "services:\n  a: {image: x, networks: [main_network, back]}\n  b: {image: x}\n"
        "networks:\n  main_network: {external: true}\n  back: {}\n  unused: {}\n",
    )
    assert {key: network.name for key, network in spec.networks.items()} == {
        "main_network": "main_network",
        "back": "test_back",
        "default": "test_default",
    }
    assert any("networks.unused" in warning for warning in map(str, spec.warnings))
