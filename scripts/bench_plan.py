"""Time of the whole `python -m swarm plan` command on a stack of 1,000 services and 50 nodes.

Usage: python scripts/bench_plan.py [--services N] [--nodes N] [--rounds R]

Prints figures; it is not a test. The command runs as an operator or a pull request's job runs
it, in a new process, imports included: `python -m swarm plan --stack bench` in a temporary
project (a copy of the `swarm` package, a Pulumi.bench.yaml and a generated stack file, nothing
written to this repository). The cluster is a pool of 3 managers and five labelled worker pools;
the services, constrained to one pool each or to none, publish a port, mount a volume and
reserve CPU and memory, and fit. Each round is timed by the wall clock; the first run, which
compiles the copied package, is not counted. The Python start alone and the imports alone are
printed too.

Goal (issue 25): under 1.5 s for the whole command. The last line gives the verdict.
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

import yaml
from bench_capacity import POOLS, bench_pools  # the same cluster (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 1.5


def stack_file(services: int) -> str:
    lines = ['version: "3.8"', "volumes:", "  cache: {}", "services:"]
    for index in range(services):
        constraints = "" if index % 5 == 0 else f"""
      placement:
        constraints:
          - node.role == worker
          - node.labels.type == pool{index % POOLS}"""
        lines += f"""  service-{index}:
    image: registry.example.com/models/model-{index}:1.{index % 10}.0
    environment:
      - MODEL_NAME=model-{index}
    ports:
      - "{20000 + index}:8000"
    volumes:
      - cache:/cache:ro
    deploy:
      replicas: {1 + index % 3}{constraints}
      resources:
        limits:
          memory: 1G
        reservations:
          cpus: '0.1'
          memory: 256M
""".splitlines()
    return "\n".join(lines) + "\n"


def stack_config(nodes: int) -> dict:
    return {"config": {"swarm:region": "fra1", "swarm:adminCidrs": ["203.0.113.0/24"],
                       "swarm:nodePools": bench_pools(nodes), "swarm:stackFile": "bench.yaml"}}


def wall(command: list[str], cwd: Path, rounds: int) -> tuple[list[float], subprocess.CompletedProcess]:
    times, done = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    assert done is not None
    return times, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        shutil.copytree(ROOT / "swarm", project / "swarm", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "bench.yaml").write_text(stack_file(args.services))
        (project / "Pulumi.bench.yaml").write_text(yaml.safe_dump(stack_config(args.nodes)))
        command = [sys.executable, "-m", "swarm", "plan", "--stack", "bench"]
        wall(command, project, 1)  # compiles the copied package
        plan_times, done = wall(command, project, args.rounds)
        if done.returncode not in (0, 1) or "Traceback" in done.stderr:
            raise SystemExit(f"python -m swarm plan failed:\n{done.stdout}\n{done.stderr}")
        start_times, _ = wall([sys.executable, "-c", "pass"], project, args.rounds)
        import_times, _ = wall([sys.executable, "-c", "import swarm.__main__"], project, args.rounds)

    fits = "fits" if done.returncode == 0 else "does NOT fit (exit 1)"
    print(f"python -m swarm plan: {args.services} services on {args.nodes} nodes ({fits}; "
          f"{len(done.stdout.splitlines())} lines of plan), {args.rounds} rounds")
    for name, seconds in (("whole command", plan_times), ("(python -c pass)", start_times),
                          ("(python -c 'import swarm.__main__')", import_times)):
        print(f"{name:38} best {min(seconds):5.2f} s   median {statistics.median(seconds):5.2f} s")
    best = min(plan_times)
    print(f"\nplan: {args.services} services on {args.nodes} nodes, the whole command {best:.2f} s "
          f"(median {statistics.median(plan_times):.2f}; goal < {GOAL_SECONDS:g}): "
          f"{'PASS' if best < GOAL_SECONDS else 'FAIL'}")


if __name__ == "__main__":
    main()
