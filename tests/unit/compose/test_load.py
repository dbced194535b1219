"""The Compose loader, checked against Docker's own loader and on its error reporting.

The differential tests run `docker stack config -c FILE` (Docker's Compose loader, no daemon
needed) on every stack file of the repo and every file of tests/compose_corpus, and compare
each value it prints with the loader's normalised spec. Docker prints sizes as byte counts,
durations as Go's Duration.String(), CPUs as written, ports expanded: the comparator maps that
output to the spec's terms independently of the loader. A missing docker CLI fails the tests.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from swarm.compose import (
    ServiceSpec,
    StackFileError,
    StackSpec,
    format_duration,
    load_stack_file,
    parse_stack,
)
from tests.unit.compose.stackfiles import (
    CORPUS,
    IGNORED_KEYS,
    INVALID_FILES,
    ROOT,
    STACK,
    VALID_FILES,
    at,
    docker_config,
    load,
    problems,
)


def test_the_corpus_is_large_enough():
    assert len(list(CORPUS.glob("*.yml"))) >= 20
    assert len(INVALID_FILES) >= 15


def split_constraint(text: str) -> tuple[str, str, str]:
    for operator in ("==", "!="):
        if operator in text:
            field, value = text.split(operator, 1)
            return field.strip(), operator, value.strip()
    raise AssertionError(f"Docker accepted a constraint without operator: {text}")


def docker_restart_policy(service: dict) -> tuple | None:
    """The restart policy docker stack deploy derives (deploy.restart_policy, else restart:)."""
    policy = (service.get("deploy") or {}).get("restart_policy")
    if policy is not None:
        return (policy.get("condition"), policy.get("delay"), policy.get("max_attempts"), policy.get("window"))
    restart = service.get("restart")
    if restart in (None, "no"):
        return None
    name, _, count = restart.partition(":")
    if name in ("always", "unless-stopped"):
        return ("any", None, None, None)
    return ("on-failure", None, int(count) if count else None, None)


def docker_update(policy: dict | None) -> tuple | None:
    if policy is None:
        return None
    return (
        policy.get("parallelism"),
        policy.get("delay"),
        policy.get("failure_action"),
        policy.get("monitor"),
        policy.get("max_failure_ratio"),
        policy.get("order"),
    )


def docker_resources(resources: dict | None) -> tuple:
    resources = resources or {}
    generic = {
        entry["discrete_resource_spec"]["kind"]: entry["discrete_resource_spec"]["value"]
        for entry in resources.get("generic_resources", [])
    }
    cpus = resources.get("cpus")
    return (
        int(Fraction(cpus) * 10**9) if cpus else 0,
        int(resources.get("memory", 0)),
        resources.get("pids", 0),
        generic,
    )


def docker_reference(ref: dict) -> tuple:
    return (
        ref["source"],
        ref.get("target", ref["source"]),
        ref.get("uid", "0"),
        ref.get("gid", "0"),
        ref.get("mode", 0o444),
    )


def docker_view(service: dict) -> dict:
    """Docker's printed service, in the spec's terms. Every key Docker prints is consumed."""
    service = dict(service)
    deploy = service.pop("deploy", None) or {}
    placement = deploy.get("placement") or {}
    resources = deploy.get("resources") or {}
    health = service.pop("healthcheck", None)
    mode = deploy.get("mode", "replicated")
    networks = service.pop("networks", None) or {"default": None}
    mounts = [
        (
            volume["type"],
            volume.get("source"),
            volume["target"],
            volume.get("read_only", False),
            (volume.get("bind") or {}).get("propagation"),
            (volume.get("volume") or {}).get("nocopy", False),
            (volume.get("tmpfs") or {}).get("size"),
        )
        for volume in service.pop("volumes", [])
    ] + [("tmpfs", None, target, False, None, False, None) for target in service.pop("tmpfs", [])]
    logging = service.pop("logging", None)
    view = {
        "image": service.pop("image", ""),
        "entrypoint": service.pop("entrypoint", None),
        "command": service.pop("command", None),
        "environment": service.pop("environment", {}),
        "labels": service.pop("labels", {}),
        "deploy_labels": deploy.get("labels", {}),
        "secrets": [docker_reference(ref) for ref in service.pop("secrets", [])],
        "configs": [docker_reference(ref) for ref in service.pop("configs", [])],
        "networks": {
            name: (sorted((options or {}).get("aliases", [])), (options or {}).get("driver_opts", {}))
            for name, options in networks.items()
        },
        "ports": [
            (port.get("mode", "ingress"), port["target"], port.get("published", 0), port.get("protocol", "tcp"))
            for port in service.pop("ports", [])
        ],
        "mounts": mounts,
        "healthcheck": None
        if health is None
        else (
            health.get("test"),
            health.get("interval"),
            health.get("timeout"),
            health.get("start_period"),
            health.get("retries"),
            health.get("disable", False),
        ),
        "mode": mode,
        "replicas": deploy.get("replicas", 1) if mode == "replicated" else None,
        "constraints": [split_constraint(text) for text in placement.get("constraints", [])],
        "preferences": [preference["spread"] for preference in placement.get("preferences", [])],
        "max_replicas_per_node": placement.get("max_replicas_per_node") or None,
        "limits": docker_resources(resources.get("limits")),
        "reservations": docker_resources(resources.get("reservations")),
        "restart_policy": docker_restart_policy({**service, "deploy": deploy}),
        "update_config": docker_update(deploy.get("update_config")),
        "rollback_config": docker_update(deploy.get("rollback_config")),
        "endpoint_mode": (deploy.get("endpoint_mode") or "").lower() or None,
        "stop_grace_period": service.pop("stop_grace_period", None),
        "stop_signal": service.pop("stop_signal", None),
        "user": service.pop("user", None),
        "working_dir": service.pop("working_dir", None),
        "hostname": service.pop("hostname", None),
        "init": service.pop("init", None),
        "tty": service.pop("tty", False),
        "stdin_open": service.pop("stdin_open", False),
        "read_only": service.pop("read_only", False),
        "cap_add": service.pop("cap_add", []),
        "cap_drop": service.pop("cap_drop", []),
        "sysctls": service.pop("sysctls", {}),
        "ulimits": {
            name: (limit, limit) if isinstance(limit, int) else (limit["soft"], limit["hard"])
            for name, limit in service.pop("ulimits", {}).items()
        },
        "extra_hosts": [tuple(entry.split(":", 1)) for entry in service.pop("extra_hosts", [])],
        "dns": service.pop("dns", []),
        "dns_search": service.pop("dns_search", []),
        "logging": None if logging is None else (logging.get("driver"), logging.get("options", {})),
        "isolation": service.pop("isolation", None),
    }
    service.pop("restart", None)
    service.pop("env_file", None)  # already merged into environment by Docker
    leftover = {key for key in service if not key.startswith("x-")} - IGNORED_KEYS
    assert not leftover, f"the comparator does not know {sorted(leftover)}: extend it"
    return view


def spec_view(spec: ServiceSpec) -> dict:
    def duration(nanoseconds: int | None) -> str | None:
        return None if nanoseconds is None else format_duration(nanoseconds)

    def update(policy) -> tuple | None:
        if policy is None:
            return None
        return (
            policy.parallelism,
            duration(policy.delay or None),  # Docker omits a zero delay or monitor
            policy.failure_action,
            duration(policy.monitor or None),
            policy.max_failure_ratio or None,
            policy.order,
        )

    health = spec.healthcheck
    restart = spec.restart_policy
    return {
        "image": spec.image,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint else None,
        "command": list(spec.command) if spec.command else None,
        "environment": spec.environment,
        "labels": spec.labels,
        "deploy_labels": spec.deploy_labels,
        "secrets": [(ref.source, ref.target, ref.uid, ref.gid, ref.mode) for ref in spec.secrets],
        "configs": [(ref.source, ref.target, ref.uid, ref.gid, ref.mode) for ref in spec.configs],
        "networks": {
            attachment.network: (sorted(attachment.aliases), attachment.driver_opts) for attachment in spec.networks
        },
        "ports": [(port.mode, port.target, port.published or 0, port.protocol) for port in spec.ports],
        "mounts": [
            (
                mount.type,
                mount.source,
                mount.target,
                mount.read_only,
                mount.propagation,
                mount.no_copy,
                mount.tmpfs_size,
            )
            for mount in spec.mounts
        ],
        "healthcheck": None
        if health is None
        else (
            list(health.test) if health.test else None,
            duration(health.interval),
            duration(health.timeout),
            duration(health.start_period),
            health.retries,
            health.disable,
        ),
        "mode": spec.mode,
        "replicas": spec.replicas,
        "constraints": [tuple(constraint) for constraint in spec.constraints],
        "preferences": list(spec.preferences),
        "max_replicas_per_node": spec.max_replicas_per_node,
        "limits": (spec.limits.nano_cpus, spec.limits.memory_bytes, spec.limits.pids, spec.limits.generic_resources),
        "reservations": (
            spec.reservations.nano_cpus,
            spec.reservations.memory_bytes,
            spec.reservations.pids,
            spec.reservations.generic_resources,
        ),
        "restart_policy": None
        if restart is None
        else (restart.condition, duration(restart.delay), restart.max_attempts, duration(restart.window)),
        "update_config": update(spec.update_config),
        "rollback_config": update(spec.rollback_config),
        "endpoint_mode": spec.endpoint_mode,
        "stop_grace_period": duration(spec.stop_grace_period),
        "stop_signal": spec.stop_signal,
        "user": spec.user,
        "working_dir": spec.working_dir,
        "hostname": spec.hostname,
        "init": spec.init,
        "tty": spec.tty,
        "stdin_open": spec.stdin_open,
        "read_only": spec.read_only,
        "cap_add": list(spec.cap_add),
        "cap_drop": list(spec.cap_drop),
        "sysctls": spec.sysctls,
        "ulimits": {name: (limit.soft, limit.hard) for name, limit in spec.ulimits.items()},
        "extra_hosts": list(spec.extra_hosts),
        "dns": list(spec.dns),
        "dns_search": list(spec.dns_search),
        "logging": None if spec.logging is None else (spec.logging.driver, spec.logging.options),
        "isolation": spec.isolation,
    }


def external_names(path: Path, section: str) -> set[str]:
    document = yaml.safe_load(path.read_text())
    return {name for name, definition in (document.get(section) or {}).items() if (definition or {}).get("external")}


@pytest.mark.tools("docker")
@pytest.mark.parametrize("path", VALID_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_loader_matches_docker_stack_config(path: Path):
    result = docker_config(path)
    assert result.returncode == 0, f"docker rejects {path}: {result.stderr}"
    printed = yaml.safe_load(result.stdout)
    spec = load_stack_file(
        path,
        stack=STACK,
        external_secret_names=external_names(path, "secrets"),
        external_config_names=external_names(path, "configs"),
    )

    assert sorted(spec.services) == sorted(printed["services"])
    for name, service in printed["services"].items():
        expected, actual = docker_view(service), spec_view(spec.services[name])
        for field in expected:
            assert actual[field] == expected[field], f"services.{name}.{field}"
        for key in IGNORED_KEYS & service.keys():
            assert any(f"services.{name}.{key}:" in warning for warning in map(str, spec.warnings)), key
    assert_top_level(spec, printed)


def assert_top_level(spec: StackSpec, printed: dict) -> None:
    for key, network in spec.networks.items():
        if key == "default":
            assert network.name == f"{STACK}_default"
            continue
        declared = printed["networks"][key] or {}
        assert network.external == declared.get("external", False), key
        assert network.name == declared.get("name", f"{STACK}_{key}"), key
        assert network.driver_opts == declared.get("driver_opts", {}), key
        assert network.internal == declared.get("internal", False), key
        assert network.labels == declared.get("labels", {}), key
        assert list(network.subnets) == [pool["subnet"] for pool in declared.get("ipam", {}).get("config", [])], key
    for key, volume in spec.volumes.items():
        declared = printed["volumes"][key] or {}
        assert volume.external == declared.get("external", False), key
        assert volume.name == declared.get("name", f"{STACK}_{key}"), key
        assert volume.driver == declared.get("driver"), key
        assert volume.driver_opts == declared.get("driver_opts", {}), key
        assert volume.labels == declared.get("labels", {}), key
    for section, objects in (("secrets", spec.secrets), ("configs", spec.configs)):
        assert sorted(objects) == sorted(printed.get(section, {}))
        for key, spec_object in objects.items():
            declared = printed[section][key]
            assert spec_object.external == declared.get("external", False), key
            assert spec_object.labels == declared.get("labels", {}), key
            if not spec_object.external:
                assert str(spec_object.file) == declared["file"], key
                assert spec_object.content == Path(declared["file"]).read_bytes(), key


@pytest.mark.tools("docker")
@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda path: path.name)
def test_loader_rejects_what_docker_rejects(path: Path):
    # "# expect: LINE:COLUMN: PATH": the problem Docker's rejection corresponds to, and where it is.
    line, column, expected_path = re.match(r"# expect: (\d+):(\d+):(?: (.*))?\n", path.read_text()).groups(default="")
    result = docker_config(path)
    assert result.returncode != 0, f"docker accepts {path.name}:\n{result.stdout}"

    with pytest.raises(StackFileError) as raised:
        load_stack_file(path, stack=STACK)

    paths = [problem.where for problem in raised.value.problems]
    assert expected_path in paths, str(raised.value)
    shown = str(path.relative_to(ROOT))  # files are named relative to the project
    assert all(problem.file == shown and problem.message for problem in raised.value.problems)
    location = f"{shown}:{line}:{column}: {expected_path}" if expected_path else f"{shown}:{line}:{column}"
    assert f"  - {location}: " in str(raised.value)


def test_every_problem_is_reported_with_file_and_path(tmp_path: Path):
    text = """
