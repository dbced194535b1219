"""Security properties of what the program registers (docs/security.md), under Pulumi mocks:
pinned host keys, no secret outside a secret, keyed secret names, SSH closed to the internet."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from swarm.config import load_stack_config_file
from tests.pulumi_program import (
    MANAGER_ADDRESS,
    PROJECT_ROOT,
    TEST_SECRET_PREFIX,
    ProgramRun,
    fake_addresses,
    fake_key_pair,
    fake_random_bytes,
    is_secret,
    run_program,
    stack_config,
    unwrap,
)

COMMAND = "command:remote:Command"
DROPLET = "digitalocean:index/droplet:Droplet"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
SECRET = "docker:index/secret:Secret"
JOIN_TOKENS = ("SWMTKN-1-worker-fake", "SWMTKN-1-manager-fake")  # what FakeCloud's join-tokens command prints
OPERATOR_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\noperator-secret-key-body\n-----END OPENSSH PRIVATE KEY-----\n"


def host_public_key(stack: str, node: str) -> str:
    """The host key FakeCloud's tls.PrivateKey gives node `node` (`<stack>-<pool>-<n>`)."""
    return fake_key_pair(f"{node}-host-key")[1].strip()


def nodes_by_address(stack: str) -> dict[str, str]:
    """Public address -> node, the manager's reserved IP included."""
    config = load_stack_config_file(PROJECT_ROOT, stack)
    return {MANAGER_ADDRESS: config.first_manager.name, **{fake_addresses(node.name)[0]: node.name for node in config.nodes}}


# ---- host keys --------------------------------------------------------------------------------


def test_every_remote_command_pins_the_host_key_of_the_node_it_connects_to(prod):
    nodes = nodes_by_address("prod")
    commands = prod.of_type(COMMAND)
    assert len(commands) >= 18
    for command in commands:
        connection = command.plain("connection")
        node = nodes[connection["host"]]
        assert connection.get("hostKey") == host_public_key("prod", node), command.name


def test_each_node_gets_its_own_host_key_installed_by_its_user_data(prod):
    keys = {r.name: r for r in prod.of_type(PRIVATE_KEY) if r.name.endswith("-host-key")}
    droplets = prod.of_type(DROPLET)
    assert sorted(keys) == sorted(f"{d.plain('name')}-host-key" for d in droplets)
    assert all(key.plain("algorithm") == "ED25519" for key in keys.values())
    public_keys = set()
    for droplet in droplets:
        private, public = fake_key_pair(f"{droplet.plain('name')}-host-key")
        assert is_secret(droplet.inputs["userData"])  # it carries the private key
        user_data = yaml.safe_load(droplet.plain("userData"))
        assert user_data["ssh_keys"] == {"ed25519_private": private, "ed25519_public": public.strip()}
        public_keys.add(public)
    assert len(public_keys) == len(droplets)


