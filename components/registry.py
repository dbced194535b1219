"""Pull credentials for the stack's private registry (`swarm:registry`).

Either the configured account (username in config, password a config secret), or read-only
credentials of a DigitalOcean Container Registry, obtained by the program as a resource so that
`pulumi preview` needs no API token (the credentials are unknown until `up` creates them). The
credentials stay secret everywhere: in state, in the services' inputs, never in outputs or logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from swarm.config import Registry
from swarm.values import credentials_from_docker_config


@dataclass
class RegistryAuth:
    server: str  # services whose image lives on this registry host pull with these credentials
    username: pulumi.Input[str]
    password: pulumi.Input[str]  # a secret


def registry_auth(stack: str, registry: Registry, password: pulumi.Input[str] | None) -> RegistryAuth:
    """The credentials nodes pull with. `password` is swarm:registryPassword (unused for a
    DigitalOcean registry)."""
    if registry.digitalocean is None:
        return RegistryAuth(registry.server, registry.username, pulumi.Output.secret(password))
    credentials = digitalocean.ContainerRegistryDockerCredentials(
        f"{stack}-registry-read",
        registry_name=registry.digitalocean,
        write=False,  # nodes only pull
    )
    pair = pulumi.Output.secret(credentials.docker_credentials).apply(
        lambda text: credentials_from_docker_config(text, registry.server)
    )
    return RegistryAuth(registry.server, pair.apply(lambda p: p[0]), pair.apply(lambda p: p[1]))
