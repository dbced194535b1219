"""Time to load and translate a generated stack of 1,000 services, against `docker stack config`.

Usage: python scripts/bench_compose.py [--services N] [--rounds R]

Prints figures; it is not a test. Each service uses a typical mix of keys (environment, ports,
volumes, secrets, healthcheck, placement, resources, update policy), so the YAML parse, the
validation and the translation to pulumi_docker arguments are all exercised. Times are wall
clock, best and median of the rounds. `docker stack config -c FILE` (the Docker CLI: it reads,
validates and prints the same file, and needs no daemon) runs on the same file in the same run,
as a whole command, as an operator would run it; its time on a stack of one service is printed
too (the CLI's own start).

Goals (issue 25): loading and translating under 0.5 s, and at least twice as fast as `docker
stack config`. The last line gives the verdict.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm.compose import (  # noqa: E402
    parse_stack,
    read_stack_file,
    read_yaml,
    service_args,
)

GOAL_SECONDS = 0.5
GOAL_RATIO = 2.0


def generate(services: int) -> str:
    lines = [
        'version: "3.8"',
        "networks:",
        "  main_network:",
        "    external: true",
        "secrets:",
        "  db_password:",
        "    external: true",
        "volumes:",
        "  cache: {}",
        "services:",
    ]
    for index in range(services):
        lines += f"""  service-{index}:
    image: registry.example.com/models/model-{index}:1.{index % 10}.0
    command: ["python", "-m", "server", "--port", "8000"]
    environment:
      - MODEL_NAME=model-{index}
      - WORKERS=2
      - LOG_LEVEL=info
    ports:
      - "{20000 + index}:8000"
    volumes:
      - cache:/cache:ro
      - /etc/localtime:/etc/localtime:ro
    secrets:
      - db_password
    networks:
      - main_network
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8000/health"]
      interval: 30s
      timeout: 5s
      retries: 3
    stop_grace_period: 1m
    deploy:
      replicas: {1 + index % 3}
      placement:
        constraints:
          - node.role == worker
          - node.labels.type == machine-learning
      resources:
        limits:
          cpus: '0.8'
          memory: 2G
        reservations:
          cpus: '0.25'
          memory: 512M
      restart_policy:
        condition: on-failure
        delay: 5s
      update_config:
        parallelism: 1
        delay: 10s
        failure_action: rollback
""".splitlines()
    return "\n".join(lines) + "\n"


def docker_stack_config(path: Path, rounds: int) -> list[float] | None:
    """Wall seconds of `docker stack config -c path` in each round; None without a docker CLI."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run([docker, "stack", "config", "-c", str(path)], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"docker stack config failed on {path}: {done.stderr.strip()}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    text = generate(options.services)
    phases: dict[str, list[float]] = {
        "YAML parse (read_stack_file)": [],
        "validation (parse_stack)": [],
        "translation (service_args)": [],
    }
    without_positions = []  # the parse alone, to show what keeping the positions costs
    with tempfile.TemporaryDirectory() as directory:
        stack_file = Path(directory) / "bench.yml"
        stack_file.write_text(text)
        one_service = Path(directory) / "one.yml"
        one_service.write_text(generate(1))
        for _ in range(options.rounds):
            start = time.perf_counter()
            read_yaml(text)
            without_positions.append(time.perf_counter() - start)
            start = time.perf_counter()
            document = read_stack_file(stack_file)
            parsed = time.perf_counter()
            spec = parse_stack(
                document.value,
                source="bench.yml",
                base_dir=Path("."),
                stack="bench",
                external_secret_names={"db_password"},
                positions=document.positions,
            )
            validated = time.perf_counter()
            for service in spec.services.values():
                service_args(
                    service,
                    stack="bench",
                    network_ids={"main_network": "network-id"},
                    secret_ids={"db_password": ("secret-id", "bench_db_password_00000000")},
                    config_ids={},
                )
            translated = time.perf_counter()
            for phase, seconds in zip(
                phases.values(), (parsed - start, validated - parsed, translated - validated), strict=True
            ):
                phase.append(seconds)
        docker = docker_stack_config(stack_file, options.rounds)
        docker_start = docker_stack_config(one_service, options.rounds)

    print(f"stack: {options.services} services, {len(text) / 1024:.0f} KiB of YAML, {options.rounds} rounds")
    totals = [sum(seconds) for seconds in zip(*phases.values(), strict=True)]
    rows = [*phases.items(), ("total", totals), ("(YAML parse without positions)", without_positions)]
    if docker is not None and docker_start is not None:
        rows += [("docker stack config -c FILE", docker), ("(the same, a stack of 1 service)", docker_start)]
    for name, seconds in rows:
        print(f"{name:34} best {min(seconds) * 1000:5.0f} ms   median {statistics.median(seconds) * 1000:5.0f} ms")

    ours = min(totals)
    if docker is None:
        print(f"\ncompose: {options.services} services loaded and translated in {ours * 1000:.0f} ms "
              f"(goal < {GOAL_SECONDS * 1000:.0f}); no docker CLI to compare with: FAIL")
        return
    ratio = min(docker) / ours
    verdict = "PASS" if ours < GOAL_SECONDS and ratio >= GOAL_RATIO else "FAIL"
    print(f"\ncompose: {options.services} services loaded and translated in {ours * 1000:.0f} ms "
          f"(goal < {GOAL_SECONDS * 1000:.0f}), docker stack config {min(docker) * 1000:.0f} ms, "
          f"{ratio:.1f} x faster (goal >= {GOAL_RATIO:g}): {verdict}")


if __name__ == "__main__":
    main()
