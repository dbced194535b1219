"""Print how long the program takes to form a swarm and deploy on the local sandbox (root only).

For 5 and 10 hosts (1 manager + N-1 workers), in one run: the time of the whole program run
(ready, init, joins, settings, then networks and services created, then the convergence check),
the slowest single join, and the time from the end of the run until every replica is running.
If joins run in parallel, bootstrap time stays nearly flat as hosts are added.

Then, per size, where the run's time went: every remote command and Docker API call the
program made (each an SSH round trip to a sandbox host), grouped by step, with how many, the
slowest, their sum and the span from the first start to the last end; the waits the node
scripts make by design (polls, the convergence check's steady period) are named beside them.
The time when none was running is the program's own (the SDK, Python) plus the mocks'.

Goal (issue 25): 10 hosts cost at most 1.25 x 5 hosts. The last line gives the verdict.

    sudo python scripts/bench_bootstrap.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pulumi_program import run_program  # noqa: E402
from tests.sandbox.executing_cloud import SandboxCloud  # noqa: E402
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox  # noqa: E402

GOAL_RATIO = 1.25
# What the node scripts wait for by design (swarm/node_scripts; their text is production's).
DESIGNED_WAITS = {
    "ready": "wait_ready.sh: cloud-init status --wait, then `docker info` every 2 s",
    "init": "init.sh: wait_until control_is true (every 1 s)",
    "join": "join.sh: `docker swarm join`; a node in another swarm polls its managers every 1 s",
    "daemon-drain": "daemon-drain.sh (on the manager): drains the node only if its Docker settings change",
    "converge": "converge.sh: every service at its replicas for STABLE=5 s, polled every 2 s",
}

STACK_FILE = f"""\
services:
  model:
    image: {DEFAULT_IMAGE}
    command: [sleep, "86400"]
    stop_grace_period: 1s
    deploy:
      replicas: {{replicas}}
      placement:
        constraints: [node.role == worker, node.labels.type == machine-learning]
