"""Pulling private images (swarm/registry.py, components/registry.py): only services whose image
is on the configured registry get its credentials, which stay secret; a DigitalOcean registry's
read-only credentials are obtained by the program."""

from __future__ import annotations

import pytest

from swarm.registry import credentials_from_docker_config, image_registry, pulls_from
from tests.pulumi_program import FAKE_REGISTRY_TOKEN, is_secret, run_program, unwrap
from tests.unit.release_stack import PASSWORD, SERVICE, STACK, config_for, services

DOCR_CREDENTIALS = "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"


def test_only_services_whose_image_is_on_the_registry_pull_with_its_credentials(release):
    deployed = services(release)
    assert {key for key, service in deployed.items() if service.inputs.get("auth")} == {"api"}
    assert unwrap(deployed["api"].inputs["auth"]) == {
        "serverAddress": "registry.example.com", "username": "deploy", "password": PASSWORD,
    }


def test_registry_credentials_are_secret_and_nowhere_else(release):
    assert is_secret(services(release)["api"].inputs["auth"])
    for registration in release.registrations:
        inputs = {key: value for key, value in registration.inputs.items() if key != "auth"}
        assert PASSWORD not in repr(unwrap(inputs)), registration.name
    assert PASSWORD not in repr(release.exports)


def test_a_digitalocean_registry_gets_read_only_credentials_obtained_by_the_program(release_stack_file):
    stack = STACK.replace("registry.example.com/nlp/api", "registry.digitalocean.com/acme/api")
    path = release_stack_file.with_name("docr.yaml")
    path.write_text(stack)
    run = run_program("prod", config_for(path, registry={"digitalocean": "acme"}))
    assert run.error is None, run.error
    (credentials,) = run.of_type(DOCR_CREDENTIALS)
    assert credentials.plain("registryName") == "acme" and credentials.plain("write") is False
    api = services(run)["api"]
    assert services(run).keys() - {"api"} == {k for k, s in services(run).items() if not s.inputs.get("auth")}
    assert is_secret(api.inputs["auth"])
    assert unwrap(api.inputs["auth"]) == {
        "serverAddress": "registry.digitalocean.com", "username": FAKE_REGISTRY_TOKEN, "password": FAKE_REGISTRY_TOKEN,
    }
    assert FAKE_REGISTRY_TOKEN not in repr(run.exports)


def test_without_a_registry_no_service_gets_credentials(release_stack_file):
    run = run_program("prod", config_for(release_stack_file))
    assert run.error is None, run.error
    assert not any(service.inputs.get("auth") for service in run.of_type(SERVICE))
    assert not run.of_type(DOCR_CREDENTIALS)


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
