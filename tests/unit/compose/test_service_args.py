"""Compose specs translated into pulumi_docker arguments."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import re
import typing
from pathlib import Path

import pulumi_docker
import pulumi_docker._inputs as docker_inputs
import pytest

from swarm.compose import StackSpec, load_stack_file, parse_duration
from swarm.compose.service_args import (
    config_args,
    network_args,
    secret_args,
    service_args,
    start_first_hazards,
    update_order,
    versioned_name,
)

ROOT = Path(__file__).resolve().parents[3]
CORPUS_FILES = sorted(ROOT.glob("stacks/*.yaml")) + sorted((ROOT / "tests" / "compose_corpus").glob("*.yml"))
NAMESPACE = {"label": "com.docker.stack.namespace", "value": "prod"}
KEY = bytes(range(32))  # a stack's naming key (random.RandomBytes in the program)


def stack_from(tmp_path: Path, text: str) -> StackSpec:
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return load_stack_file(path, stack="prod")


def all_args(spec: StackSpec, stack: str = "prod") -> dict[str, dict]:
    return {
        name: service_args(
            service,
            stack=stack,
            network_ids={key: f"id-{key}" for key in spec.networks},
            secret_ids={key: (f"id-{key}", f"name-{key}") for key in spec.secrets},
            config_ids={key: (f"id-{key}", f"name-{key}") for key in spec.configs},
        )
        for name, service in spec.services.items()
    }


def assert_fits(value: object, args_class: type, path: str) -> None:
    """`value` uses only argument names of `args_class` (and of the nested *Args classes)."""
    parameters = inspect.signature(args_class.__init__).parameters
    assert isinstance(value, dict), path
    for key, item in value.items():
        assert key in parameters, f"{path}.{key} is not an argument of {args_class.__name__}"
        nested = re.search(r"'(\w+Args)'", str(parameters[key].annotation))
        if nested:
            nested_class = getattr(docker_inputs, nested.group(1))
            for index, element in enumerate(item if isinstance(item, list) else [item]):
                assert_fits(element, nested_class, f"{path}.{key}[{index}]")


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.name)
def test_arguments_match_pulumi_docker_for_every_corpus_service(path: Path):
    spec = load_stack_file(path, stack="prod")
    for name, args in all_args(spec).items():
        assert_fits(args, pulumi_docker.ServiceArgs, name)
        pulumi_docker.ServiceArgs(**args)
    for network in spec.networks.values():
        assert_fits(network_args(network, stack="prod"), pulumi_docker.NetworkArgs, network.key)
    for secret in spec.secrets.values():
        assert_fits(secret_args(secret, stack="prod", content=b"x", name_key=KEY), pulumi_docker.SecretArgs, secret.key)
    for config in spec.configs.values():
        assert_fits(config_args(config, stack="prod", content=b"x", name_key=KEY), pulumi_docker.ServiceConfigArgs, config.key)


def test_reference_stack_is_deployed_like_docker_stack_deploy():
    spec = load_stack_file(ROOT / "stacks" / "prod.yaml", stack="prod")
    args = all_args(spec)
    api = args["api"]
    assert api["name"] == "prod_api"
    assert api["labels"] == [
        {"label": "com.docker.stack.image", "value": "registry.example.com/nlp/api:1.0.0"},
        NAMESPACE,
    ]
    container = api["task_spec"]["container_spec"]
    assert container["image"] == "registry.example.com/nlp/api:1.0.0"
    assert container["labels"] == [NAMESPACE]
    assert api["task_spec"]["networks_advanceds"] == [{"id": "id-main_network", "aliases": ["api"]}]
    assert api["mode"] == {"replicated": {"replicas": 3}}
    assert api["task_spec"]["placement"] == {"constraints": ["node.role==worker", "node.labels.type==machine-learning"]}
    assert api["task_spec"]["resources"] == {
        "limits": {"nano_cpus": 800_000_000, "memory_bytes": 10 * 2**30},
        "reservation": {"nano_cpus": 500_000_000, "memory_bytes": 5 * 2**30},
    }
    assert api["update_config"] == {
        "parallelism": 1,
        "delay": "10s",
        "failure_action": "rollback",
        "monitor": "30s",
        "order": "start-first",
    }
    assert api["task_spec"]["restart_policy"] == {"condition": "on-failure", "delay": "5s", "window": "1m0s"}

    database = args["database"]
    container = database["task_spec"]["container_spec"]
    assert container["env"] == {
        "POSTGRES_USER_FILE": "/run/secrets/db_user",
        "POSTGRES_PASSWORD_FILE": "/run/secrets/db_password",
        "POSTGRES_DB_FILE": "/run/secrets/db_name",
    }
    assert container["mounts"] == [
        {"type": "bind", "target": "/var/lib/postgresql/data", "source": "/mnt/postgresql/data"}
    ]
    assert container["secrets"][2] == {
        "secret_id": "id-db_password",
        "secret_name": "name-db_password",
        "file_name": "/run/secrets/db_password",
        "file_uid": "0",
        "file_gid": "0",
        "file_mode": 0o444,
    }
    assert container["stop_grace_period"] == "1m0s"
    assert database["update_config"]["order"] == "stop-first"


def test_update_order_is_start_first_only_where_two_tasks_can_share_a_node(tmp_path: Path):
    spec = stack_from(
        tmp_path,
        """
