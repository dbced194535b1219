"""The plan: what `python -m swarm plan` prints, as text for a terminal, Markdown for a pull
request comment, or JSON for tools (CI compares a pull request's plan with main's).

One structured plan (`build_plan`) from the preflight result; three renderers over it. Text
tables fit the width given (100 columns by default): the last column wraps. Warnings that say the
same thing about several services are printed once, naming them all.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from swarm.alerts import plan_alerts
from swarm.backups import bucket_cost, stored_gb_upper_bound
from swarm.capacity import NANO, format_cpus, format_memory
from swarm.config import VOLUME_GB_MONTHLY_USD
from swarm.diagnostics import NothingDeployed, Problem, format_path
from swarm.node_scripts import HostKey, render_cloud_init
from swarm.plan.diff import change_lines, compare
from swarm.plan.duration import deploy_bound
from swarm.plan.preflight import Preflight

FORMATS = ("text", "markdown", "json")


def build_plan(checked: Preflight, *, config_file: str, stack_file: str) -> dict[str, Any]:
    """Everything the renderers show, as plain JSON-ready values: numbers as numbers (dollars per
    month, CPUs, bytes, GiB), problems as structured entries."""
    config, report = checked.config, checked.capacity
    pools = [_pool(pool) for pool in config.pools]
    plan = {
        "stack": config.stack,
        "region": config.region,
        "config_file": config_file,
        "stack_file": stack_file,
        "fits": report.schedulable,
        "ready_for_up": report.schedulable and not checked.missing_values,
        "droplets": len(report.nodes),
        "pools": pools,
        "nodes": [_node(load, config) for load in report.nodes],
        "services": [
            {
                "name": s.service, "mode": s.mode, "placed": s.placed, "wanted": s.wanted,
                "check": "FAILS" if s.failure else "warn" if s.warnings else "ok", "nodes": dict(s.nodes),
                **_service_inputs(checked, s.service),
            }
            for s in report.services
        ],
        "failures": list(report.failures),
        "warnings": group_warnings(checked.warnings),
        # Every warning apart, with its file, line, column and path, for tools (CI annotations).
        "problems": [_structured(warning, stack_file) for warning in checked.warnings],
        "needs_values": [{"key": m.key, "command": m.command} for m in checked.missing_values],
        "backups": _backups(checked),
        "ingress": _ingress(checked),
        "schedule": _schedule(checked),
        "alerts": _alerts(checked),
        # The deploy job's timeout: the longest an `up` replacing every droplet may take.
        "deploy": deploy_bound(config).as_json(),
    }
    costs = {
        "droplets": round(sum(pool["droplets_monthly_cost"] for pool in pools), 2),
        "volumes": round(sum(pool["volumes_monthly_cost"] for pool in pools), 2),
        "load_balancer": plan["ingress"]["monthly_cost"] if plan["ingress"] else 0.0,
        "backups_bucket": plan["backups"]["monthly_cost"] if plan["backups"] else 0.0,
        "alerting": plan["alerts"]["monthly_cost"] if plan["alerts"] else 0.0,
    }
    plan["costs"] = costs
    plan["monthly_cost"] = round(sum(costs.values()), 2)
    return plan


def _structured(problem: Problem, stack_file: str) -> dict[str, Any]:
    """A problem as JSON; one the capacity check makes about a service (by name alone) is given
    the stack file and the service's path there."""
    entry = problem.as_dict()
    if not problem.file and problem.service is not None and problem.path[:1] == (problem.service,):
        entry.update(file=stack_file, path=format_path(("services", *problem.path)))
    return entry


def _alerts(checked: Preflight) -> dict[str, Any] | None:
    """What swarm:alerts watches, where alerts go (the webhook as set or missing, never its
    value) and what it adds per month: DigitalOcean's droplet alert policies cost nothing, each
    uptime check is billed. The Prometheus part, when it comes, adds its reservations here."""
    hosts = checked.ingress.hosts if checked.ingress is not None else ()
    plan = plan_alerts(checked.config, hosts)
    return plan.summary() if plan is not None else None


def _pool(pool: Any) -> dict[str, Any]:
    droplets = round(pool.size.price_monthly * pool.count, 2)
    volume_gb = pool.volume.size_gb if pool.volume else 0
    volumes = round(volume_gb * pool.count * VOLUME_GB_MONTHLY_USD, 2)
    return {
        "name": pool.name, "role": pool.role, "count": pool.count, "size": pool.size.slug, "image": pool.image,
        "gpus": pool.size.gpus, "labels": dict(pool.labels), "price_monthly": pool.size.price_monthly,
        "volume_gb": volume_gb or None, "volume_mount": pool.volume.mount_path if pool.volume else None,
        "max_unavailable": pool.max_unavailable,
        "droplets_monthly_cost": droplets, "volumes_monthly_cost": volumes, "monthly_cost": round(droplets + volumes, 2),
    }


