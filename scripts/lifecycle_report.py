#!/usr/bin/env python3
"""Day-2 lifecycle report: prod's first `pulumi up` on the swarm sandbox, then each routine
change as a second `up` played by the lifecycle engine (tests/lifecycle/engine.py), sampled
every second. Prints one row per scenario and, last, `lifecycle: N/M scenarios held`.

Needs root and the sandbox prerequisites (.ci/sandbox-prereqs.sh). Every scenario starts from a
fresh cluster, so they do not depend on each other; with --chain they run one after another on
one cluster (the first scenario's baseline), as a cluster lives through them in production. Exit status: 0 when the report ran (whatever
it found), 2 when it could not run (or, with --chain, the first `up` failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only scenarios whose name contains TEXT (repeatable)")
    parser.add_argument("--chain", action="store_true",
                        help="run the scenarios one after another on one cluster instead of a fresh one each")
    parser.add_argument("--prefix", default="swlife", help="sandbox prefix, for two runs at once (default: %(default)s)")
    parser.add_argument("--subnet", default="10.233.90.0/24", help="sandbox subnet (default: %(default)s)")
    parser.add_argument("--workdir", default=os.environ.get("SWARM_SANDBOX_WORKDIR", "/var/tmp/swarm-sandbox"),
                        help="sandbox working directory on a real disk (default: %(default)s)")
    args = parser.parse_args()
    # The program's own warnings (ignored Compose keys, capacity advice) repeat in every run.
    logging.disable(logging.WARNING)

    from tests.sandbox.harness import Sandbox, missing_prerequisites
    from tests.sandbox.lifecycle import (
        SCENARIOS,
        Lifecycle,
        base_config,
        lifecycle_stack_file,
        load_images,
        run_scenario,
    )

    problems = missing_prerequisites()
    if problems:
        print("lifecycle report: cannot run here:\n  - " + "\n  - ".join(problems), file=sys.stderr)
        return 2
    scenarios = [s for s in SCENARIOS if not args.only or any(t in s.name for t in args.only)]
    workdir = Path(args.workdir) / f"lifecycle-{args.prefix}"
    started = time.monotonic()
    outcomes, failures = [], []
    with tempfile.TemporaryDirectory() as directory, Sandbox(workdir, subnet=args.subnet, prefix=args.prefix) as sandbox:
        stack_file = lifecycle_stack_file(Path(directory))
        load_images(sandbox)
        chain = None
        if args.chain and scenarios:
            chain = Lifecycle(sandbox, workdir, stack_file)
            first = chain.up(scenarios[0].baseline(base_config(stack_file)))
            if first.error is not None:
                print(f"lifecycle report: the chain's first up failed: {first.error}", file=sys.stderr)
                return 2
        for scenario in scenarios:
            print(f"... {scenario.name}", file=sys.stderr, flush=True)
            if not outcomes and not failures:
                print(header(), flush=True)
            try:
                outcome = chain.change(scenario) if chain else run_scenario(sandbox, workdir, stack_file, scenario)
            except Exception as error:  # noqa: BLE001 - a scenario that cannot run is reported, not fatal
                failures.append(f"{scenario.name}: could not run: {error}")
                print(f"{scenario.name} | could not run (see below) | NO", flush=True)
                continue
            outcomes.append(outcome)
            print(row(outcome), flush=True)
        if chain:
            chain.close()
    print()
    for outcome in outcomes:
        if outcome.problems:
            print(f"{outcome.scenario}:\n" + "\n".join(f"  {problem}" for problem in outcome.problems))
    for failure in failures:
        print(failure)
    held = sum(outcome.held for outcome in outcomes)
    print(f"\nreport took {time.monotonic() - started:.0f}s")
    print(f"lifecycle: {held}/{len(outcomes) + len(failures)} scenarios held")
    return 0


COLUMNS = ("scenario", "engine: created/updated/replaced/deleted", "replaced", "swarm", "services", "secrets",
           "data", "longest node down", "lowest running (of replicas)",
           "lowest serving (containers on the hosts)", "samples without a leader", "wall", "held")


def header() -> str:
    return " | ".join(COLUMNS) + "\n" + " | ".join("---" for _ in COLUMNS)


def lowest(counts: dict[str, tuple[int, int]]) -> str:
    """{"prod_api": (2, 3), ...} as "api 2/3, ..."."""
    return ", ".join(f"{name.split('_', 1)[-1]} {low}/{n}" for name, (low, n) in sorted(counts.items()))


def row(outcome) -> str:
    s = outcome.summary
    yes = {True: "kept", False: "LOST"}
    node, seconds = outcome.longest_unavailable
    return " | ".join((
        outcome.scenario,
        f"{s['create']}/{s['update']}/{s['replace']}/{s['delete']}",
        ", ".join(outcome.replaced) or "-",
        yes[outcome.swarm_survived], yes[outcome.services_survived], yes[outcome.secrets_survived],
        yes[outcome.data_survived],
        f"{seconds:.1f}s ({node})" if seconds else "0s",
        lowest(outcome.min_running),
        lowest(outcome.min_serving),
        str(outcome.leaderless_samples),
        f"{outcome.seconds:.1f}s",
        "yes" if outcome.held else "NO",
    ))


if __name__ == "__main__":
    sys.exit(main())
