"""The Compose loader, checked against Docker's own loader and on its error reporting.

The differential tests run `docker stack config -c FILE` (Docker's Compose loader, no daemon
needed) on every stack file of the repo and every file of tests/compose_corpus, and compare
each value it prints with the loader's normalised spec. Docker prints sizes as byte counts,
durations as Go's Duration.String(), CPUs as written, ports expanded: the comparator maps that
output to the spec's terms independently of the loader. A missing docker CLI fails the tests.
"""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from swarm.compose import (
    Constraint,
    Port,
    ServiceSpec,
    StackFileError,
    StackSpec,
    format_duration,
    go_string,
    load_stack_file,
    parse_constraint,
    parse_cpus,
    parse_duration,
    parse_memory,
    parse_port,
    parse_stack,
    read_yaml,
    split_command,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "compose_corpus"
VALID_FILES = sorted(ROOT.glob("stacks/*.yaml")) + sorted(CORPUS.glob("*.yml"))
INVALID_FILES = sorted((CORPUS / "invalid").glob("*.yml"))
STACK = "test"

# Keys the loader accepts but swarm ignores: each must produce a warning naming its path.
IGNORED_KEYS = {"build", "container_name", "depends_on", "expose", "links", "privileged", "security_opt"}


def docker_config(path: Path) -> subprocess.CompletedProcess[str]:
    # A bare environment: Docker would otherwise copy values from this shell.
    return subprocess.run(
        ["docker", "stack", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        timeout=60,
    )


def test_the_corpus_is_large_enough():
    assert len(list(CORPUS.glob("*.yml"))) >= 20
    assert len(INVALID_FILES) >= 15


# ---------------------------------------------------------------------------------------------
# Differential: the spec's values equal what Docker prints.


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
            assert any(f"services.{name}.{key}:" in warning for warning in spec.warnings), key
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


# ---------------------------------------------------------------------------------------------
# Files Docker rejects: rejected too, with the path of the mistake. Each file's first line says
# which path: `# expect: services.api.deploy.resources.limits.memory`.


@pytest.mark.tools("docker")
@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda path: path.name)
def test_loader_rejects_what_docker_rejects(path: Path):
    expected_path = re.match(r"# expect: ?(.*)\n", path.read_text()).group(1)
    result = docker_config(path)
    assert result.returncode != 0, f"docker accepts {path.name}:\n{result.stdout}"

    with pytest.raises(StackFileError) as raised:
        load_stack_file(path, stack=STACK)

    paths = [problem.path for problem in raised.value.problems]
    assert expected_path in paths, str(raised.value)
    shown = str(path.relative_to(ROOT))  # files are named relative to the project
    assert all(problem.file == shown and problem.message for problem in raised.value.problems)
    location = f"{shown}: {expected_path}" if expected_path else shown
    assert f"  - {location}: " in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Values parsed as Docker's Go code parses them (expected values printed by Docker 28).


@pytest.mark.parametrize(
    ("text", "nanoseconds", "printed"),
    [
        ("1m30s", 90 * 10**9, "1m30s"),
        ("1.5h", 5400 * 10**9, "1h30m0s"),
        ("500ms", 5 * 10**8, "500ms"),
        ("250us", 250_000, "250µs"),
        ("100µs", 100_000, "100µs"),
        ("1.5s", 1_500_000_000, "1.5s"),
        ("0", 0, "0s"),
        ("3600s", 3600 * 10**9, "1h0m0s"),
        ("2h45m", 9900 * 10**9, "2h45m0s"),
        ("1.000000001s", 1_000_000_001, "1.000000001s"),
        (".5m", 30 * 10**9, "30s"),
        ("7ns", 7, "7ns"),
    ],
)
def test_durations_follow_go(text: str, nanoseconds: int, printed: str):
    assert parse_duration(text) == nanoseconds
    assert format_duration(nanoseconds) == printed


@pytest.mark.parametrize("text", ["", "10", "10x", "1m30", "h", ".s", "1.2.3s", "- 1s", "9999999999999999999h"])
def test_bad_durations_are_rejected(text: str):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10G", 10737418240),
        ("1.5 GB", 1610612736),
        ("10GiB", 10737418240),
        ("10gb", 10737418240),
        ("1e3", 1000),
        ("10 ", 10),
        ("1kib", 1024),
        ("1KIB", 1024),
        ("1b", 1),
        ("+5", 5),
        (".5g", 536870912),
        ("5.", 5),
        ("1e3k", 1024000),
        ("1_000", 1000),
        ("1.9", 1),
        ("1p", 1125899906842624),
        ("1 k", 1024),
    ],
)
def test_memory_sizes_follow_go_units(text: str, size: int):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "text", [" 10", "5.5.5g", "1bb", "0x10", "10x", "-1", "1  k", "k", "1i", "1ib", "128Mi", "99999999999p"]
)
def test_bad_memory_sizes_are_rejected(text: str):
    with pytest.raises(ValueError):
        parse_memory(text)


