"""Time to load and translate a generated stack of 1,000 services (target: well under a second).

Usage: python scripts/bench_compose.py [--services N] [--rounds R]

Prints figures; it is not a test. Each service uses a typical mix of keys (environment, ports,
volumes, secrets, healthcheck, placement, resources, update policy), so the YAML parse, the
validation and the translation to pulumi_docker arguments are all exercised.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swarm.compose import (  # noqa: E402
    parse_stack,
    read_yaml,
    read_yaml_document,
    service_args,
)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    text = generate(options.services)
    phases: dict[str, list[float]] = {
        "YAML parse (read_yaml_document)": [],
        "validation (parse_stack)": [],
        "translation (service_args)": [],
    }
    without_positions = []  # the parse alone, to show what recording the positions costs
    for _ in range(options.rounds):
        start = time.perf_counter()
        read_yaml(text)
        without_positions.append(time.perf_counter() - start)
        start = time.perf_counter()
        document = read_yaml_document(text)
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

    print(f"stack: {options.services} services, {len(text) / 1024:.0f} KiB of YAML, {options.rounds} rounds")
    totals = [sum(seconds) for seconds in zip(*phases.values(), strict=True)]
    rows = [*phases.items(), ("total", totals), ("(YAML parse without positions)", without_positions)]
    for name, seconds in rows:
        print(f"{name:32} best {min(seconds) * 1000:4.0f} ms   median {statistics.median(seconds) * 1000:4.0f} ms")


if __name__ == "__main__":
    main()
