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

Stage by stage: YAML, then the top-level sections, then the services, then normalisation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from swarm.compose.catalogue import (
    CATALOGUE_KEY,
    attribute,
    read_catalogue,
)
from swarm.compose.model import Declared, StackSpec
from swarm.compose.networks import read_networks
from swarm.compose.normalise import used_networks
from swarm.compose.reader import (
    DEFAULT_VERSION,
    LATEST_MINOR,
    V30,
    V31,
    V33,
    V34,
    Reader,
    kind_of,
    version_text,
)
from swarm.compose.secrets import read_file_objects
from swarm.compose.services import read_service
from swarm.compose.volumes import read_volumes
from swarm.compose.yamlfile import display_path, read_stack_file
from swarm.diagnostics import Positions, Problem, StackFileError

_TOP_KEYS = {"version": V30, "services": V30, "networks": V30, "volumes": V30, "secrets": V31, "configs": V33}


def _read_version(r: Reader, document: dict) -> str:
    value = document.get("version")
    if value is None:
        return version_text(DEFAULT_VERSION)
    if not isinstance(value, str):
        r.problem("version", f'must be a string, not {kind_of(value)}: quote it, like version: "3.8"')
        return version_text(DEFAULT_VERSION)
    match = re.fullmatch(r"3(?:\.(\d+))?", value)
    if value == "" or (match and match.group(1) is None):
        return version_text(DEFAULT_VERSION)  # "3" means the latest 3.x, as in Docker
    if not match or int(match.group(1)) > LATEST_MINOR or match.group(1) != str(int(match.group(1))):
        r.problem(
            "version", f"unsupported Compose file version {value!r}: docker stack deploy reads 3.0 to 3.{LATEST_MINOR}"
        )
        return version_text(DEFAULT_VERSION)
    r.version = (3, int(match.group(1)))
    return value


def parse_stack(
    document: Any,
    *,
    source: str,
    base_dir: Path,
    stack: str,
    external_secret_names: Collection[str] | None = None,
    external_config_names: Collection[str] | None = None,
    positions: Positions | None = None,
) -> StackSpec:
    """The stack described by a parsed Compose document.

    `base_dir` anchors relative `file:` and `env_file` paths (the Compose file's directory).
    `external_secret_names`/`external_config_names` are the names with a value in the stack
    configuration; None skips that check (offline tools that have no configuration).
    `positions` (the document's, from read_stack_file) place each problem at its line and column.
    Raises StackFileError listing every problem.
    """
    r = Reader(source, base_dir, stack, positions)
    if not isinstance(document, dict):
        r.problem("", f"must be a mapping with a `services:` section, not {kind_of(document)}")
        raise StackFileError(r.problems)
    version = _read_version(r, document)
    r.mapping(document, "", _TOP_KEYS, extensions=V34)
    if not document.get("services"):
        r.problem("services", "expected at least one service")
    sections = {
        key: r.interpolate(document.get(key), key) for key in ("services", "networks", "volumes", "secrets", "configs")
    }
    declared = Declared(
        volumes=read_volumes(r, sections["volumes"]),
        networks=read_networks(r, sections["networks"]),
        secrets=read_file_objects(r, "secrets", sections["secrets"], external_secret_names),
        configs=read_file_objects(r, "configs", sections["configs"], external_config_names),
    )
    r.declared = declared
    services = {
        name: read_service(r, name, definition)
        for name, definition in r.named_entries(sections["services"], "services")
    }

    networks = used_networks(r, services, declared.networks)
    spec = StackSpec(
        source=source,
        version=version,
        services=services,
        networks=networks,
        volumes=declared.volumes,
        secrets=declared.secrets,
        configs=declared.configs,
        warnings=r.warnings,
    )
    if r.problems:
        # The services as far as they could be read: the checks against the configuration still run.
        raise StackFileError(r.problems, partial=spec)
    return spec


def load_stack_file(path: Path, *, stack: str, **external_names: Collection[str] | None) -> StackSpec:
    """The stack described by the Compose file at `path`, its model catalogue not expanded
    (tools and tests of the loader alone); keywords as for load_stack."""
    return load_stack(path, stack=stack, catalogue=False, **external_names)


def load_stack(
    path: Path,
    *,
    stack: str,
    external_secret_names: Collection[str] | None = None,
    external_config_names: Collection[str] | None = None,
    catalogue: bool = True,
) -> StackSpec:
    """The stack described by the Compose file at `path` (see parse_stack), with the models of
    the catalogue it names under `x-model-catalogue` added to its services first (unless
    `catalogue` is false). Raises StackFileError listing every problem of the stack file and of
    the catalogue."""
    read = read_stack_file(path)
    document = read.value
    source = display_path(path)
    problems: list[Problem] = []
    expansion = None
    if catalogue and isinstance(document, dict) and CATALOGUE_KEY in document:
        hand_written = document.get("services")
        if hand_written is None or isinstance(hand_written, dict):  # else the loader reports it
            expansion, problems = read_catalogue(read, path, hand_written or {})
        if expansion:
            document = {**document, "services": {**(hand_written or {}), **expansion.services}}
    try:
        spec = parse_stack(
            document,
            source=source,
            base_dir=path.parent,
            stack=stack,
            external_secret_names=external_secret_names,
            external_config_names=external_config_names,
            positions=read.positions,
        )
    except StackFileError as error:
        raise StackFileError(problems + attribute(error.problems, expansion), partial=error.partial) from None
    if problems:
        raise StackFileError(problems, partial=spec)
    if expansion:
        spec = dataclasses.replace(spec, warnings=attribute(spec.warnings, expansion))
    return spec
