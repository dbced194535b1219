"""Compose stack files, loaded into typed, validated, normalised service specs (`load_stack`), and
those specs translated into pulumi_docker arguments (`service_args`, `network_args`, ...).

How the loader reads a file, stage by stage, and where it deliberately differs from
`docker stack deploy`: swarm/compose/load.py.
"""

# Names other modules use (the model and the value parsers), importable from here as before.
from swarm.compose.load import load_stack, load_stack_file, parse_stack
from swarm.compose.model import (
    DEFAULT_NETWORK,
    NAME,
    STACK_NAMESPACE_LABEL,
    ConfigSpec,
    FileReference,
    Healthcheck,
    Logging,
    Mount,
    NetworkAttachment,
    NetworkSpec,
    Resources,
    RestartPolicy,
    SecretSpec,
    ServiceSpec,
    StackSpec,
    Ulimit,
    UpdatePolicy,
    VolumeSpec,
)
from swarm.compose.service_args import (
    config_args,
    deployed_replicas,
    network_args,
    secret_args,
    service_args,
    update_order,
)
from swarm.compose.yamlfile import (
    YamlDocument,
    describe_yaml_error,
    display_path,
    read_stack_file,
    read_yaml,
    read_yaml_document,
)
from swarm.diagnostics import Problem, StackFileError
from swarm.values import (
    Constraint,
    Port,
    format_duration,
    go_string,
    parse_constraint,
    parse_cpus,
    parse_duration,
    parse_memory,
    parse_port,
    split_command,
)

__all__ = [
    "config_args",
    "deployed_replicas",
    "network_args",
    "secret_args",
    "service_args",
    "update_order",
    "ConfigSpec",
    "Constraint",
    "DEFAULT_NETWORK",
    "FileReference",
    "Healthcheck",
    "Logging",
    "Mount",
    "NAME",
    "NetworkAttachment",
    "NetworkSpec",
    "Port",
    "Problem",
    "Resources",
    "RestartPolicy",
    "STACK_NAMESPACE_LABEL",
    "SecretSpec",
    "ServiceSpec",
    "StackFileError",
    "StackSpec",
    "Ulimit",
    "UpdatePolicy",
    "VolumeSpec",
    "YamlDocument",
    "describe_yaml_error",
    "display_path",
    "format_duration",
    "go_string",
    "load_stack",
    "load_stack_file",
    "parse_constraint",
    "parse_cpus",
    "parse_duration",
    "parse_memory",
    "parse_port",
    "parse_stack",
    "read_stack_file",
    "read_yaml",
    "read_yaml_document",
    "split_command",
]
