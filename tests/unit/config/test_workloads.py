"""The values a release and the nodes take (swarm/config/workloads.py): external secrets, the
registry and its password, image overrides, bind-mount owners and modes, the convergence
timeout."""

from __future__ import annotations

import pytest

from tests.unit.config.stack_configs import parse, problems, prod


def test_external_secret_names_are_known_without_their_values():
    config = parse(prod(secrets={"db_password": "s3cret", "db_user": "app"}))
    assert config.secret_names == {"db_password", "db_user"}
    assert "s3cret" not in repr(config)
    assert "--secret" in problems(prod(secrets={"db_password": 42}))["swarm:secrets.db_password"]


def test_a_registry_with_an_account_needs_its_password_as_a_secret():
    config = parse(prod(registry={"server": "Registry.Example.com", "username": "deploy"}, registryPassword="pw"))
    assert (config.registry.server, config.registry.username, config.registry.digitalocean) == (
        "registry.example.com", "deploy", None)
    assert "pw" not in repr(config)
    found = problems(prod(registry={"server": "https://registry.example.com/v2", "user": "deploy"}))
    assert set(found) == {"swarm:registry.user", "swarm:registry.server", "swarm:registry.username", "swarm:registryPassword"}
    assert "no https://" in found["swarm:registry.server"]
    assert "--secret swarm:registryPassword" in found["swarm:registryPassword"]
    assert "swarm:registry is not" in problems(prod(registryPassword="pw"))["swarm:registryPassword"]


def test_a_digitalocean_registry_needs_only_its_name():
    config = parse(prod(registry={"digitalocean": "acme"}))
    assert (config.registry.server, config.registry.digitalocean) == ("registry.digitalocean.com", "acme")
    found = problems(prod(registry={"digitalocean": "Acme Corp", "username": "x"}, registryPassword="pw"))
    assert set(found) == {"swarm:registry", "swarm:registry.digitalocean", "swarm:registryPassword"}


def test_image_overrides_are_image_references_per_service():
    config = parse(prod(images={"api": "registry.example.com/nlp/api:2.0.2"}))
    assert config.images == {"api": "registry.example.com/nlp/api:2.0.2"}
    found = problems(prod(images={"api": "registry.example.com/nlp/api:2.0.2 ", "db": 13, "bad name": "x"}))
    assert set(found) == {"swarm:images.api", "swarm:images.db", "swarm:images.bad name"}
    assert "must be a mapping" in problems(prod(images="api=x:1"))["swarm:images"]


def test_bind_mount_owner_and_mode_are_validated_strings():
    config = parse(prod(bindMounts={"/mnt/postgresql/data": {"owner": "999:999", "mode": "0700"}, "/srv/x": {}}))
    assert config.bind_mounts["/mnt/postgresql/data"] == ("/mnt/postgresql/data", "999:999", "0700")
    assert config.bind_mounts["/srv/x"] == ("/srv/x", None, None)
    found = problems(prod(bindMounts={"relative/dir": {}, "/a/../etc": {}, "/srv/y": {"owner": "a b", "mode": 448, "uid": 1}}))
    assert set(found) == {"swarm:bindMounts.relative/dir", "swarm:bindMounts./a/../etc", "swarm:bindMounts./srv/y.owner",
                          "swarm:bindMounts./srv/y.mode", "swarm:bindMounts./srv/y.uid"}
    assert "quote it" in found["swarm:bindMounts./srv/y.mode"]


@pytest.mark.parametrize("value, seconds", [(None, 600), ("90s", 90), ("1m30s", 90), ("1.5s", 2), ("1h", 3600)])
def test_convergence_timeout_is_a_duration(value, seconds):
    values = prod() if value is None else prod(convergeTimeout=value)
    assert parse(values).converge_timeout_seconds == seconds


@pytest.mark.parametrize("value", ["10", "0s", "-1m", 600, "ten minutes"])
def test_convergence_timeout_must_be_a_positive_duration(value):
    assert "'10m'" in problems(prod(convergeTimeout=value))["swarm:convergeTimeout"]
