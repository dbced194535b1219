"""Offline tools over the same config and stack files as the Pulumi program (no Pulumi CLI, no
credentials, nothing deployed).

    python -m swarm plan --stack prod [--format text|markdown|json] [--base main-plan.json]
        every check `pulumi preview`/`up` make before creating anything (all in one pass), then
        where each task will run and what it costs; with --base, what changes from that plan;
        exit 1 when preview would refuse the stack
    python -m swarm missing-secrets --stack staging
        names of external secrets with no value yet in swarm:secrets
    python -m swarm config-reference
        the table of known swarm:* keys, as docs/configuration.md carries it
    python -m swarm restore --stack prod --database database [--at TIME] [--dry-run] [--yes]
        restore a database from its backup (swarm:backups), after a confirmation; see docs/backups.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from swarm.backups import restore
from swarm.config import load_stack_config_file, reference_table
from swarm.diagnostics import NothingDeployed
from swarm.plan import FORMATS, build_plan, check, error_plan, render

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def missing_secrets(stack: str, project_root: Path = PROJECT_ROOT) -> list[str]:
    """External secrets the stack file declares that `swarm:secrets` does not set."""
    checked = check(lambda: load_stack_config_file(project_root, stack))
    return [m.name for m in checked.missing_values if m.section == "secrets"]


def plan_of(stack: str, project_root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The structured plan of `stack`, or an error plan when its files are invalid."""
    try:
        checked = check(lambda: load_stack_config_file(project_root, stack))
    except NothingDeployed as error:
        return error_plan(stack, error)
    return build_plan(
        checked,
        config_file=f"Pulumi.{stack}.yaml",
        stack_file=os.path.relpath(checked.config.stack_file, project_root),
    )


def plan(stack: str, project_root: Path = PROJECT_ROOT, width: int = 100, fmt: str = "text") -> tuple[str, bool]:
    """The plan of `stack` rendered, and whether `pulumi preview` would accept it."""
    result = plan_of(stack, project_root)
    return render(result, fmt, width=width), result["fits"]


def _read_base(path: Path) -> dict[str, Any]:
    """main's JSON plan; one that is missing or not JSON (main's plan failed, or predates
    --format json) is said in the comparison instead of failing this plan."""
    try:
        base = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"errors": [f"{path} holds no JSON plan"]}
    return base if isinstance(base, dict) else {"errors": [f"{path} holds no JSON plan"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m swarm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    planning = commands.add_parser("plan", help="run every pre-deploy check; show placement, cost and what up needs")
    planning.add_argument("--stack", required=True)
    planning.add_argument("--format", choices=FORMATS, default="text", help="text (default), markdown or json")
    planning.add_argument("--base", type=Path, help="another JSON plan of the same stack (main's): adds what changes "
                          "from it (droplets replaced or resized, what is added, removed, changed; the cost change)")
    planning.add_argument("--width", type=int, help="text width (default: the terminal's, at most 100)")
    missing = commands.add_parser("missing-secrets", help="print external secrets with no value in swarm:secrets")
    missing.add_argument("--stack", required=True)
    commands.add_parser("config-reference", help="print the table of known swarm:* keys (docs/configuration.md)")
    restoring = commands.add_parser("restore", help="restore a database from its backup, after a confirmation")
    restore.add_arguments(restoring)
    args = parser.parse_args(argv)

    if args.command == "restore":
        return restore.run(args, PROJECT_ROOT)

    if args.command == "config-reference":
        print(reference_table())
        return 0
    if args.command == "missing-secrets":
        try:
            print("\n".join(missing_secrets(args.stack)))
        except NothingDeployed as error:
            print(error, file=sys.stderr)
            return 1
        return 0

    result = plan_of(args.stack, PROJECT_ROOT)
    base = _read_base(args.base) if args.base else None
    width = args.width or min(shutil.get_terminal_size((100, 24)).columns, 100)
    text = render(result, args.format, width=width, base=base)
    # Text errors go to stderr like any tool's; markdown and JSON are documents: stdout.
    print(text, end="", file=sys.stderr if "errors" in result and args.format == "text" else sys.stdout)
    return 0 if result["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