def _node(load: Any, config: Any) -> dict[str, Any]:
    node = load.node
    return {
        "name": node.name, "pool": node.pool, "role": node.role, "size": node.size,
        "price_monthly": node.price_monthly,
        "cpus": {"reserved": load.reserved_nano_cpus / NANO, "available": node.nano_cpus / NANO},
        "memory_bytes": {"reserved": load.reserved_memory_bytes, "available": node.memory_bytes},
        "generic": {k: {"reserved": load.reserved_generic[k], "available": n} for k, n in sorted(node.generic_resources.items())},
        "tasks": dict(load.tasks),
        # What DigitalOcean cannot change on a running droplet: a change to any replaces it.
        "replaced_on_change": replacement_inputs(config, node.name),
    }


def replacement_inputs(config: Any, name: str) -> dict[str, Any]:
    """The droplet inputs that force its replacement (DESIGN.md, "Day-2 facts"): image, region,
    user data (compared by a digest of its text, the host key left out), SSH key, VPC."""
    node = next(n for n in config.nodes if n.name == name)
    user_data = render_cloud_init(node, HostKey("(host key)", "(host key)"))
    return {
        "image": node.pool.image, "region": config.region,
        "user_data": hashlib.sha256(user_data.encode()).hexdigest()[:16],
        "ssh_key": config.ssh_public_key.split()[1][-16:] if config.ssh_public_key else "generated",
        "vpc": config.vpc_ip_range or "default",
    }


def _service_inputs(checked: Preflight, name: str) -> dict[str, Any]:
    """What a reviewer compares between two plans of a service: image, reservations, constraints."""
    spec = checked.rollout.stack.services.get(name)
    if spec is None:
        return {}
    return {
        "image": spec.image, "replicas": spec.replicas,
        "reserved": {"cpus": spec.reservations.nano_cpus / NANO, "memory_bytes": spec.reservations.memory_bytes,
                     **{kind: count for kind, count in sorted(spec.reservations.generic_resources.items())}},
        "constraints": [str(c) for c in spec.constraints],
        "schedule": spec.schedule,
    }


def _schedule(checked: Preflight) -> list[dict[str, Any]]:
    """The scheduled jobs, times in UTC: x-schedule services, then the backups."""
    stack = checked.config.stack
    jobs = [
        {"job": f"{stack}_{key}", "kind": "service", "schedule": spec.schedule, "timezone": "UTC"}
        for key, spec in checked.rollout.stack.services.items()
        if spec.schedule
    ]
    backups = checked.config.backups
    if backups is not None:
        jobs += [{"job": database.name, "kind": "backup", "schedule": backups.schedule, "timezone": "UTC"}
                 for database in checked.databases]
        if backups.swarm_state:
            jobs.append({"job": "backup-swarm-state", "kind": "backup", "schedule": backups.schedule, "timezone": "UTC"})
    return jobs


def _ingress(checked: Preflight) -> dict[str, Any] | None:
    """The load balancer, its cost and the routes, when swarm:ingress is set."""
    plan = checked.ingress
    if plan is None:
        return None
    ingress = plan.ingress
    return {
        "pool": ingress.pool, "node_port": ingress.node_port, "certificate": ingress.certificate,
        "load_balancer_nodes": ingress.load_balancer_size, "monthly_cost": ingress.monthly_cost,
        "routes": plan.table(checked.config.stack),
    }


def _backups(checked: Preflight) -> dict[str, Any] | None:
    """The bucket and its estimated cost (at most: every kept backup as large as its volume)."""
    backups = checked.config.backups
    if backups is None:
        return None
    databases = list(checked.databases)
    stored = stored_gb_upper_bound(backups, databases, checked.database_volume_gb)
    return {
        "bucket": backups.bucket, "region": backups.region, "schedule": backups.schedule, "keep": backups.keep,
        "databases": [database.service for database in databases], "swarm_state": backups.swarm_state,
        "lifecycle_days": backups.lifecycle_days, "stored_gb_at_most": stored,
        "monthly_cost": bucket_cost(backups, stored),
    }


