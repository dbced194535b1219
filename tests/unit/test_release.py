"""Deploying real images, under mocks: registry credentials, bind-mount folders on the nodes,
the convergence check and image overrides from CI (issue 7)."""

from __future__ import annotations

import json
import re

import pytest

from swarm import scripts
from swarm.registry import (
    CREDENTIALS_LABEL,
    credentials_from_docker_config,
    image_registry,
    provider_auth_addresses,
    pulls_from,
)
from tests.pulumi_program import (
    FAKE_REGISTRY_TOKEN,
    MANAGER_ADDRESS,
    fake_addresses,
    fake_droplet_id,
    is_secret,
    run_program,
    stack_config,
    unwrap,
)

SERVICE = "docker:index/service:Service"
PROVIDER = "pulumi:providers:docker"
COMMAND = "command:remote:Command"
DOCR_CREDENTIALS = "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"
PASSWORD = "pw-7f3a-registry"
MANAGER_PUBLIC = MANAGER_ADDRESS

# Bind mounts on every kind of placement of the prod layout (manager: type=database,
# backoffice: type=cheap, ml: 3 x type=machine-learning).
STACK = """\
version: "3.8"
services:
  database:
    image: postgres:13
    volumes: [/mnt/postgresql/data:/var/lib/postgresql/data]
    deploy:
      placement: {constraints: [node.role == manager, node.labels.type == database]}
  api:
    image: registry.example.com/nlp/api:1.0.0
    volumes: ["/srv/models:/models:ro", "/srv/cache:/cache"]
    deploy:
      replicas: 3
      placement: {constraints: [node.labels.type == machine-learning]}
  backoffice:
    image: registry.example.com:5000/nlp/backoffice:1.0.0
    deploy:
      placement: {constraints: [node.labels.type == cheap]}
  agent:
    image: docker.io/library/busybox:1.36
    volumes: [/var/log/agent:/logs]
    deploy:
      mode: global
      placement: {constraints: [node.role == worker]}
"""


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "release.yaml"
    path.write_text(STACK)
    return path


def config_for(stack_file, **changes):
    config = stack_config("prod")
    config["stackFile"] = str(stack_file)
    config.update(changes)
    return config


# A password-protected registry, a declared folder owner and a shorter convergence timeout.
PRIVATE = {
    "registry": {"server": "registry.example.com", "username": "deploy"},
    "registryPassword": PASSWORD,
    "bindMounts": {"/mnt/postgresql/data": {"owner": "999:999", "mode": "0700"}},
    "convergeTimeout": "4m",
}


@pytest.fixture(scope="module")
def private(stack_file):
    run = run_program("prod", config_for(stack_file, **PRIVATE))
    assert run.error is None, run.error
    return run


def services(run):
    return {r.name.removeprefix("prod-"): r for r in run.of_type(SERVICE)}


def commands(run, suffix):
    return {r.name: r for r in run.of_type(COMMAND) if r.name.endswith(suffix)}


# ---- registry ---------------------------------------------------------------------------------


def provider(run):
    (registration,) = run.of_type(PROVIDER)
    return registration


def registry_auth(run):
    """The provider's `registryAuth`: provider inputs reach the engine JSON-encoded."""
    value = provider(run).plain("registryAuth")
    return json.loads(value) if isinstance(value, str) else value


def credentials_labels(run) -> dict[str, str]:
    return {key: label["value"] for key, service in services(run).items()
            for label in service.plain("labels") if label["label"] == CREDENTIALS_LABEL}


def test_the_provider_holds_the_registry_credentials_and_sends_them_with_its_services_only(private):
    # The provider looks credentials up by the text before an image's first '/'.
    assert registry_auth(private) == [
        {"address": "registry.example.com", "username": "deploy", "password": PASSWORD},
    ]
    assert not any(service.inputs.get("auth") for service in private.of_type(SERVICE))  # ForceNew there
    assert credentials_labels(private).keys() == {"api"}  # registry.example.com:5000 is another registry


def test_registry_credentials_are_secret_and_nowhere_else(private):
    assert is_secret(provider(private).inputs["registryAuth"])
    for registration in private.registrations:
        inputs = {key: value for key, value in registration.inputs.items() if key != "registryAuth"}
        assert PASSWORD not in repr(unwrap(inputs)), registration.name
    assert PASSWORD not in repr(private.exports)


def test_rotated_registry_credentials_update_the_services_that_use_them_in_place(stack_file, private):
    rotated = run_program("prod", config_for(stack_file, **{**PRIVATE, "registryPassword": "pw-rotated"}))
    assert rotated.error is None, rotated.error
    before, after = services(private), services(rotated)
    assert credentials_labels(rotated)["api"] != credentials_labels(private)["api"]
    changed = {key for key in before["api"].inputs if unwrap(before["api"].inputs[key]) != unwrap(after["api"].inputs[key])}
    assert changed == {"labels"}  # an in-place update (tests/lifecycle/rules.py): no replacement
    assert all(unwrap(before[k].inputs) == unwrap(after[k].inputs) for k in before if k != "api")