volumes: {data: {}}
services:
  stateless: {image: x}
  read_only_data: {image: x, volumes: ["/srv/static:/static:ro", "data:/cache:ro"]}
  database: {image: postgres:13, volumes: ["/mnt/postgresql/data:/var/lib/postgresql/data"]}
  named_volume: {image: x, volumes: ["data:/data"]}
  host_port: {image: x, ports: [{target: 80, published: 80, mode: host}]}
  one_per_node: {image: x, deploy: {placement: {max_replicas_per_node: 1}}}
  gpu:
    image: x
    deploy: {resources: {reservations: {generic_resources: [{discrete_resource_spec: {kind: GPU, value: 1}}]}}}
  declared: {image: x, volumes: ["data:/data"], deploy: {update_config: {order: start-first}}}
""",
    )
    orders = {name: update_order(service) for name, service in spec.services.items()}
    assert orders == {
        "stateless": "start-first",
        "read_only_data": "start-first",
        "database": "stop-first",
        "named_volume": "stop-first",
        "host_port": "stop-first",
        "one_per_node": "stop-first",
        "gpu": "stop-first",
        "declared": "start-first",  # Compose's declared order wins
    }
    assert start_first_hazards(spec.services["database"]) == ["it writes to the bind mount /mnt/postgresql/data"]
    assert start_first_hazards(spec.services["gpu"]) == ["it reserves generic resources (GPU)"]
    assert all_args(spec)["stateless"]["update_config"] == {"order": "start-first"}


def test_global_mode_ports_health_and_gpu(tmp_path: Path):
    spec = stack_from(
        tmp_path,
        """
services:
  agent:
    image: x
    deploy: {mode: global}
    healthcheck: {disable: true}
  gpu:
    image: x
    ports: ["8080:80", {target: 9000, published: 9000, mode: host, protocol: udp}, "7000"]
    healthcheck: {test: "curl -f http://localhost", interval: 1.5m, retries: 3}
    deploy:
      endpoint_mode: vip
      resources: {reservations: {generic_resources: [{discrete_resource_spec: {kind: GPU, value: 2}}]}}
      rollback_config: {parallelism: 0, max_failure_ratio: 0.1}