def test_cpus_are_exact_nano_cpus():
    assert parse_cpus("0.8") == 800_000_000
    assert parse_cpus("1/4") == 250_000_000
    assert parse_cpus("2") == 2_000_000_000
    assert parse_cpus("0.000000001") == 1
    for bad in ("abc", "0.0000000001", "1/3", "-1", "1/0", " 1", "1,5"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


def test_ports_expand_as_docker_does():
    assert parse_port("8080:80/udp") == ([Port(80, 8080, "udp", "ingress")], None)
    assert parse_port("8000-8002:80")[0] == [Port(80, p, "tcp", "ingress") for p in (8000, 8001, 8002)]
    # Docker sorts expanded ports as strings: 1000/tcp before 998/tcp.
    assert [port.target for port in parse_port("998-1001")[0]] == [1000, 1001, 998, 999]
    assert parse_port("80/TCP")[0] == [Port(80, None, "tcp", "ingress")]
    assert parse_port("0:80")[0] == [Port(80, None, "tcp", "ingress")]
    assert parse_port("127.0.0.1:8080:80") == ([Port(80, 8080, "tcp", "ingress")], "127.0.0.1")
    assert parse_port("[::1]:8080:80")[1] == "::1"
    assert parse_port("0.0.0.0:80:80")[1] is None
    for bad in (
        "65536:80",
        "8000-8001:80-82",
        "80/xyz",
        "abc",
        "8080:",
        "80-79",
        "80-",
        "1.2.3.4:80",
        " 80",
        "8080:80:90",
    ):
        with pytest.raises(ValueError):
            parse_port(bad)


def test_constraints_are_checked_as_swarm_checks_them():
    assert parse_constraint("node.role == worker") == Constraint("node.role", "==", "worker")
    assert parse_constraint("node.labels.type!=cheap") == Constraint("node.labels.type", "!=", "cheap")
    assert parse_constraint("NODE.LABELS.Zone==a") == Constraint("node.labels.Zone", "==", "a")
    assert str(parse_constraint("engine.labels.os == linux")) == "engine.labels.os==linux"
    for bad in (
        "node.role = worker",
        "node.labels.bad key!=x",
        "node.lables.type==x",
        "node.role==boss",
        "node.hostname==",
        "node.labels.==x",
    ):
        with pytest.raises(ValueError):
            parse_constraint(bad)


def test_commands_split_like_google_shlex():
    assert split_command("echo \"hello world\" 'x y'") == ["echo", "hello world", "x y"]
    assert split_command("sh -c 'echo $X'") == ["sh", "-c", "echo $X"]
    assert split_command(r'a "b\"c" d\ e') == ["a", 'b"c', "d e"]
    assert split_command(r'"a\b"') == ["ab"]  # any character may be escaped inside double quotes
    assert split_command("run # a comment") == ["run"]
    assert split_command("a#b ''") == ["a#b", ""]
    for bad in ("'open", '"open', "trailing\\"):
        with pytest.raises(ValueError):
            split_command(bad)


def test_yaml_scalars_resolve_as_in_docker():
    document = read_yaml(
        "a: {on: on, yes: yes, t: TRUE, o: 0440, n: ~, p: 22:22, f: 1e3, h: 0x1F, big: 18446744073709551616}"
    )
    assert document["a"] == {
        "on": "on",
        "yes": "yes",
        "t": True,
        "o": 288,
        "n": None,
        "p": "22:22",
        "f": 1000.0,
        "h": 31,
        "big": 1.8446744073709552e19,
    }
    assert [go_string(value) for value in (1.10, 1e6, 100000.0, 1.2e-05, 12, 0.1)] == [
        "1.1",
        "1e+06",
        "100000",
        "1.2e-05",
        "12",
        "0.1",
    ]


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path):
    path = tmp_path / "stack.yml"
    path.write_text("services:\n  a: {image: x}\n  a: {image: y}\n")
    with pytest.raises(StackFileError, match="already defined at line 2"):
        load_stack_file(path, stack=STACK)


# ---------------------------------------------------------------------------------------------
# Problems and warnings


def load(tmp_path: Path, text: str, **kwargs) -> StackSpec:
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return load_stack_file(path, stack=STACK, **kwargs)


def problems(tmp_path: Path, text: str, **kwargs) -> dict[str, str]:
    with pytest.raises(StackFileError) as raised:
        load(tmp_path, text, **kwargs)
    return {problem.path: problem.message for problem in raised.value.problems}


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
    assert f"{tmp_path / 'stack.yml'}: services.api.deploy.resources.limits.memory: " in message


def test_external_secrets_need_a_value_in_config(tmp_path: Path):
    text = "services:\n  db: {image: postgres:13, secrets: [db_password]}\nsecrets:\n  db_password: {external: true}\n"
    assert load(tmp_path, text).secrets["db_password"].content is None  # offline tools: no check
    assert load(tmp_path, text, external_secret_names={"db_password"}).secrets["db_password"].external
    found = problems(tmp_path, text, external_secret_names=set())
    assert "pulumi config set --secret --path 'swarm:secrets.db_password' VALUE" in found["secrets.db_password"]