version: "3.8"
services:
  api:
    image: registry.example.com/api:1
    networks: [missing_network]
    secrets: [missing_secret]
    ports: ["99999:80"]
    stop_grace_period: 10x
    unknown_key: 1
    deploy:
      replicas: two
      placement:
        constraints: ["node.labels.bad key == x"]
      resources:
        limits: {cpus: "lots", memory: 10Q}
  worker:
    command: ["run"]
secrets:
  from_file:
    file: ./does-not-exist.txt
"""
    found = problems(tmp_path, text)
    assert set(found) == {
        "services.api.networks[0]",
        "services.api.secrets[0]",
        "services.api.ports[0]",
        "services.api.stop_grace_period",
        "services.api.unknown_key",
        "services.api.deploy.replicas",
        "services.api.deploy.placement.constraints[0]",
        "services.api.deploy.resources.limits.cpus",
        "services.api.deploy.resources.limits.memory",
        "services.worker",
        "secrets.from_file.file",
    }
    assert "not declared under the top-level `networks:`" in found["services.api.networks[0]"]
    assert "512M or 10G" in found["services.api.deploy.resources.limits.memory"]
    assert "needs `image`" in found["services.worker"]
    assert "does not exist" in found["secrets.from_file.file"]
    with pytest.raises(StackFileError) as raised:
        load(tmp_path, text)
    message = str(raised.value)
    assert message.startswith("11 problems in the stack file; nothing was deployed:")
    assert f"{at(tmp_path / 'stack.yml', '10Q')}: services.api.deploy.resources.limits.memory: " in message


def test_capacity_helpers_expose_placement_and_reservations():
    spec = load_stack_file(ROOT / "stacks" / "prod.yaml", stack="prod")
    api = spec.services["api"]
    assert api.constraints == (("node.role", "==", "worker"), ("node.labels.type", "==", "machine-learning"))
    assert (api.reservations.nano_cpus, api.reservations.memory_bytes, api.reservations.generic_resources) == (
        500_000_000,
        5 * 2**30,
        {},
    )
    assert (api.limits.nano_cpus, api.limits.memory_bytes) == (800_000_000, 10 * 2**30)
    assert (api.mode, api.replicas, api.max_replicas_per_node) == ("replicated", 3, None)
    database = spec.services["database"]
    assert [str(constraint) for constraint in database.constraints] == [
        "node.role==manager",
        "node.labels.type==database",
    ]
    assert [(mount.type, mount.source, mount.target) for mount in database.mounts] == [
        ("bind", "/mnt/postgresql/data", "/var/lib/postgresql/data")
    ]
    assert {ref.source for ref in database.secrets} == {"db_name", "db_user", "db_password"}


def test_staging_is_prod_scaled_down():
    prod = load_stack_file(ROOT / "stacks" / "prod.yaml", stack="prod").services["api"]
    staging = load_stack_file(ROOT / "stacks" / "staging.yaml", stack="staging").services["api"]
    assert staging.replicas == 1 and prod.replicas == 3
    assert staging.reservations.memory_bytes < staging.limits.memory_bytes <= 4 * 2**30
    assert staging.constraints == prod.constraints


def test_parse_stack_reports_a_document_that_is_not_a_mapping():
    with pytest.raises(StackFileError, match="must be a mapping"):
        parse_stack(["not", "a", "mapping"], source="x.yml", base_dir=ROOT, stack=STACK)


STACK_WITH_MISTAKES = """\
version: "3.8"
x-defaults: &defaults
  image: registry.example.com/base:1
  deploy:
    replicas: two
services:
  api:
    image: registry.example.com/api:1
    deploy:
      resources:
        limits:
          memroy: 1G
  worker:
    command: ["run"]
  batch:
    <<: *defaults
"""


def test_each_problem_points_at_its_line_and_column(tmp_path: Path):
    with pytest.raises(StackFileError) as raised:
        load(tmp_path, STACK_WITH_MISTAKES)
    file = tmp_path / "stack.yml"
    assert [str(problem) for problem in raised.value.problems] == [
        # An unknown key deep in a service: at the key itself.
        f"{file}:12:11: services.api.deploy.resources.limits.memroy: unknown key; did you mean memory?",
        # A missing key: at the mapping it is missing from (the key that introduces it).
        f"{file}:13:3: services.worker: needs `image`: swarm runs images, it does not build them",
        # A value a `<<: *defaults` merge brought: where its text is, in the anchored mapping; the
        # path says which service got it.
        f"{file}:5:15: services.batch.deploy.replicas: must be a whole number, not the string 'two'",
    ]