"""


class TimedCloud(SandboxCloud):
    """The sandbox cloud, recording when each SSH round trip of the run started and ended."""

    def __init__(self, sandbox: Sandbox):
        super().__init__(sandbox)
        self.started = time.monotonic()
        self.calls: list[tuple[str, float, float]] = []  # (step, start, end), seconds into the run
        self._calls_lock = threading.Lock()

    def _record(self, step: str, start: float) -> None:
        with self._calls_lock:
            self.calls.append((step, start - self.started, time.monotonic() - self.started))

    def ssh_pinned(self, what, connection, script, stdin):
        start = time.monotonic()
        try:
            return super().ssh_pinned(what, connection, script, stdin)
        finally:
            self._record(step_of(what), start)

    def _create_docker_object(self, args):
        start = time.monotonic()
        try:
            return super()._create_docker_object(args)
        finally:
            self._record(f"docker {args.typ.split(':')[-1]} (Engine API)", start)


def step_of(command_name: str) -> str:
    """`bench-ml-3-join` -> `join`, `bench-converge` -> `converge`."""
    for step in ("join-tokens", "daemon-drain", "daemon-return", "settings", "ready", "init", "join", "converge",
                 "folders"):
        if command_name.endswith(f"-{step}") or f"-{step}-" in command_name:
            return step
    return command_name.split("-")[-1]


def bench(hosts: int, workdir: Path) -> tuple[float, TimedCloud]:
    workers = hosts - 1
    names = ["bench-manager-1"] + [f"bench-ml-{i}" for i in range(1, workers + 1)]
    stack_file = workdir / f"bench-{hosts}.yaml"
    stack_file.write_text(STACK_FILE.format(replicas=workers * 2))
    config = {
        "region": "fra1",
        "adminCidrs": ["0.0.0.0/0"],
        "stackFile": str(stack_file),
        "nodePools": {
            "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "database"}},
            "ml": {"role": "worker", "count": workers, "size": "m-2vcpu-16gb", "labels": {"type": "machine-learning"}},
        },
    }
    with Sandbox(workdir / f"hosts-{hosts}", subnet="10.232.0.0/24", prefix="swbn") as sandbox:
        sandbox.add_hosts(names)
        sandbox.load_image()
        cloud = TimedCloud(sandbox)
        started = time.monotonic()
        cloud.started = started
        run = run_program("bench", config, mocks=cloud)
        program_seconds = time.monotonic() - started
        if run.error:
            raise SystemExit(f"{hosts} hosts: the program failed: {run.error}")
        manager = sandbox.hosts["bench-manager-1"]
        converge_started = time.monotonic()
        while True:
            replicas = manager.docker("service", "ls", "--format", "{{.Replicas}}").stdout.strip()
            if replicas == f"{workers * 2}/{workers * 2}":
                break
            if time.monotonic() - converge_started > 120:
                raise SystemExit(f"{hosts} hosts: replicas stuck at {replicas}")
            time.sleep(0.5)
        converge_seconds = time.monotonic() - converge_started
        joins = [seconds for name, _, seconds in cloud.executed if name.endswith("-join")]
        print(
            f"{hosts:>3} hosts | program run (form + deploy) {program_seconds:6.2f} s"
            f" | slowest join {max(joins):5.2f} s, sum of joins {sum(joins):6.2f} s"
            f" | deploy to {workers * 2} replicas running {converge_seconds:5.2f} s",
            flush=True,
        )
    return program_seconds, cloud


def breakdown(hosts: int, total: float, cloud: TimedCloud) -> None:
    """Where a run's time went: its SSH round trips by step, and the time none was running."""
    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for step, start, end in cloud.calls:
        steps[step].append((start, end))
    print(f"\n{hosts} hosts, {total:.2f} s: SSH round trips by step (seconds into the run)")
    print(f"  {'step':32} {'count':>5} {'slowest':>8} {'sum':>7} {'first start':>12} {'last end':>9}")
    for step, spans in sorted(steps.items(), key=lambda item: min(start for start, _ in item[1])):
        durations = [end - start for start, end in spans]
        print(f"  {step:32} {len(spans):5d} {max(durations):8.2f} {sum(durations):7.2f} "
              f"{min(s for s, _ in spans):12.2f} {max(e for _, e in spans):9.2f}")
    busy, covered_until = 0.0, 0.0
    for start, end in sorted((start, end) for start, end in (span for spans in steps.values() for span in spans)):
        start = max(start, covered_until)
        if end > start:
            busy += end - start
            covered_until = end
    print(f"  no round trip running: {total - busy:.2f} s (the SDK and Python, the mocks, the harness)")
    for step, wait in DESIGNED_WAITS.items():
        if step in steps:
            print(f"  by design, {step}: {wait}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Needs root and the sandbox prerequisites (.ci/sandbox-prereqs.sh)."
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[5, 10], help="sandbox sizes to time (default: 5 10)")
    args = parser.parse_args()  # before anything starts: --help has no side effects
    if os.geteuid() != 0:
        raise SystemExit("bench_bootstrap: run as root (it starts network namespaces, dockerd and sshd)")
    results = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
        for hosts in args.hosts:
            results[hosts] = bench(hosts, Path(directory))
    for hosts, (total, cloud) in results.items():
        breakdown(hosts, total, cloud)
    smallest, largest = min(results), max(results)
    if smallest != largest:
        ratio = results[largest][0] / results[smallest][0]
        print(f"\nbootstrap: {largest} hosts {results[largest][0]:.2f} s, {smallest} hosts {results[smallest][0]:.2f} s, "
              f"ratio {ratio:.2f} (goal <= {GOAL_RATIO}): {'PASS' if ratio <= GOAL_RATIO else 'FAIL'}")


if __name__ == "__main__":
    main()
