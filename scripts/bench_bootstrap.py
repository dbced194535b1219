"""Print how long the program takes to form a swarm and deploy on the local sandbox (root only).

For 5 and 10 hosts (1 manager + N-1 workers): the time of the whole program run (ready,
init, joins, settings, then networks and services created), the slowest single join, and
the time from the end of the run until every replica is running. If joins run in parallel,
bootstrap time stays nearly flat as hosts are added.

    sudo python scripts/bench_bootstrap.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pulumi_program import run_program  # noqa: E402
from tests.sandbox.executing_cloud import SandboxCloud  # noqa: E402
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox  # noqa: E402

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


def bench(hosts: int, workdir: Path) -> None:
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
        cloud = SandboxCloud(sandbox)
        started = time.monotonic()
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
            f" | deploy to {workers * 2} replicas running {converge_seconds:5.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Needs root and the sandbox prerequisites (.ci/sandbox-prereqs.sh)."
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[5, 10], help="sandbox sizes to time (default: 5 10)")
    args = parser.parse_args()  # before anything starts: --help has no side effects
    if os.geteuid() != 0:
        raise SystemExit("bench_bootstrap: run as root (it starts network namespaces, dockerd and sshd)")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as directory:
        for hosts in args.hosts:
            bench(hosts, Path(directory))


if __name__ == "__main__":
    main()
