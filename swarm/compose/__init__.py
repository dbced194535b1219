"""Compose stack files, loaded into typed, validated, normalised service specs.

One entry: `load_stack(path, stack=...)` (the stack file with its model catalogue expanded).
The stages, each in its own module:
- `yamlfile`: the YAML, read as Docker's parser reads it, with the line and column of each value;
- `catalogue`: the models of an `x-model-catalogue`, expanded into plain service entries;
- `reader`: what every section shares (versions, problems, warnings, `$` interpolation);
- the sections: `services`, `deploy`, `ports`, `volumes`, `networks`, `secrets`;
- `normalise`: what `docker stack deploy` derives once every service is read;
- `load`: the stages in order. Values (durations, sizes, CPUs, ports, ...) are parsed in
  swarm/values/ (shared with the configuration), one file per type; the typed result is in `model`.

A stack file is an ordinary Compose file as used with `docker stack deploy` (DESIGN.md,
"Compose stack files"). Values mean exactly what Docker makes of them; `docker stack config -c`
is the reference and the differential tests compare against it field by field:

- YAML is read the way Docker's parser (yaml.v3) reads it: only `true`/`false` are booleans
  (`yes`, `on` are strings), no sexagesimal numbers (an unquoted `22:22` port stays a string),
  `0440` is octal, duplicate keys are an error. Numbers used as strings (environment, labels)
  are printed as Go prints them (`1.10` becomes `1.1`, `1e6` becomes `1e+06`).
- Sizes follow go-units RAMInBytes (`10G` is 10737418240), CPUs are exact rationals turned into
  NanoCPUs, durations follow Go's time.ParseDuration, ports expand like Docker's nat package.
- Keys introduced after the file's `version` are rejected as Docker does; no version means the
  latest 3.x (3.13).

Every problem is collected before failing, each with file, line, column, path and what is
expected (`stacks/prod.yaml:47:5: services.api.deplyo: unknown key; did you mean deploy?`), so
an operator fixes a stack file in one pass. Options that swarm (or the Docker provider this
program deploys with) ignores are warnings, never silence.

Deliberate differences from `docker stack deploy`, each reported clearly:
- `${VAR}` interpolation is not supported: a deployment must not depend on the shell of
  whoever runs `pulumi up`. A `$` is a problem; `$$` is a literal `$`, as in Docker. For the
  same reason an environment variable without a value (`- NAME`), which Docker copies from
  the deployer's shell, is a problem.
- Bind mount sources must be absolute paths on the node: Docker resolves `./data` against the
  deployer's working directory, which does not exist on the nodes.
- Service-level `tmpfs:` (silently dropped by `docker stack deploy`) becomes a tmpfs mount.
- `restart:` is honoured only as Docker's converter does (a fallback when there is no
  `deploy.restart_policy`); `restart: "no"` does not stop swarm restarting tasks, so it warns.
- Checks Docker only makes at deploy time (placement constraint syntax, mode, `replicas` with
  `global`, undeclared secrets/networks/volumes, missing secret files) are made at load time.
- Secrets and configs declared `external: true` take their value from the stack configuration
  (`swarm:secrets.NAME`, `swarm:configs.NAME`) instead of pre-existing swarm objects.
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
