"""Validators of the `swarm:*` keys about what runs on the swarm rather than the machines:
external secret and config values, the private registry, image overrides, bind-mount folders
and the convergence timeout. Split from swarm/config/cluster.py (which calls them from `parse_config`)
to keep each module readable; the keys are registered in the same known-keys table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from swarm.config.keys import Collector, known_key
from swarm.model import Folder
from swarm.values import DIGITALOCEAN_REGISTRY, IMAGE_REFERENCE, REGISTRY_HOST, parse_duration, registry_server

REGISTRY_KEYS = {"server", "username", "digitalocean"}
# A DigitalOcean Container Registry name: lowercase letters, digits and '-'.
DOCR_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")  # as the Compose loader accepts them
BIND_SOURCE = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")
OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
MODE = re.compile(r"^[0-7]{3,4}$")
FOLDER_KEYS = {"owner", "mode"}
DEFAULT_CONVERGE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Registry:
    """The private registry services pull from: `swarm:registry`."""

    server: str  # registry host as image references name it, e.g. registry.example.com
    username: str | None = None  # with the password in swarm:registryPassword
    digitalocean: str | None = None  # a DigitalOcean Container Registry's name: the program gets read credentials


@known_key("secrets", type="object (secret values)", default="`{}`",
           doc="secret name → value, for Compose secrets declared `external: true` (set each with `--secret --path`)")
def parse_secret_names(value: Any, found: Collector) -> frozenset[str] | None:
    if value is None:
        return frozenset()
    if is_encrypted(value):
        return None
    if not isinstance(value, dict):
        found.problem("secrets", "must be a mapping of secret name to value, set with `pulumi config set --secret --path 'swarm:secrets.NAME' VALUE`")
        return frozenset()
    for name, secret in value.items():
        if not (isinstance(secret, str) or is_encrypted(secret)):
            found.problem(("secrets", str(name)), "must be a string value, set with `--secret`")
    return frozenset(map(str, value))


@known_key("configs", type="object", default="`{}`",
           doc="config name → text, for Compose configs declared `external: true`")
def parse_configs(value: Any, found: Collector) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(text, str) for text in value.values()):
        found.problem("configs", "must be a mapping of config name to its text, e.g. {nginx_conf: '...'}")
        return {}
    return {str(name): text for name, text in value.items()}


@known_key("registryPassword", type="string (secret)", default="none",
           doc="the password or token of `swarm:registry.username` (`--secret`)")
@known_key("registry", type="object", default="none",
           doc="the private registry: `{server: registry.example.com, username: deploy}` or `{digitalocean: <registry name>}`")
def parse_registry(value: Any, password_set: bool, found: Collector) -> Registry | None:
    if value is None:
        if password_set:
            found.problem("registryPassword", "is set but swarm:registry is not: set swarm:registry.server and .username too")
        return None
    shapes = "{server: registry.example.com, username: deploy} or {digitalocean: <registry name>}"
    if not isinstance(value, dict):
        found.problem("registry", f"must be a mapping: {shapes}")
        return None
    for unknown in sorted(set(value) - REGISTRY_KEYS):
        found.problem(("registry", str(unknown)), f"unknown key; swarm:registry is {shapes}")
    if "digitalocean" in value:
        name = value["digitalocean"]
        if {"server", "username"} & set(value):
            found.problem("registry", f"give either digitalocean or server and username, not both: {shapes}")
        if not isinstance(name, str) or not DOCR_NAME.match(name):
            found.problem(("registry", "digitalocean"), f"{name!r} is not a container registry name (`doctl registry get`)")
        if password_set:
            found.problem("registryPassword", "remove it: with swarm:registry.digitalocean the program obtains read credentials itself")
        return Registry(DIGITALOCEAN_REGISTRY, digitalocean=name)
    server, username = value.get("server"), value.get("username")
    if not isinstance(server, str) or not REGISTRY_HOST.match(server.lower()):
        found.problem(("registry", "server"), f"{server!r} is not a registry host; give it as image names start, e.g. registry.example.com or registry.example.com:5000 (no https://, no path)")
    if not isinstance(username, str) or not username:
        found.problem(("registry", "username"), "is required with registry.server: the account the nodes pull with")
    if not password_set:
        found.problem("registryPassword", "is required with swarm:registry.server: `pulumi config set --secret swarm:registryPassword ...`")
    if isinstance(server, str) and isinstance(username, str):
        return Registry(registry_server(server), username=username)
    return None


@known_key("images", type="object", default="`{}`",
           doc="service name → image, overriding the stack file's `image:` for this run (releases from CI)")
def parse_images(value: Any, found: Collector) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        found.problem("images", "must be a mapping of service name to image, e.g. '{\"api\": \"registry.example.com/nlp/api:2.0.2\"}'")
        return {}
    images = {}
    for service, image in value.items():
        if not isinstance(service, str) or not SERVICE_NAME.match(service):
            found.problem(("images", str(service)), "is not a service name of the stack file")
        elif not isinstance(image, str) or not IMAGE_REFERENCE.match(image):
            found.problem(("images", str(service)), f"{image!r} is not an image reference; e.g. registry.example.com/nlp/api:2.0.2")
        else:
            images[service] = image
    return images


@known_key("bindMounts", type="object", default="`{}`",
           doc="bind-mount source → `{owner: '999:999', mode: '0700'}` for the folders the program creates on the nodes")
def parse_bind_mounts(value: Any, found: Collector) -> dict[str, Folder]:
    if value is None:
        return {}
    example = "{'/mnt/postgresql/data': {owner: '999:999', mode: '0700'}}"
    if not isinstance(value, dict):
        found.problem("bindMounts", f"must be a mapping of bind-mount source to its owner and mode, e.g. {example}")
        return {}
    folders = {}
    for path, spec in value.items():
        key = ("bindMounts", str(path))
        if not isinstance(path, str) or not BIND_SOURCE.match(path) or {".", ".."} & set(path.split("/")):
            found.problem(key, "is not an absolute path on the nodes, like /mnt/postgresql/data")
            continue
        if not isinstance(spec, dict):
            found.problem(key, f"must be a mapping with owner and/or mode, e.g. {example}")
            continue
        for unknown in sorted(set(spec) - FOLDER_KEYS):
            found.problem((*key, str(unknown)), "unknown key; a bind mount takes owner and mode")
        before = len(found.problems)
        owner, mode = spec.get("owner"), spec.get("mode")
        if owner is not None and not (isinstance(owner, str) and OWNER.match(owner)):
            found.problem((*key, "owner"), f"{owner!r} is not an owner; use 'user', 'user:group' or numeric ids like '999:999' (quoted)")
        if mode is not None and not (isinstance(mode, str) and MODE.match(mode)):
            # Unquoted, YAML reads 0700 as a number (448 or 700, depending on the reader).
            found.problem((*key, "mode"), f"{mode!r} is not an octal mode; quote it, like '0750'")
        if len(found.problems) == before:
            folders[path] = Folder(path, owner, mode)
    return folders


@known_key("convergeTimeout", type="duration", default="`10m`",
           doc="how long `pulumi up` waits for every service to run all its tasks")
def parse_converge_timeout(value: Any, found: Collector) -> int:
    if value is None:
        return DEFAULT_CONVERGE_TIMEOUT_SECONDS
    try:
        nanoseconds = parse_duration(value) if isinstance(value, str) else -1
    except ValueError:
        nanoseconds = -1
    if nanoseconds <= 0:
        found.problem("convergeTimeout", f"{value!r} is not a duration; use one like '10m' or '90s'")
        return 0
    return -(-nanoseconds // 1_000_000_000)  # whole seconds, rounded up


def is_encrypted(value: Any) -> bool:
    """A `{secure: ...}` entry, as `Pulumi.<stack>.yaml` stores a secret."""
    return isinstance(value, dict) and set(value) == {"secure"}