def test_a_digitalocean_registry_gets_read_only_credentials_obtained_by_the_program(stack_file):
    stack = STACK.replace("registry.example.com/nlp/api", "registry.digitalocean.com/acme/api")
    path = stack_file.with_name("docr.yaml")
    path.write_text(stack)
    run = run_program("prod", config_for(path, registry={"digitalocean": "acme"}))
    assert run.error is None, run.error
    (credentials,) = run.of_type(DOCR_CREDENTIALS)
    assert credentials.plain("registryName") == "acme" and credentials.plain("write") is False
    assert registry_auth(run) == [
        {"address": "registry.digitalocean.com", "username": FAKE_REGISTRY_TOKEN, "password": FAKE_REGISTRY_TOKEN},
    ]
    assert credentials_labels(run).keys() == {"api"}
    assert FAKE_REGISTRY_TOKEN not in repr(run.exports)


def test_without_a_registry_no_service_gets_credentials(stack_file):
    run = run_program("prod", config_for(stack_file))
    assert run.error is None, run.error
    assert registry_auth(run) is None
    assert not credentials_labels(run)
    assert not run.of_type(DOCR_CREDENTIALS)


@pytest.mark.parametrize(("images", "server", "addresses"), [
    (["registry.example.com/nlp/api:1", "registry.example.com:5000/x"], "registry.example.com", ["registry.example.com"]),
    # Docker Hub images written short are looked up by their namespace; an image without a '/'
    # cannot get credentials from the provider at all.
    (["acme/api:1", "docker.io/acme/worker", "postgres:13"], "docker.io", ["acme", "docker.io"]),
])
def test_the_provider_finds_credentials_for_every_image_on_the_registry(images, server, addresses):
    assert provider_auth_addresses(images, server) == addresses


@pytest.mark.parametrize("image, registry", [
    ("postgres:13", "docker.io"),
    ("library/postgres", "docker.io"),
    ("docker.io/library/busybox:1.36", "docker.io"),
    ("index.docker.io/library/busybox", "docker.io"),
    ("nlp/api:1.0.0", "docker.io"),  # no '.' or ':': a Docker Hub namespace, not a host
    ("registry.example.com/nlp/api:1.0.0", "registry.example.com"),
    ("Registry.Example.com/nlp/api", "registry.example.com"),
    ("registry.example.com:5000/nlp/api", "registry.example.com:5000"),
    ("localhost/api", "localhost"),
    ("registry.example.com/api@sha256:" + "a" * 64, "registry.example.com"),
])
def test_an_image_registry_is_derived_as_docker_does(image, registry):
    assert image_registry(image) == registry


def test_a_registry_port_is_part_of_its_identity():
    assert pulls_from("registry.example.com/nlp/api:1", "registry.example.com")
    assert not pulls_from("registry.example.com:5000/nlp/api:1", "registry.example.com")
    assert pulls_from("busybox", "index.docker.io")


def test_docker_config_credentials_are_read_without_leaking_them():
    assert credentials_from_docker_config('{"auths": {"r.io": {"auth": "dTpwOng="}}}', "r.io") == ("u", "p:x")
    with pytest.raises(ValueError) as raised:
        credentials_from_docker_config('{"auths": {"r.io": {"auth": "dTpwOng="}}}', "other.io")
    assert "dTpwOng=" not in str(raised.value)


# ---- bind-mount folders ---------------------------------------------------------------------


def folder_paths(command) -> list[str]:
    return re.findall(r"^\[ -e (\S+) \]", command.plain("create"), flags=re.MULTILINE)


def test_folders_are_prepared_on_exactly_the_nodes_where_their_service_may_run(private):
    folders = commands(private, "-folders")
    assert {name: folder_paths(command) for name, command in folders.items()} == {
        "prod-manager-1-folders": ["/mnt/postgresql/data"],
        "prod-backoffice-1-folders": ["/var/log/agent"],  # the global agent runs on every worker
        **{f"prod-ml-{i}-folders": ["/srv/cache", "/srv/models", "/var/log/agent"] for i in (1, 2, 3)},
    }
    for name, command in folders.items():
        node = name.removesuffix("-folders")
        assert command.plain("connection")["host"] == fake_addresses(node)[0]  # on the node itself
        assert command.plain("create") == scripts.prepare_folders_script(
            [scripts.Folder(p, *(("999:999", "0700") if p == "/mnt/postgresql/data" else ())) for p in folder_paths(command)]
        )


def test_a_folder_is_prepared_after_its_node_has_joined_and_again_on_a_new_droplet(private):
    for name, command in commands(private, "-folders").items():
        node = name.removesuffix("-folders")
        assert private.depends_on(command, private.named(f"{node}-settings"))
        assert command.plain("triggers") == [fake_droplet_id(node)]  # the droplet's id
        assert command.plain("delete") is None  # folders hold data: never removed


