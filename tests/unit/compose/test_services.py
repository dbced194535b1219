"""Service keys: what swarm ignores is a warning, what Docker refuses is a problem."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compose.stackfiles import (
    load,
    problems,
)


def test_options_swarm_ignores_are_warnings_naming_file_and_path(tmp_path: Path):
    spec = load(
        tmp_path,
        "services:\n  a:\n    image: x:1\n    depends_on: [b]\n    container_name: a1\n    build: .\n    restart: 'no'\n"
        "  b:\n    image: y:1\n    ports: ['127.0.0.1:80:80']\n    volumes: ['/srv:/srv:z']\n",
    )
    file = str(tmp_path / "stack.yml")
    assert {warning.where for warning in spec.warnings} == {
        "services.a.depends_on",
        "services.a.container_name",
        "services.a.build",
        "services.a.restart",
        "services.b.ports[0]",
        "services.b.volumes[0]",
    }
    assert all(str(warning).startswith(f"{file}:{warning.line}:{warning.column}: {warning.where}: ")
               for warning in spec.warnings)
    # An ignored key is pointed at (the key, not its value); an ignored item at the item.
    where = {warning.where: (warning.line, warning.column) for warning in spec.warnings}
    assert (where["services.a.depends_on"], where["services.b.volumes[0]"]) == ((4, 5), (11, 15))
    assert any("does not stop swarm from restarting" in warning for warning in map(str, spec.warnings))


def test_forbidden_keys_are_problems(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, mem_limit: 1g, volumes_from: [b]}\n")
    assert "deploy.resources" in found["services.a.mem_limit"]
    assert "services.a.volumes_from" in found


def test_environment_without_value_is_a_problem(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, environment: [A, B=1], labels: [c]}\n")
    assert list(found) == ["services.a.environment[0]"]
    assert "A=VALUE" in found["services.a.environment[0]"]


def test_docker_composes_gpu_keys_are_refused_with_how_swarm_reserves_a_gpu(tmp_path: Path):
    # `docker stack config` (28.2) refuses both: "Additional property gpus is not allowed".
    found = problems(tmp_path, "services:\n  llm:\n    image: llm:1\n    gpus: 1\n    deploy:\n      resources:\n"
                     "        reservations:\n          devices: [{capabilities: [gpu]}]\n")
    assert set(found) == {"services.llm.gpus", "services.llm.deploy.resources.reservations.devices"}
    for message in found.values():
        assert message.startswith("docker stack deploy refuses it: swarm reserves GPUs as generic resources: ")
        assert "`gpu: true` and a gpu-* size in swarm:nodePools.<pool>" in message
        assert "cpuset" not in message  # what `did you mean` offered before