""",
    )
    args = all_args(spec)
    assert args["agent"]["mode"] == {"global_": True}
    assert args["agent"]["task_spec"]["container_spec"]["healthcheck"] == {"tests": ["NONE"]}
    gpu = args["gpu"]
    assert gpu["endpoint_spec"] == {
        "mode": "vip",
        "ports": [
            {"target_port": 80, "published_port": 8080, "protocol": "tcp", "publish_mode": "ingress"},
            {"target_port": 9000, "published_port": 9000, "protocol": "udp", "publish_mode": "host"},
            {"target_port": 7000, "protocol": "tcp", "publish_mode": "ingress"},
        ],
    }
    assert gpu["task_spec"]["container_spec"]["healthcheck"] == {
        "tests": ["CMD-SHELL", "curl -f http://localhost"],
        "interval": "1m30s",
        "retries": 3,
    }
    assert gpu["task_spec"]["resources"] == {
        "reservation": {"generic_resources": {"discrete_resources_specs": ["GPU=2"]}}
    }
    assert gpu["rollback_config"] == {"parallelism": 0, "max_failure_ratio": "0.1"}
    # Durations are strings Go's time.ParseDuration (the provider's parser) reads back exactly.
    assert parse_duration(gpu["task_spec"]["container_spec"]["healthcheck"]["interval"]) == 90 * 10**9


def test_mounts_secrets_and_configs(tmp_path: Path):
    (tmp_path / "app.conf").write_text("setting = 1\n")
    spec = stack_from(
        tmp_path,
        """
volumes:
  data: {driver: local, driver_opts: {type: nfs, device: ":/export"}, labels: {backup: daily}}
  certs: {external: true}
secrets:
  token: {external: true}
configs:
  app: {file: ./app.conf}
services:
  app:
    image: x
    command: serve --port 8080
    entrypoint: ["/entrypoint.sh"]
    volumes:
      - data:/data:nocopy
      - certs:/certs:ro
      - /anonymous
      - type: tmpfs
        target: /cache
        tmpfs: {size: 1048576}
      - /srv:/srv:rshared
    tmpfs: /tmp
    secrets:
      - token
      - {source: token, target: tokens/second, uid: "1000", gid: "1000", mode: 0400}
      - {source: token, target: /etc/app/token}
    configs:
      - app
      - {source: app, target: /etc/app/app.conf}
    cap_add: [net_admin, CAP_SYS_TIME, chown]
    cap_drop: [chown, all]
    extra_hosts: ["db:10.0.0.3"]
    dns: 10.0.0.2
    dns_search: example.com
    sysctls: {net.core.somaxconn: 1024}
    logging: {driver: json-file, options: {max-size: 10m}}
""",
    )
    container = all_args(spec)["app"]["task_spec"]["container_spec"]
    assert container["commands"] == ["/entrypoint.sh"]
    assert container["args"] == ["serve", "--port", "8080"]
    assert container["mounts"] == [
        {
            "type": "volume",
            "target": "/data",
            "source": "prod_data",
            "volume_options": {
                "no_copy": True,
                "labels": [{"label": "backup", "value": "daily"}, NAMESPACE],
                "driver_name": "local",
                "driver_options": {"type": "nfs", "device": ":/export"},
            },
        },
        {"type": "volume", "target": "/certs", "read_only": True, "source": "certs"},
        {"type": "volume", "target": "/anonymous"},
        {"type": "tmpfs", "target": "/cache", "tmpfs_options": {"size_bytes": 1048576}},
        {"type": "bind", "target": "/srv", "source": "/srv", "bind_options": {"propagation": "rshared"}},
        {"type": "tmpfs", "target": "/tmp"},
    ]
    assert [secret["file_name"] for secret in container["secrets"]] == [
        "/run/secrets/token",
        "/run/secrets/tokens/second",
        "/etc/app/token",
    ]
    assert container["secrets"][1] | {} == {
        "secret_id": "id-token",
        "secret_name": "name-token",
        "file_name": "/run/secrets/tokens/second",
        "file_uid": "1000",
        "file_gid": "1000",
        "file_mode": 0o400,
    }
    assert [config["file_name"] for config in container["configs"]] == ["/app", "/etc/app/app.conf"]
    assert container["cap_adds"] == ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert container["cap_drops"] == ["ALL"]
    assert container["hosts"] == [{"host": "db", "ip": "10.0.0.3"}]
    assert container["dns_config"] == {"nameservers": ["10.0.0.2"], "searches": ["example.com"]}
    assert container["sysctl"] == {"net.core.somaxconn": "1024"}
    assert all_args(spec)["app"]["task_spec"]["log_driver"] == {"name": "json-file", "options": {"max-size": "10m"}}


def test_networks_are_overlay_attachable_and_owned_ones_carry_the_stack_label(tmp_path: Path):
    spec = stack_from(
        tmp_path,
        """
