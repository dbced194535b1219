"""Two plans compared as a reviewer reads a pull request (`python -m swarm plan --base main.json`):
what is added, removed and changed (services, routes, pools, nodes), which droplets are
replaced and how (rolling, or an outage, and for what), which are resized in place, and the
cost difference last.

Both plans are `--format json` documents (swarm/plan.py). A base that is not a plan (main's plan
failed, or predates a field) is compared as far as it goes: what it lacks is said, not guessed.

How a droplet changes follows the program (components/node_pool.py, docs/day-2-operations.md):
- image, region, user data, SSH key or VPC changed: DigitalOcean replaces the droplet;
- size changed: a worker is replaced too (an in-place resize powers it off, and Pulumi would
  resize the whole pool at once); a manager is resized in place, down while DigitalOcean resizes it;
- a replacement is rolling (the successor joins first, the old node retires once its tasks run
  elsewhere, `maxUnavailable` per pool at a time), except in a pool with a volume: the volume
  attaches to one droplet at a time, so the old droplet goes first and what keeps its data there
  is down until the successor runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Why a changed input replaces a droplet, in the reviewer's words.
_REPLACING = {"image": "image", "region": "region", "user_data": "user data", "ssh_key": "SSH key", "vpc": "VPC"}


def compare(plan: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """What changes from `base` (main's plan) to `plan`, as JSON-ready values."""
    if "errors" in base or "pools" not in base:
        why = "; ".join(base.get("errors") or ["it holds no plan"])
        return {"base": "invalid", "why": why.splitlines()[0], "cost": _cost(plan, base)}
    return {
        "base": "ok",
        "services": _changes(base.get("services", []), plan.get("services", []), _service_changes),
        "routes": _route_changes(base.get("ingress"), plan.get("ingress")),
        "pools": _changes(base["pools"], plan["pools"], _pool_changes),
        "nodes": _node_changes(base, plan),
        "cost": _cost(plan, base),
    }


def _changes(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]],
             describe: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]) -> dict[str, Any]:
    old = {item["name"]: item for item in before}
    new = {item["name"]: item for item in after}
    changed = [{"name": name, "changes": found} for name in new if name in old if (found := describe(old[name], new[name]))]
    return {"added": [n for n in new if n not in old], "removed": [n for n in old if n not in new], "changed": changed}


def _differs(old: Mapping[str, Any], new: Mapping[str, Any], key: str, label: str | None = None,
             show: Callable[[Any], str] = str) -> list[str]:
    """"label old -> new" when `key` differs, and both plans have it."""
    if key not in old or key not in new or old[key] == new[key]:
        return []
    return [f"{label or key} {show(old[key])} -> {show(new[key])}"]


def _service_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    found = [*_differs(old, new, "image"), *_differs(old, new, "mode"), *_differs(old, new, "wanted", "tasks"),
             *_differs(old, new, "schedule", show=lambda s: s or "none")]
    if "reserved" in old and "reserved" in new and old["reserved"] != new["reserved"]:
        found.append(f"reservations {_reserved(old['reserved'])} -> {_reserved(new['reserved'])}")
    # Not where its tasks are predicted to run: swarm does not move running tasks to a new node,
    # so a different prediction is no change a deploy makes.
    return found + _differs(old, new, "constraints", show=lambda c: " and ".join(c) or "none")


def _reserved(reserved: Mapping[str, Any]) -> str:
    parts = [f"{reserved.get('cpus', 0):g} vCPU", f"{reserved.get('memory_bytes', 0) / 2**30:.3g} GiB"]
    parts += [f"{count} {kind}" for kind, count in reserved.items() if kind not in ("cpus", "memory_bytes")]
    return ", ".join(parts)