def _backups_line(plan: Mapping[str, Any]) -> str | None:
    backups = plan.get("backups")
    if not backups:
        return None
    what = ", ".join([*backups["databases"], *(["swarm state"] if backups["swarm_state"] else [])]) or "nothing"
    return (
        f"Backups: {what} at '{backups['schedule']}' (UTC), {backups['keep']} kept, to Spaces bucket "
        f"{backups['bucket']} ({backups['region']}): ${backups['monthly_cost']:,.2f}/month at most "
        f"({backups['stored_gb_at_most']:,.0f} GiB if every kept backup were as large as its volume)"
    )


def _deploy_line(plan: Mapping[str, Any]) -> str | None:
    deploy = plan.get("deploy")
    if not deploy:
        return None
    return (f"Deploy: an up that replaces every droplet takes at most {deploy['up_minutes']} minutes (the "
            f"{deploy['longest_retirement_chain']} retire one slot at a time); the deploy job's timeout: "
            f"{deploy['job_timeout_minutes']} minutes")


def _alerts_line(plan: Mapping[str, Any]) -> str | None:
    alerts = plan.get("alerts")
    if not alerts:
        return "Alerts: none (swarm:alerts is not set: nobody is told when a node, a disk or a routed host fails)"
    droplets = alerts["droplets"]
    watched = (f"droplets tagged {droplets['tag']} (CPU > {droplets['cpu']:g}%, memory > {droplets['memory']:g}%, "
               f"disk > {droplets['disk']:g}% for {droplets['window']})")
    checks = alerts["uptime_checks"]
    if checks:
        watched += (f"; {len(checks)} routed host{'s' if len(checks) != 1 else ''} over HTTPS (down, slower than "
                    f"{alerts['latency_ms']} ms, certificate within {alerts['ssl_expiry_days']} days)")
    to = ", ".join(alerts["emails"]) or "no email"
    return (f"Alerts: {watched}; to {to}, webhook {alerts['webhook']}: ${alerts['monthly_cost']:,.2f}/month")


def _schedule_line(plan: Mapping[str, Any]) -> str | None:
    """The scheduled jobs, grouped by schedule: "Scheduled jobs (UTC): prod_report at 0 3 * * *"."""
    jobs = plan.get("schedule") or []
    if not jobs:
        return None
    by_schedule: dict[str, list[str]] = {}
    for job in jobs:
        by_schedule.setdefault(job["schedule"], []).append(job["job"])
    return "Scheduled jobs (UTC): " + "; ".join(f"{', '.join(names)} at '{when}'" for when, names in by_schedule.items())


def error_plan(stack: str, error: NothingDeployed) -> dict[str, Any]:
    """The plan of a stack whose files are invalid: `preview` and `up` refuse it. `errors` is
    the text as the program prints it; `problems` the same, one structured entry per problem."""
    return {"stack": stack, "fits": False, "ready_for_up": False, "errors": [str(error)],
            "problems": [problem.as_dict() for problem in error.problems]}


# ---- grouping -----------------------------------------------------------------------------------

def group_warnings(warnings: Sequence[Problem]) -> list[str]:
    """Warnings in order, as text; those that differ only in the service they are about are
    merged into one ("services.a.depends_on, services.b.depends_on: ignored: ...")."""
    groups: dict[tuple, list[Problem]] = {}
    for warning in warnings:
        path, service = warning.path, warning.service
        # The service's element: services.<name>... in a stack file, <name> alone for the capacity check.
        at = 1 if path[:2] == ("services", service) else 0 if service is not None and path[:1] == (service,) else None
        if at is None:
            groups.setdefault((id(warning),), [warning])
            continue
        key = (warning.file, warning.path[:at], warning.path[at + 1 :], warning.message, warning.severity)
        groups.setdefault(key, []).append(warning)
    merged = []
    for members in groups.values():
        first = members[0]
        subjects = ", ".join(member.where for member in members)
        # At the first one's line: an editor or CI annotation opens it, the text names the others.
        merged.append(f"{first.location}: {subjects}: {first.message}" if first.file else f"{subjects}: {first.message}")
    return merged


# ---- text -----------------------------------------------------------------------------------------