networks:
  main_network: {external: true}
  back: {internal: true, driver_opts: {encrypted: "true"}, ipam: {config: [{subnet: 10.20.0.0/24}]}}
services:
  a: {image: x, networks: {main_network: {aliases: [web]}, back: null}}
  b: {image: x}
""",
    )
    assert network_args(spec.networks["main_network"], stack="prod") == {
        "name": "main_network",
        "driver": "overlay",
        "attachable": True,
    }
    assert network_args(spec.networks["back"], stack="prod") == {
        "name": "prod_back",
        "driver": "overlay",
        "attachable": True,
        "internal": True,
        "options": {"encrypted": "true"},
        "labels": [NAMESPACE],
        "ipam_configs": [{"subnet": "10.20.0.0/24"}],
    }
    assert network_args(spec.networks["default"], stack="prod")["name"] == "prod_default"
    args = all_args(spec)
    assert args["a"]["task_spec"]["networks_advanceds"] == [
        {"id": "id-back", "aliases": ["a"]},
        {"id": "id-main_network", "aliases": ["web", "a"]},
    ]
    assert args["b"]["task_spec"]["networks_advanceds"] == [{"id": "id-default", "aliases": ["b"]}]


def test_secret_and_config_names_change_with_their_content(tmp_path: Path):
    spec = stack_from(
        tmp_path, "services:\n  a: {image: x, secrets: [db_password]}\nsecrets:\n  db_password: {external: true}\n"
    )
    first = secret_args(spec.secrets["db_password"], stack="prod", content=b"hunter2", name_key=KEY)
    assert first == {
        "name": versioned_name("prod", "db_password", b"hunter2", KEY),
        "data": "aHVudGVyMg==",
        "labels": [NAMESPACE],
    }
    assert base64.b64decode(first["data"]) == b"hunter2"
    assert first["name"].startswith("prod_db_password_")
    assert first == secret_args(spec.secrets["db_password"], stack="prod", content=b"hunter2", name_key=KEY)
    assert secret_args(spec.secrets["db_password"], stack="prod", content=b"hunter3", name_key=KEY)["name"] != first["name"]


def test_secret_names_carry_no_plain_hash_of_the_value():
    # Before: the first 8 hex of sha256(value), which anyone could compute for a guessed value.
    name = versioned_name("prod", "db_password", b"hunter2", KEY)
    assert hashlib.sha256(b"hunter2").hexdigest()[:8] not in name
    suffix = name.rsplit("_", 1)[1]
    assert suffix == hmac.new(KEY, b"hunter2", hashlib.sha256).hexdigest()[:12]
    # Without the stack's key the name cannot be reproduced: another key, another name.
    assert versioned_name("prod", "db_password", b"hunter2", bytes(32)) != name
    with pytest.raises(ValueError):
        versioned_name("prod", "db_password", b"hunter2", b"short")


@pytest.mark.parametrize(("stack", "name"), [("prod", "db_password"), ("a" * 60, "b" * 60), ("staging-eu.1", "x")])
def test_versioned_names_are_valid_swarm_object_names(stack: str, name: str):
    versioned = versioned_name(stack, name, b"value", KEY)
    assert len(versioned) <= 64
    assert re.fullmatch(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?", versioned)
    assert versioned.endswith("_" + hmac.new(KEY, b"value", hashlib.sha256).hexdigest()[:12])
    assert versioned_name(stack, name, b"value", KEY) == versioned


def test_arguments_hold_no_unset_values():
    spec = load_stack_file(ROOT / "stacks" / "staging.yaml", stack="staging")

    def walk(value: typing.Any) -> None:
        if isinstance(value, dict):
            assert None not in value.values() and {} not in value.values() and [] not in value.values()
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(all_args(spec, "staging"))