def _pool_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [*_differs(old, new, "role"), *_differs(old, new, "count"), *_differs(old, new, "size"),
            *_differs(old, new, "image"), *_differs(old, new, "volume_gb", "volume", show=lambda g: f"{g} GiB" if g else "none"),
            *_differs(old, new, "labels", show=lambda labels: ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none")]


def _route_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    def routes(ingress: Mapping[str, Any] | None) -> dict[str, str]:
        return {r["host"] + ("" if r["path"] == "/" else r["path"]): f"{r['service']}:{r['port']}"
                for r in (ingress or {}).get("routes", [])}

    old, new = routes(before), routes(after)
    return {
        "added": [f"{route} -> {new[route]}" for route in new if route not in old],
        "removed": [route for route in old if route not in new],
        "changed": [{"name": route, "changes": [f"{old[route]} -> {new[route]}"]}
                    for route in new if route in old and old[route] != new[route]],
    }


def _node_changes(base: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    old = {node["name"]: node for node in base.get("nodes", [])}
    new = {node["name"]: node for node in plan.get("nodes", [])}
    pools = {pool["name"]: pool for pool in plan["pools"]}
    managers = sum(1 for node in new.values() if node.get("role") == "manager")
    replaced, resized = [], []
    for name, node in new.items():
        if name not in old:
            continue
        before = old[name]
        inputs, previous = node.get("replaced_on_change", {}), before.get("replaced_on_change")
        because = [] if previous is None else [
            f"{_REPLACING[key]} {previous[key]} -> {inputs[key]}" if key != "user_data" else "user data"
            for key in _REPLACING if key in previous and key in inputs and previous[key] != inputs[key]
        ]
        size_changed = before.get("size") != node.get("size")
        if size_changed and node.get("role") == "manager" and not because:
            resized.append({"name": name, "size": [before["size"], node["size"]],
                            "how": _resize_effect(node, managers)})
            continue
        if size_changed:
            because.append(f"size {before['size']} -> {node['size']}")
        if because:
            outage, how = _replacement(node, pools.get(node["pool"], {}), managers)
            replaced.append({"name": name, "because": because, "outage": outage, "how": how})
    return {
        "added": [n for n in new if n not in old],
        "removed": [n for n in old if n not in new],
        "replaced": replaced,
        "resized": resized,
        "replacement_inputs_known": all("replaced_on_change" in n for n in old.values()),
    }


def _tasks(node: Mapping[str, Any]) -> str:
    """The tasks planned on `node`, as the subject of a sentence."""
    tasks = list(node.get("tasks", {}))
    return f"its tasks ({', '.join(tasks)})" if tasks else "its tasks (none planned)"


def _replacement(node: Mapping[str, Any], pool: Mapping[str, Any], managers: int) -> tuple[bool, str]:
    """(is it an outage, what happens) when `node`'s droplet is replaced."""
    if pool.get("volume_gb"):
        # The volume attaches to one droplet at a time: delete-first.
        lone = " (the lone manager hands the swarm to a worker standing in meanwhile)" if (
            node.get("role") == "manager" and managers == 1) else ""
        return True, (f"outage: the old droplet goes first and its volume ({pool.get('volume_mount')}) moves to the "
                      f"successor; {_tasks(node)} down until the successor runs it{lone}")
    if node.get("role") == "manager" and managers == 1:
        return True, ("outage: the lone manager has no volume to keep the swarm state on: the swarm is formed "
                      "again and every task restarts; give the pool a volume or run 3 managers first")
    return False, (f"rolling: the successor joins first, then the old node retires once {_tasks(node)} run "
                   f"elsewhere ({pool.get('max_unavailable', 1)} of pool {node['pool']} at a time)")


def _resize_effect(node: Mapping[str, Any], managers: int) -> str:
    control = "; the swarm has no manager meanwhile (running tasks elsewhere keep running)" if managers == 1 else ""
    return f"in place: the droplet is powered off while DigitalOcean resizes it, {_tasks(node)} down meanwhile{control}"


def _cost(plan: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any] | None:
    if "monthly_cost" not in plan:
        return None
    if "monthly_cost" not in base:
        return {"before": None, "after": plan["monthly_cost"], "delta": None}
    items = {}  # item by item, when both plans have the items (older plans had droplets alone)
    for key in {**base.get("costs", {}), **plan.get("costs", {})} if "costs" in base else ():
        old, new = base.get("costs", {}).get(key, 0.0), plan.get("costs", {}).get(key, 0.0)
        if old != new:
            items[key] = round(new - old, 2)
    return {"before": base["monthly_cost"], "after": plan["monthly_cost"],
            "delta": round(plan["monthly_cost"] - base["monthly_cost"], 2), "items": items}


# ---- words ----------------------------------------------------------------------------------------

_COST_NAMES = {"droplets": "droplets", "volumes": "volumes", "load_balancer": "load balancer",
               "backups_bucket": "backups bucket", "alerting": "alerting"}


def change_lines(changes: Mapping[str, Any]) -> list[str]:
    """The comparison as lines, most consequential first (replacements), the cost last."""
    if changes["base"] != "ok":
        lines = [f"main's plan cannot be compared ({changes['why']})"]
    else:
        lines = []
        nodes = changes["nodes"]
        for item in nodes["replaced"]:
            lines.append(f"REPLACED {item['name']} ({'; '.join(item['because'])}): {item['how']}")
        for item in nodes["resized"]:
            lines.append(f"resized {item['name']} {item['size'][0]} -> {item['size'][1]}, {item['how']}")
        if not nodes["replacement_inputs_known"]:
            lines.append("replacements unknown: main's plan predates the droplets' replacement inputs")
        for section, noun in (("pools", "pool"), ("nodes", "node"), ("services", "service"), ("routes", "route")):
            found = changes[section]
            lines += [f"{noun} added: {name}" for name in found["added"]]
            lines += [f"{noun} removed: {name}" for name in found["removed"]]
            lines += [f"{noun} {item['name']}: {'; '.join(item['changes'])}" for item in found.get("changed", [])]
        if not lines:
            lines.append("no change to pools, nodes, services or routes")
    if (cost := cost_line(changes.get("cost"))) is not None:
        lines.append(cost)
    return lines


def cost_line(cost: Mapping[str, Any] | None) -> str | None:
    if cost is None:
        return None
    if cost["delta"] is None:
        return "cost change: unknown (main's plan has no figures)"
    sign = "+" if cost["delta"] >= 0 else "-"
    items = ", ".join(f"{_COST_NAMES.get(k, k)} {'+' if d >= 0 else '-'}${abs(d):,.2f}" for k, d in cost["items"].items())
    return (f"cost change: {sign}${abs(cost['delta']):,.2f}/month, ${cost['before']:,.2f} -> ${cost['after']:,.2f}"
            + (f" ({items})" if items else ""))