def test_the_docker_provider_checks_the_managers_host_key_strictly(prod):
    (provider,) = prod.of_type("pulumi:providers:docker")
    options = unwrap(provider.inputs["sshOpts"])
    options = json.loads(options) if isinstance(options, str) else options
    assert "StrictHostKeyChecking=yes" in options
    assert "StrictHostKeyChecking=no" not in options and "UserKnownHostsFile=/dev/null" not in options
    (known_hosts,) = [o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile=")]
    with open(known_hosts) as lines:
        text = lines.read()
    # the provider dials the manager's reserved IP and trusts that key alone: no worker's key, so
    # a worker added or replaced leaves the provider's inputs as they were (test_fleet_changes.py)
    assert text == f"{MANAGER_ADDRESS} {host_public_key('prod', 'prod-manager-1')}\n"
    # preview runs where SSH is closed (a pull request's): the provider must not dial at configure
    assert unwrap(provider.inputs["disableDockerDaemonCheck"]) in (True, "true")


def test_a_second_up_replaces_no_droplet(prod):
    # user_data replaces a droplet; it depends on the node and its key (kept in state) only
    again = run_program("prod", stack_config("prod"))
    assert again.error is None, again.error
    first = {d.plain("name"): d.plain("userData") for d in prod.of_type(DROPLET)}
    assert {d.plain("name"): d.plain("userData") for d in again.of_type(DROPLET)} == first


# ---- secrets stay secret ----------------------------------------------------------------------


def secret_values(run: ProgramRun, config: dict[str, Any]) -> set[str]:
    """Every value that must only ever travel as a Pulumi secret in this run."""
    values = set(JOIN_TOKENS)
    values |= {value for value in config.get("secrets", {}).values()}
    values |= {config[key] for key in ("registryPassword", "sshPrivateKey") if key in config}
    if isinstance(config.get("alerts"), dict) and "webhookUrl" in config["alerts"]:
        values.add(config["alerts"]["webhookUrl"])
    values |= {fake_key_pair(r.name)[0] for r in run.of_type(PRIVATE_KEY)}
    for key in run.of_type("random:index/randomBytes:RandomBytes"):
        raw = fake_random_bytes(key.name, int(key.plain("length")))
        values |= {raw.hex(), base64.b64encode(raw).decode()}
    return values


def needles(value: str) -> set[str]:
    """How a secret could show up: itself, base64-encoded (Docker secret data), or any long line of
    it (a private key's body inside a bigger document)."""
    found = {value, base64.b64encode(value.encode()).decode()}
    return found | {line for line in value.splitlines() if len(line) >= 20 and not line.startswith("-----")}


def plain_leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string not inside a secret wrapper."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from plain_leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from plain_leaves(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def leaks(run: ProgramRun, config: dict[str, Any]) -> list[str]:
    hidden = {needle for value in secret_values(run, config) for needle in needles(value)}
    found = [
        f"{registration.name}{path}"
        for registration in run.registrations
        for path, text in plain_leaves(registration.inputs)
        if any(needle in text for needle in hidden)
    ]
    for name, value in run.exports.items():
        if name not in run.secret_exports:
            text = json.dumps(value)
            found += [f"export {name}" for needle in hidden if needle in text]
    return found


def with_every_secret() -> dict[str, Any]:
    config = stack_config("prod")
    config["registry"] = {"server": "registry.example.com", "username": "deploy"}
    config["registryPassword"] = "registry-password-value"
    config["sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyOperatorKeyOperatorKey ops@example"
    config["sshPrivateKey"] = OPERATOR_KEY
    config["alerts"] = {**config["alerts"], "webhookUrl": "https://hooks.slack.com/services/T000/B000/leak-check-token"}
    return config


def test_no_secret_value_appears_in_a_non_secret_input_or_output(prod):
    assert leaks(prod, stack_config("prod")) == []


def test_no_secret_leaks_with_registry_credentials_and_an_operator_key():
    config = with_every_secret()
    run = run_program("prod", config)
    assert run.error is None, run.error
    assert leaks(run, config) == []


def test_the_leak_check_finds_a_secret_in_a_plain_input():
    # The walk must be able to fail: a secret value copied into a plain input is reported.
    config = stack_config("prod")
    run = run_program("prod", config)
    victim = run.of_type(DROPLET)[0]
    victim.inputs["name"] = "x" + config["secrets"][next(iter(config["secrets"]))]
    assert leaks(run, config) == [f"{victim.name}.name"]


# ---- secret names -----------------------------------------------------------------------------


def test_secret_names_carry_a_keyed_hash_not_a_plain_hash_of_the_value(prod):
    (name_key,) = prod.of_type("random:index/randomBytes:RandomBytes")
    assert name_key.plain("length") == 32
    assert "hex" in name_key.options["additionalSecretOutputs"]
    values = stack_config("prod")["secrets"]
    secrets = prod.of_type(SECRET)
    assert secrets
    for secret in secrets:
        assert not is_secret(secret.inputs["name"])  # shown in previews: safe, it is keyed
        assert is_secret(secret.inputs["data"])
        value = base64.b64decode(secret.plain("data"))
        assert hashlib.sha256(value).hexdigest()[:8] not in secret.plain("name")
    assert any(value.startswith(TEST_SECRET_PREFIX) for value in values.values())


def test_a_rotated_secret_gets_a_new_name_and_an_unchanged_one_keeps_its_name(prod):
    config = stack_config("prod")
    rotated_key = sorted(config["secrets"])[0]
    config["secrets"] = {**config["secrets"], rotated_key: "a-new-value"}
    rotated = run_program("prod", config)
    assert rotated.error is None, rotated.error
    before = {s.name: s.plain("name") for s in prod.of_type(SECRET)}
    after = {s.name: s.plain("name") for s in rotated.of_type(SECRET)}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"prod-secret-{rotated_key}"}
    # The same logical resource with a new name: Pulumi replaces it, create-before-delete (the
    # default; nothing asks for delete-before-replace), so services move to the new one first.
    assert not rotated.named(f"prod-secret-{rotated_key}").options["deleteBeforeReplace"]


# ---- SSH exposure -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_shipped_configs_keep_ssh_closed_to_the_internet(stack, prod, staging):
    run = {"prod": prod, "staging": staging}[stack]
    (firewall,) = run.of_type("digitalocean:index/firewall:Firewall")
    for rule in firewall.plain("inboundRules"):
        if rule.get("portRange") == "22" or rule.get("portRange", "").startswith("1-"):
            assert not set(rule.get("sourceAddresses", [])) & {"0.0.0.0/0", "::/0"}, rule


def test_ssh_open_to_the_whole_internet_is_warned_about():
    from swarm.config import parse_config

    values = {"region": "fra1", "adminCidrs": ["0.0.0.0/0"], "stackFile": "stacks/prod.yaml",
              "nodePools": {"manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"}}}
    config = parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="test")
    assert any("swarm:adminCidrs[0]" in warning and "whole internet" in warning for warning in map(str, config.warnings))