def render(plan: Mapping[str, Any], fmt: str, *, width: int = 100, base: Mapping[str, Any] | None = None) -> str:
    """`plan` as text, markdown or JSON; with `base` (main's JSON plan), what changes from it."""
    if fmt == "json":
        comparable = base is not None and "errors" not in plan  # an invalid stack has nothing to compare
        return json.dumps({**plan, "changes": compare(plan, base)} if comparable else plan, indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown(plan, base=base)
    return render_text(plan, width=width, base=base)


def _title(plan: Mapping[str, Any]) -> str:
    return (
        f"Plan for stack {plan['stack']}: {plan['droplets']} nodes in {plan['region']} ({plan['config_file']}), "
        f"{len(plan['services'])} services ({plan['stack_file']})"
    )


def _node_row(node: Mapping[str, Any], gpus: bool) -> list[str]:
    cpus, memory = node["cpus"], node["memory_bytes"]
    cpu_text = f"{format_cpus(round(cpus['reserved'] * NANO))}/{format_cpus(round(cpus['available'] * NANO))}"
    generic = ", ".join(f"{n['reserved']}/{n['available']} {kind}" for kind, n in node["generic"].items()) or "-"
    tasks = ", ".join(_times(service, count) for service, count in node["tasks"].items()) or "-"
    return [node["name"], node["size"], f"{node['price_monthly']:.2f}", cpu_text,
            _fraction([format_memory(memory["reserved"]), format_memory(memory["available"])]),
            *([generic] if gpus else []), tasks]


def _fraction(memory: Sequence[str]) -> str:
    used, total = memory
    unit = " GiB" if total.endswith(" GiB") and used.endswith(" GiB") else ""
    return f"{used.removesuffix(unit)}/{total}" if unit else f"{used}/{total}"


def _tables(plan: Mapping[str, Any]) -> list[tuple[list[str], list[list[str]], set[int]]]:
    gpus = any(node["generic"] for node in plan["nodes"])
    pools = [
        [p["name"], p["role"], str(p["count"]), p["size"], f"{p['volume_gb']} GiB" if p.get("volume_gb") else "-",
         f"{p['monthly_cost']:,.2f}", ",".join(f"{k}={v}" for k, v in sorted(p["labels"].items())) or "-"]
        for p in plan["pools"]
    ]
    nodes = [_node_row(node, gpus) for node in plan["nodes"]]
    services = [
        [s["name"], s["mode"], f"{s['placed']}/{s['wanted']}", s["check"],
         ", ".join(_times(node, count) for node, count in s["nodes"].items()) or "-"]
        for s in plan["services"]
    ]
    return [
        (["POOL", "ROLE", "NODES", "SIZE", "VOLUME", "$/MONTH", "LABELS"], pools, {2, 4, 5}),
        (["NODE", "SIZE", "$/MONTH", "CPU", "MEMORY", *(["GPU"] if gpus else []), "TASKS"], nodes, {2}),
        (["SERVICE", "MODE", "TASKS", "CHECK", "NODES"], services, set()),
    ]


def render_text(plan: Mapping[str, Any], *, width: int = 100, base: Mapping[str, Any] | None = None) -> str:
    if "errors" in plan:
        return "\n".join(plan["errors"]) + "\n"
    sections = [_title(plan), *(_table(h, rows, numeric=n, width=width) for h, rows, n in _tables(plan))]
    if plan["failures"]:
        sections.append(_bullets("Cannot be scheduled", plan["failures"], width))
    if plan["warnings"]:
        sections.append(_bullets("Warnings", plan["warnings"], width))
    if plan["needs_values"]:
        needs = [f"{item['key']}: `{item['command']}`" for item in plan["needs_values"]]
        sections.append(_bullets("Needs a value before up", needs, width))
    if plan.get("ingress"):
        sections.append(_ingress_text(plan["ingress"], width))
    sections.append(textwrap.fill(_total(plan), width, break_on_hyphens=False))
    if (line := _backups_line(plan)) is not None:
        sections.append(textwrap.fill(line, width))
    if (line := _schedule_line(plan)) is not None:
        sections.append(textwrap.fill(line, width))
    if (line := _alerts_line(plan)) is not None:
        sections.append(textwrap.fill(line, width, break_on_hyphens=False))
    if (line := _deploy_line(plan)) is not None:
        sections.append(textwrap.fill(line, width, break_on_hyphens=False))
    if base is not None:
        sections.append(_bullets("Changes against main", change_lines(compare(plan, base)), width))
    sections.append(_verdict(plan))
    return "\n\n".join(sections) + "\n"


def _ingress_head(ingress: Mapping[str, Any]) -> str:
    nodes = ingress["load_balancer_nodes"]
    return (f"Ingress: load balancer ({nodes} node{'s' if nodes != 1 else ''}, ${ingress['monthly_cost']:,.2f}/month) "
            f"-> proxy on pool {ingress['pool']}, port {ingress['node_port']}, {ingress['certificate']} certificate")


def _route_rows(ingress: Mapping[str, Any]) -> list[list[str]]:
    return [[r["host"] + ("" if r["path"] == "/" else r["path"]), r["service"], str(r["port"])] for r in ingress["routes"]]


def _ingress_text(ingress: Mapping[str, Any], width: int) -> str:
    return _ingress_head(ingress) + "\n" + _table(["ROUTE", "SERVICE", "PORT"], _route_rows(ingress), numeric={2}, width=width)


_COST_NAMES = {"volumes": "volumes", "load_balancer": "load balancer", "backups_bucket": "backups bucket",
               "alerting": "alerting"}


def _total(plan: Mapping[str, Any]) -> str:
    """The monthly total, then what it is made of: droplets, and each other item that costs."""
    droplets = plan["droplets"]
    costs = plan.get("costs") or {"droplets": plan["monthly_cost"]}
    parts = [f"{droplets} droplet{'s' if droplets != 1 else ''} ${costs['droplets']:,.2f}"]
    parts += [f"{name} ${costs[key]:,.2f}" for key, name in _COST_NAMES.items() if costs.get(key)]
    return f"Total: ${plan['monthly_cost']:,.2f}/month: {', '.join(parts)} (list prices; traffic not included)"


def _verdict(plan: Mapping[str, Any]) -> str:
    if not plan["fits"]:
        return "The stack does NOT fit: `pulumi preview` and `up` will refuse it."
    if plan["needs_values"]:
        count = len(plan["needs_values"])
        return (f"The stack fits; `pulumi preview` runs, plain `pulumi up` refuses it until {count} "
                f"value{'s' if count > 1 else ''} are set.")
    return "The stack fits."


def _times(name: str, count: int) -> str:
    return name if count == 1 else f"{name} x{count}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int], width: int) -> str:
    """Columns padded to their widest cell; the last column wraps so each line fits `width`."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    indent = sum(widths) + 2 * len(widths)
    last = max(width - indent, 20)
    lines = []
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        wrapped = textwrap.wrap(row[-1], last, break_on_hyphens=False) or [""]
        lines.append(("  ".join(cells) + "  " + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def _bullets(heading: str, items: Sequence[str], width: int) -> str:
    wrapped = [
        textwrap.fill(item, width=width, initial_indent="  - ", subsequent_indent="    ", break_on_hyphens=False)
        for item in items
    ]
    return f"{heading} ({len(items)}):\n" + "\n".join(wrapped)


# ---- markdown -------------------------------------------------------------------------------------


def render_markdown(plan: Mapping[str, Any], *, base: Mapping[str, Any] | None = None) -> str:
    if "errors" in plan:
        errors = "\n".join(plan["errors"])
        return (
            f"### Plan for stack `{plan['stack']}`: invalid, `pulumi preview` and `up` will refuse it\n\n"
            f"```\n{errors}\n```\n"
        )
    verdict = _verdict(plan)
    lines = [f"### {_title(plan)}", "", f"**{verdict}** {_total(plan)}"]
    if (line := _backups_line(plan)) is not None:
        lines += ["", line]
    if (line := _schedule_line(plan)) is not None:
        lines += ["", line]
    if (line := _alerts_line(plan)) is not None:
        lines += ["", _md(line)]
    if (line := _deploy_line(plan)) is not None:
        lines += ["", _md(line)]
    if base is not None:
        changes = change_lines(compare(plan, base))
        lines += ["", "**Changes against main**", "", *(f"- {_md(line)}" for line in changes[:-1]), f"- **{_md(changes[-1])}**"]
    for heading, items in (
        ("Cannot be scheduled", plan["failures"]),
        ("Warnings", plan["warnings"]),
        ("Needs a value before up", [f"`{i['key']}`: `{i['command']}`" for i in plan["needs_values"]]),
    ):
        if items:
            lines += ["", f"**{heading} ({len(items)})**", "", *(f"- {_md(item)}" for item in items)]
    if plan.get("ingress"):
        lines += ["", f"**{_ingress_head(plan['ingress'])}**", "", "| ROUTE | SERVICE | PORT |", "|---|---|---|"]
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in _route_rows(plan["ingress"])]
    for (header, rows, _), name in zip(_tables(plan), ("Pools", "Nodes", "Services")):
        lines += ["", f"<details{' open' if name == 'Services' else ''}><summary>{name}</summary>", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
