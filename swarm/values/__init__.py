"""Values read exactly as Docker's Go code reads them, one file per value type (as compose-go does).
Offers the parsers (durations, sizes, CPUs, ports, constraints, commands, env files, cron schedules,
image references) that the configuration and the stack file loader share."""

from swarm.values.command import split_command
from swarm.values.constraint import Constraint, parse_constraint
from swarm.values.cpus import parse_cpus
from swarm.values.duration import format_duration, parse_duration
from swarm.values.envfile import parse_env_file
from swarm.values.gostring import go_string
from swarm.values.port import PROTOCOLS, Port, parse_port
from swarm.values.registry import (
    CREDENTIALS_LABEL,
    DIGITALOCEAN_REGISTRY,
    IMAGE_REFERENCE,
    REGISTRY_HOST,
    credentials_from_docker_config,
    credentials_label,
    moving_tag,
    provider_auth_addresses,
    pulls_from,
    registry_server,
)
from swarm.values.schedule import (
    COMPLETIONS_LABEL,
    SCHEDULE_LABEL,
    ScheduleError,
    parse_schedule,
    read_service_schedule,
)
from swarm.values.size import parse_memory

__all__ = [
    "COMPLETIONS_LABEL",
    "CREDENTIALS_LABEL",
    "Constraint",
    "DIGITALOCEAN_REGISTRY",
    "IMAGE_REFERENCE",
    "PROTOCOLS",
    "Port",
    "REGISTRY_HOST",
    "SCHEDULE_LABEL",
    "ScheduleError",
    "credentials_from_docker_config",
    "credentials_label",
    "moving_tag",
    "format_duration",
    "go_string",
    "parse_constraint",
    "parse_cpus",
    "parse_duration",
    "parse_env_file",
    "parse_memory",
    "parse_port",
    "parse_schedule",
    "provider_auth_addresses",
    "pulls_from",
    "read_service_schedule",
    "registry_server",
    "split_command",
]
