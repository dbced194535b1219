"""The loaded stack: typed, normalised values (bytes, NanoCPUs, nanoseconds, expanded ports)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from swarm.diagnostics import Problem
from swarm.values import Constraint, Port

STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"


DEFAULT_NETWORK = "default"


# Names of services, networks, volumes, secrets and configs (Docker's schema).
NAME = re.compile(r"^[a-zA-Z0-9._-]+$")


@dataclass(frozen=True)
class Resources:
    nano_cpus: int = 0  # 0: not set
    memory_bytes: int = 0  # 0: not set
    pids: int = 0  # limits only; 0: not set
    generic_resources: dict[str, int] = field(default_factory=dict)  # reservations only: kind -> count


@dataclass(frozen=True)
class VolumeSpec:
    key: str  # name under the top-level `volumes:`
    name: str  # as created on the nodes: `<stack>_<key>` unless `name:` or external
    external: bool
    driver: str | None
    driver_opts: dict[str, str]
    labels: dict[str, str]


@dataclass(frozen=True)
class Mount:
    type: str  # bind | volume | tmpfs
    target: str
    source: str | None  # host path (bind), volume key (volume; None: anonymous), None (tmpfs)
    read_only: bool = False
    propagation: str | None = None  # bind only
    no_copy: bool = False  # volume only
    tmpfs_size: int | None = None  # tmpfs only, bytes
    volume: VolumeSpec | None = None  # the declared volume, for named volumes


@dataclass(frozen=True)
class FileReference:
    """A secret or config used by a service, with Docker's defaults applied."""

    source: str  # key under the top-level `secrets:`/`configs:`
    target: str  # file name; relative names live in /run/secrets (secrets) or / (configs)
    uid: str = "0"
    gid: str = "0"
    mode: int = 0o444


@dataclass(frozen=True)
class NetworkAttachment:
    network: str  # key under the top-level `networks:` ("default" when the service names none)
    aliases: tuple[str, ...] = ()
    driver_opts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...] | None  # ("CMD", ...), ("CMD-SHELL", cmd) or ("NONE",); None: image's
    interval: int | None = None  # nanoseconds
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None
    disable: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    condition: str | None  # none | on-failure | any
    delay: int | None = None  # nanoseconds
    max_attempts: int | None = None
    window: int | None = None


@dataclass(frozen=True)
class UpdatePolicy:
    """update_config or rollback_config, as declared (None: swarm's default)."""

    parallelism: int | None = None
    delay: int | None = None  # nanoseconds
    failure_action: str | None = None
    monitor: int | None = None
    max_failure_ratio: float | None = None
    order: str | None = None  # start-first | stop-first


@dataclass(frozen=True)
class Ulimit:
    soft: int
    hard: int


@dataclass(frozen=True)
class Logging:
    driver: str | None
    options: dict[str, str]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # container labels
    deploy_labels: dict[str, str] = field(default_factory=dict)  # service labels
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    networks: tuple[NetworkAttachment, ...] = ()
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    healthcheck: Healthcheck | None = None
    mode: str = "replicated"  # replicated | global
    replicas: int | None = 1  # None for global services
    constraints: tuple[Constraint, ...] = ()
    preferences: tuple[str, ...] = ()  # spread descriptors, e.g. "node.labels.zone"
    max_replicas_per_node: int | None = None
    limits: Resources = field(default_factory=Resources)
    reservations: Resources = field(default_factory=Resources)
    restart_policy: RestartPolicy | None = None
    update_config: UpdatePolicy | None = None
    rollback_config: UpdatePolicy | None = None
    endpoint_mode: str | None = None  # vip | dnsrr
    stop_grace_period: int | None = None  # nanoseconds
    stop_signal: str | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    init: bool | None = None
    tty: bool = False
    stdin_open: bool = False
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, Ulimit] = field(default_factory=dict)
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (host, ip)
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    logging: Logging | None = None
    isolation: str | None = None
    schedule: str | None = None  # `x-schedule`: a cron expression; the service runs as a job (swarm/values/schedule.py)


@dataclass(frozen=True)
class NetworkSpec:
    key: str  # name under the top-level `networks:`
    name: str  # as deployed: exact name if external or `name:` is set, else `<stack>_<key>`
    external: bool
    driver_opts: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str | None = None
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretSpec:
    key: str  # name under the top-level `secrets:`, and under `swarm:secrets` when external
    external: bool
    file: Path | None  # absolute path of the `file:`
    content: bytes | None  # the file's bytes; None when external (the value comes from config)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigSpec(SecretSpec):
    """A swarm config: same shape as a secret; external values come from `swarm:configs`."""


@dataclass(frozen=True)
class StackSpec:
    source: str
    version: str
    services: dict[str, ServiceSpec]
    networks: dict[str, NetworkSpec]  # only those some service uses, as docker stack deploy does
    volumes: dict[str, VolumeSpec]
    secrets: dict[str, SecretSpec]
    configs: dict[str, ConfigSpec]
    warnings: list[Problem]  # severity warning; printed with str()


@dataclass(frozen=True)
class Declared:
    """The top-level objects services may use, by key."""

    volumes: dict[str, VolumeSpec]
    networks: dict[str, NetworkSpec]
    secrets: dict[str, SecretSpec]
    configs: dict[str, ConfigSpec]
