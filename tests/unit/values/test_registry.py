"""Pulling private images (swarm/values/registry.py, components/registry.py): only services whose image
is on the configured registry get its credentials, which stay secret; a DigitalOcean registry's
read-only credentials are obtained by the program."""

from __future__ import annotations

import json

import pytest

from swarm.values.registry import (
    CREDENTIALS_LABEL,
    credentials_from_docker_config,
    image_registry,
    provider_auth_addresses,
    pulls_from,
)
from tests.pulumi_program import FAKE_REGISTRY_TOKEN, is_secret, run_program, unwrap
from tests.unit.release_stack import PASSWORD, PRIVATE, SERVICE, STACK, config_for, services

PROVIDER = "pulumi:providers:docker"
DOCR_CREDENTIALS = "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"


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


def test_the_provider_holds_the_registry_credentials_and_sends_them_with_its_services_only(release):
    # The provider looks credentials up by the text before an image's first '/'.
    assert registry_auth(release) == [
        {"address": "registry.example.com", "username": "deploy", "password": PASSWORD},
    ]
    assert not any(service.inputs.get("auth") for service in release.of_type(SERVICE))  # ForceNew there
    assert credentials_labels(release).keys() == {"api"}  # registry.example.com:5000 is another registry


def test_registry_credentials_are_secret_and_nowhere_else(release):
    assert is_secret(provider(release).inputs["registryAuth"])
    for registration in release.registrations:
        inputs = {key: value for key, value in registration.inputs.items() if key != "registryAuth"}
        assert PASSWORD not in repr(unwrap(inputs)), registration.name
    assert PASSWORD not in repr(release.exports)


def test_rotated_registry_credentials_update_the_services_that_use_them_in_place(release_stack_file, release):
    rotated = run_program("prod", config_for(release_stack_file, **{**PRIVATE, "registryPassword": "pw-rotated"}))
    assert rotated.error is None, rotated.error
    before, after = services(release), services(rotated)
    assert credentials_labels(rotated)["api"] != credentials_labels(release)["api"]
    changed = {key for key in before["api"].inputs if unwrap(before["api"].inputs[key]) != unwrap(after["api"].inputs[key])}
    assert changed == {"labels"}  # an in-place update (tests/lifecycle/rules.py): no replacement
    assert all(unwrap(before[k].inputs) == unwrap(after[k].inputs) for k in before if k != "api")


def test_a_digitalocean_registry_gets_read_only_credentials_obtained_by_the_program(release_stack_file):
    stack = STACK.replace("registry.example.com/nlp/api", "registry.digitalocean.com/acme/api")
    path = release_stack_file.with_name("docr.yaml")
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


def test_without_a_registry_no_service_gets_credentials(release_stack_file):
    run = run_program("prod", config_for(release_stack_file))
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


# ---- tags that move --------------------------------------------------------------------------------


def test_latest_or_no_tag_is_a_tag_that_moves_and_a_version_or_digest_is_pinned():
    from swarm.values import moving_tag

    assert "uses the tag latest: pushing a new image under the same tag never redeploys" in moving_tag("api:latest")
    assert "'localhost:5000/api' has no tag (Docker reads it as :latest)" in moving_tag("localhost:5000/api")
    assert "pin a version tag or a digest" in moving_tag("nginx")
    for pinned in ("postgres:13", "localhost:5000/api:1.2", "api@sha256:" + "a" * 64, "api:latest@sha256:" + "b" * 64):
        assert moving_tag(pinned) is None, pinned


def test_a_stack_file_image_without_a_version_is_warned_about_at_its_line(tmp_path):
    from swarm.compose import load_stack_file

    path = tmp_path / "s.yaml"
    path.write_text("services:\n  web:\n    image: nginx\n  api:\n    image: api:1.0\n")
    warnings = [str(w) for w in load_stack_file(path, stack="t").warnings]
    assert warnings == [f"{path}:3:12: services.web.image: 'nginx' has no tag (Docker reads it as :latest): pushing "
                        "a new image under the same tag never redeploys (the service's image text does not change); "
                        "pin a version tag or a digest (name@sha256:...) and change it to release"]
