"""Offline tools over the same config and stack files as the Pulumi program.

    python -m swarm missing-secrets --stack staging    names of external secrets with no value yet
    python -m swarm plan --stack prod                  where the tasks will run, what it costs, whether
                                                       it fits (exit 1 when it cannot be scheduled),
                                                       and the ingress routes with the load balancer
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from swarm.capacity import check_capacity, format_plan
from swarm.catalogue import load_stack
from swarm.compose import StackFileError
from swarm.config import ConfigError, load_stack_config_file
from swarm.ingress import plan_ingress

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def missing_secrets(stack: str, project_root: Path = PROJECT_ROOT) -> list[str]:
    """External secrets the stack file declares that `swarm:secrets` does not set."""
    config = load_stack_config_file(project_root, stack)
    spec = load_stack(config.stack_file, stack=stack)
    declared = sorted(key for key, secret in spec.secrets.items() if secret.external)
    if config.secret_names is None:  # one encrypted blob: cannot tell, assume all set
        return []
    return [name for name in declared if name not in config.secret_names]


def plan(stack: str, project_root: Path = PROJECT_ROOT, width: int = 100) -> tuple[str, bool]:
    """The capacity plan of `stack` as text, and whether swarm can schedule every task."""
    config = load_stack_config_file(project_root, stack)
    spec, ingress = plan_ingress(config, load_stack(config.stack_file, stack=stack))
    report = check_capacity(config, spec)
    title = (
        f"Plan for stack {stack}: {len(report.nodes)} nodes in {config.region} (Pulumi.{stack}.yaml), "
        f"{len(report.services)} services ({os.path.relpath(config.stack_file, project_root)})"
    )
    notes = [*config.warnings, *spec.warnings]
    text = format_plan(report, title=title, notes=notes, width=width)
    if ingress is not None:
        text += "\n" + ingress.summary(stack) + "\n"
    return text, report.schedulable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    missing = commands.add_parser("missing-secrets", help="print external secrets with no value in swarm:secrets")
    missing.add_argument("--stack", required=True)
    planning = commands.add_parser("plan", help="show where each task will run, what it costs and whether it fits")
    planning.add_argument("--stack", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "missing-secrets":
            print("\n".join(missing_secrets(args.stack)))
        elif args.command == "plan":
            text, schedulable = plan(args.stack, PROJECT_ROOT, width=shutil.get_terminal_size().columns)
            print(text, end="")
            return 0 if schedulable else 1
    except (ConfigError, StackFileError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
