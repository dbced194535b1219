"""The stack and configuration shared by the release tests (values/test_registry.py, plan/test_rollout.py,
test_workloads.py): real images from a private registry, bind mounts on every kind of placement,
a shorter convergence timeout. The program runs on them once per session (conftest.py)."""

from __future__ import annotations

from tests.pulumi_program import stack_config

SERVICE = "docker:index/service:Service"
COMMAND = "command:remote:Command"
PASSWORD = "pw-7f3a-registry"

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


def services(run):
    """The run's services, by their name in the stack file."""
    return {r.name.removeprefix("prod-"): r for r in run.of_type(SERVICE)}


def commands(run, suffix):
    return {r.name: r for r in run.of_type(COMMAND) if r.name.endswith(suffix)}