def test_each_service_waits_for_the_folders_of_the_nodes_it_may_run_on(private):
    folders = commands(private, "-folders")
    waits = {
        key: sorted(name for name, command in folders.items() if private.depends_on(service, command))
        for key, service in services(private).items()
    }
    assert waits == {
        "database": ["prod-manager-1-folders"],
        "api": ["prod-ml-1-folders", "prod-ml-2-folders", "prod-ml-3-folders"],
        "backoffice": [],
        "agent": ["prod-backoffice-1-folders", "prod-ml-1-folders", "prod-ml-2-folders", "prod-ml-3-folders"],
    }


def test_a_declared_folder_no_service_mounts_stops_the_deployment(stack_file):
    run = run_program("prod", config_for(stack_file, bindMounts={"/mnt/postgres/data": {"mode": "0700"}}))
    assert "swarm:bindMounts./mnt/postgres/data" in str(run.error)
    assert run.registrations == []


# ---- convergence ------------------------------------------------------------------------------


def test_the_manager_waits_for_every_service_after_all_of_them_are_created(private):
    converge = private.named("prod-converge")
    assert converge.plain("connection")["host"] == MANAGER_PUBLIC
    for service in private.of_type(SERVICE):
        assert private.depends_on(converge, service)
    script = converge.plain("create")
    targets = scripts.converge_script(
        [
            scripts.ConvergeTarget("prod_database", 1),
            scripts.ConvergeTarget("prod_api", 3),
            scripts.ConvergeTarget("prod_backoffice", 1),
            # global: one task on every worker
            scripts.ConvergeTarget("prod_agent", 4, ("prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3")),
        ],
        240,
        digest=re.search(r"^# services: (\w+)$", script, re.MULTILINE)[1],
    )
    assert script == targets
    assert "timeout=240" in script  # swarm:convergeTimeout 4m
    assert converge.options["customTimeouts"].create == converge.options["customTimeouts"].update == "360s"
    assert converge.plain("triggers") is None  # an update re-runs it; nothing replaces it


def test_the_default_convergence_timeout_is_ten_minutes(stack_file):
    run = run_program("prod", config_for(stack_file))
    assert "timeout=600" in run.named("prod-converge").plain("create")


def test_the_convergence_check_runs_again_exactly_when_a_service_changes(stack_file, private):
    config = config_for(stack_file, **PRIVATE)
    again = run_program("prod", config)
    assert again.named("prod-converge").plain("create") == private.named("prod-converge").plain("create")
    # New credentials update the services that pull with them (their label): checked again too.
    rotated = run_program("prod", {**config, "registryPassword": "rotated"})
    assert rotated.named("prod-converge").plain("create") != private.named("prod-converge").plain("create")
    released = run_program("prod", {**config, "images": {"backoffice": "registry.example.com:5000/nlp/backoffice:1.0.1"}})
    assert released.named("prod-converge").plain("create") != private.named("prod-converge").plain("create")


def test_the_convergence_check_runs_again_when_a_node_changes(stack_file, private):
    config = config_for(stack_file, **PRIVATE)
    before = private.named("prod-converge").plain("create")

    def with_ml(**changes):
        return {**config, "nodePools": {**config["nodePools"], "ml": {**config["nodePools"]["ml"], **changes}}}

    for changed in (with_ml(size="m-8vcpu-64gb"), with_ml(labels={"type": "machine-learning", "zone": "a"}),
                    with_ml(count=2)):
        run = run_program("prod", changed)
        assert run.error is None, run.error
        assert run.named("prod-converge").plain("create") != before


# ---- releases: image overrides ------------------------------------------------------------------


def test_an_image_override_changes_only_that_service(prod):
    before = prod  # the checked-in prod stack, run once per session (conftest.py)
    after = run_program("prod", {**stack_config("prod"), "images": {"api": "registry.example.com/nlp/api:2.0.2"}})
    assert after.error is None, after.error
    old = {r.name: unwrap(r.inputs) for r in before.registrations}
    new = {r.name: unwrap(r.inputs) for r in after.registrations}
    assert old.keys() == new.keys()
    assert {name for name in old if old[name] != new[name]} == {"prod-api", "prod-converge"}
    api_old, api_new = old["prod-api"], new["prod-api"]
    assert api_new["taskSpec"]["containerSpec"]["image"] == "registry.example.com/nlp/api:2.0.2"
    # the image and the stack's image label; the update policy (rolling, rollback) is untouched
    api_old["taskSpec"]["containerSpec"]["image"] = api_new["taskSpec"]["containerSpec"]["image"]
    api_old["labels"] = api_new["labels"]
    assert api_old == api_new
    assert after.exports["services"]["api"]["image"] == "registry.example.com/nlp/api:2.0.2"


def test_an_override_for_an_unknown_service_registers_nothing():
    run = run_program("prod", {**stack_config("prod"), "images": {"apii": "registry.example.com/nlp/api:2.0.2"}})
    message = str(run.error)
    assert "swarm:images.apii: prod.yaml has no service 'apii'; its services are backoffice, api, database" in message
    assert run.registrations == []