def test_secret_files_are_read_relative_to_the_stack_file(tmp_path: Path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "token").write_bytes(b"s3cret\n")
    spec = load(tmp_path, "services:\n  a: {image: x, secrets: [token]}\nsecrets:\n  token: {file: files/token}\n")
    assert spec.secrets["token"].content == b"s3cret\n"
    assert spec.services["a"].secrets[0].target == "token"


def test_options_swarm_ignores_are_warnings_naming_file_and_path(tmp_path: Path):
    spec = load(
        tmp_path,
        "services:\n  a:\n    image: x\n    depends_on: [b]\n    container_name: a1\n    build: .\n    restart: 'no'\n"
        "  b:\n    image: y\n    ports: ['127.0.0.1:80:80']\n    volumes: ['/srv:/srv:z']\n",
    )
    file = str(tmp_path / "stack.yml")
    assert {warning.split(": ")[1] for warning in spec.warnings} == {
        "services.a.depends_on",
        "services.a.container_name",
        "services.a.build",
        "services.a.restart",
        "services.b.ports[0]",
        "services.b.volumes[0]",
    }
    assert all(warning.startswith(file + ": ") for warning in spec.warnings)
    assert any("does not stop swarm from restarting" in warning for warning in spec.warnings)


def test_forbidden_keys_are_problems(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, mem_limit: 1g, volumes_from: [b]}\n")
    assert "deploy.resources" in found["services.a.mem_limit"]
    assert "services.a.volumes_from" in found


def test_variable_substitution_is_refused_but_double_dollar_is_a_dollar(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: 'x:${TAG}', environment: {A: 'cost $5'}}\n")
    assert set(found) == {"services.a.image", "services.a.environment.A"}
    assert "$$" in found["services.a.image"]
    spec = load(tmp_path, "services:\n  a: {image: x, environment: {A: 'cost $$5'}}\n")
    assert spec.services["a"].environment == {"A": "cost $5"}


def test_environment_without_value_is_a_problem(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, environment: [A, B=1], labels: [c]}\n")
    assert list(found) == ["services.a.environment[0]"]
    assert "A=VALUE" in found["services.a.environment[0]"]


def test_relative_bind_mounts_are_refused(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, volumes: ['./data:/data', '~/x:/x']}\n")
    assert set(found) == {"services.a.volumes[0].source", "services.a.volumes[1].source"}
    assert "absolute path on the node" in found["services.a.volumes[0].source"]


def test_deploy_time_mistakes_are_found_at_load_time(tmp_path: Path):
    found = problems(
        tmp_path,
        """
services:
  a:
    image: x
    volumes: [data:/data]
    deploy:
      mode: global
      replicas: 2
  b:
    image: x
    ports: ["80:80"]
    deploy: {mode: daemon, endpoint_mode: dnsrr}
  c:
    image: x
    healthcheck: {test: ["CMD", "true"], disable: true}
    deploy: {restart_policy: {condition: always}}
""",
    )
    assert set(found) == {
        "services.a.volumes[0].source",
        "services.a.deploy.replicas",
        "services.b.deploy.mode",
        "services.b.ports",
        "services.c.healthcheck",
        "services.c.deploy.restart_policy.condition",
    }


def test_keys_newer_than_the_declared_version_are_refused(tmp_path: Path):
    found = problems(
        tmp_path,
        'version: "3.4"\nservices:\n  a: {image: x, init: true, deploy: {rollback_config: {order: stop-first}}}\n',
    )
    assert set(found) == {"services.a.init", "services.a.deploy.rollback_config"}
    assert "3.7 or later" in found["services.a.init"]


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
    assert any("networks.unused" in warning for warning in spec.warnings)


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


def test_misspelled_names_get_a_did_you_mean(tmp_path: Path):
    found = problems(
        tmp_path,
        """\
version: "3.8"
services:
  api:
    image: x
    deplyo: {replicas: 2}
    networks: [main_netwrok]
    secrets: [db_pasword]
    deploy:
      placement:
        constraints: [node.role == wroker, node.hostnme == a]
networks:
  main_network: {}
secrets:
  db_password: {external: true}
""",
    )
    assert found["services.api.deplyo"] == "unknown key; did you mean deploy?"
    assert found["services.api.networks[0]"].endswith("did you mean main_network?")
    assert found["services.api.secrets[0]"].endswith("did you mean db_password?")
    assert found["services.api.deploy.placement.constraints[0]"].endswith("did you mean worker?")
    assert found["services.api.deploy.placement.constraints[1]"].endswith(
        "unknown field 'node.hostnme'; did you mean node.hostname?"
    )


@pytest.mark.parametrize("resource, reserved, limit", [("cpus", "'2'", "'1'"), ("memory", "2G", "1G")])
def test_a_reservation_above_its_own_limit_is_refused(tmp_path: Path, resource, reserved, limit):
    found = problems(
        tmp_path,
        f"""\
version: "3.8"
services:
  api:
    image: x
    deploy:
      resources:
        reservations: {{{resource}: {reserved}}}
        limits: {{{resource}: {limit}}}
""",
    )
    assert found == {
        f"services.api.deploy.resources.reservations.{resource}": (
            f"reserves more than its own limit (limits.{resource}); Docker refuses such a task: "
            f"raise limits.{resource} or lower reservations.{resource}"
        )
    }
