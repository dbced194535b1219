"""The last stage: what `docker stack deploy` derives from the sections once every service is
read. Only the networks some service uses are created (with `default` added when a service
names none); a declared network no service uses is a warning."""

from __future__ import annotations

from collections.abc import Mapping

from swarm.compose.model import DEFAULT_NETWORK, NetworkSpec, ServiceSpec
from swarm.compose.reader import Reader, join


def used_networks(
    r: Reader, services: Mapping[str, ServiceSpec], declared: Mapping[str, NetworkSpec]
) -> dict[str, NetworkSpec]:
    """The networks to create: those the services attach to, in declaration order."""
    used = {attachment.network for service in services.values() for attachment in service.networks}
    networks = {key: network for key, network in declared.items() if key in used}
    if DEFAULT_NETWORK in used and DEFAULT_NETWORK not in networks:
        networks[DEFAULT_NETWORK] = NetworkSpec(DEFAULT_NETWORK, f"{r.stack}_{DEFAULT_NETWORK}", external=False)
    for key in declared.keys() - used:
        r.warn(join("networks", key), "no service uses this network: it is not created")
    return networks
