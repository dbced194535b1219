"""The deploy section: mistakes Docker only finds at deploy time are found at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.compose.stackfiles import (
    problems,
)


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
