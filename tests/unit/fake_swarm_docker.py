#!/usr/bin/env python3
"""A stand-in `docker` CLI for the retire script: a swarm's nodes, services and tasks, read from
$FAKE/swarm.json, with every call appended to $FAKE/calls (a timestamp, then the arguments).

Tasks change over time after a node is drained: `phases` lists, per drained node, the task sets
that hold from `at` seconds after its drain on (the last one whose `at` has passed). Before any
drain, `tasks` holds. Only what swarm.node_scripts.day2.retire_script and the daemon drain and return scripts ask is answered.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FAKE = Path(os.environ["FAKE"])
VALUE_OPTIONS = {"--format", "--availability", "--filter", "--type"}


def save(swarm: dict) -> None:
    """Replace the state whole: scripts retiring two nodes at once run this CLI side by side, and a
    reader must never see a file half written."""
    partial = FAKE / f"swarm.json.{os.getpid()}"
    partial.write_text(json.dumps(swarm))
    partial.replace(FAKE / "swarm.json")


def main(argv: list[str]) -> int:
    with open(FAKE / "calls", "a") as calls:
        calls.write(f"{time.time():.3f} {' '.join(argv)}\n")
    swarm = json.loads((FAKE / "swarm.json").read_text())
    nodes = swarm["nodes"]
    options = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i] in VALUE_OPTIONS}
    words = [a for i, a in enumerate(argv) if not a.startswith("-") and not (i and argv[i - 1] in options)]
    tasks = current_tasks(swarm)
    fmt = options.get("--format", "")

    if words[:1] == ["info"]:  # {{.Swarm.NodeID}}: the manager the script runs on
        print(swarm.get("self", "m4n4g3r"))
        return 0
    if words[:2] == ["node", "inspect"]:
        node = nodes.get(words[2])
        if node is None:
            print(f"Error: No such node: {words[2]}", file=sys.stderr)
            return 1
        if fmt.startswith("{{index .Description.Engine.Labels"):
            # The daemon-settings label: `engine_label`, or `restarted_label` once the node has
            # been drained for `restart_after` seconds (its own command restarted Docker).
            drained = swarm.get("drained_at", {}).get(words[2])
            restarted = drained is not None and time.time() - drained >= node.get("restart_after", 0)
            print(node.get("restarted_label", "") if restarted and "restarted_label" in node
                  else node.get("engine_label", ""))
            return 0
        status = node.get("manager", "")  # Leader, Reachable or "" (no raft member)
        if fmt == "{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}":
            print("reachable" if status else "")
            return 0
        if fmt == "{{if .ManagerStatus}}{{.ManagerStatus.Leader}}{{end}}":
            print(("true" if status == "Leader" else "false") if status else "")
            return 0
        if fmt == "{{.Status.State}} {{.Spec.Availability}}":
            print(node["state"], node["availability"])
            return 0
        field = {"{{.Description.Hostname}}": "hostname", "{{.Spec.Availability}}": "availability",
                 "{{.Status.State}}": "state", "{{.Spec.Role}}": "role"}.get(fmt)
        print(node[field] if field else json.dumps(node))
        return 0
    if words[:2] == ["node", "ps"]:
        print("\n".join(t["id"] for t in tasks if t["node"] == words[2]))
        return 0
    if words[:2] == ["node", "update"]:
        availability = options["--availability"]
        nodes[words[2]]["availability"] = availability
        if availability == "drain":
            swarm.setdefault("drained_at", {})[words[2]] = time.time()
        save(swarm)
        return 0
    if words[:2] == ["node", "ls"]:  # --format '{{.ID}} {{.ManagerStatus}}'
        print("\n".join(f"{node_id} {node.get('manager', '')}" for node_id, node in nodes.items()))
        return 0
    if words[:2] == ["node", "demote"]:
        # A leader hands leadership to another reachable manager as it leaves the raft.
        node = nodes[words[2]]
        if node.get("manager") == "Leader":
            other = next((n for i, n in nodes.items() if i != words[2] and n.get("manager") == "Reachable"), None)
            if other is not None:
                other["manager"] = "Leader"
        node.update(role="worker", manager="")
        save(swarm)
        return 0
    if words[:2] == ["node", "promote"]:
        nodes[words[2]].update(role="manager", manager="Reachable")
        save(swarm)
        return 0
    if words[:2] == ["node", "rm"]:
        del nodes[words[2]]
        save(swarm)
        return 0
    if words[0] == "inspect":  # --type task
        by_id = {t["id"]: t for t in tasks}
        for task_id in words[1:]:
            task = by_id[task_id]
            if fmt == "{{.ServiceID}}":
                print(task["service"])
            else:  # {{.Status.State}} {{if .Status.Err}}err{{else}}-{{end}} {{.NodeID}}
                print(task["state"], "err" if task.get("err") else "-", task["node"])
        return 0
    if words[:2] == ["service", "inspect"]:
        service = swarm["services"][words[2]]
        if "Replicated" in fmt:
            print("" if service["replicas"] is None else service["replicas"])
        else:
            print(service["name"])
        return 0
    if words[:2] == ["service", "update"]:  # --force: the service's tasks spread again
        spread = swarm.get("spread", {}).get(words[2])
        if spread:
            swarm["tasks"] = spread
            save(swarm)
        return 0
    if words[:2] == ["service", "ps"]:
        running = [t for t in tasks if t["service"] == words[2] and t["desired"] == "running"]
        node_filters = [argv[i + 1][5:] for i in range(len(argv) - 1) if argv[i] == "--filter" and argv[i + 1].startswith("node=")]
        if node_filters:
            running = [t for t in running if t["node"] in node_filters]
        if "-q" in argv:
            print("\n".join(t["id"] for t in running))
        else:  # --format {{.Error}}
            print("\n".join(f'"{t.get("err", "")}"' for t in running))
        return 0
    print(f"fake docker: unexpected call {argv}", file=sys.stderr)
    return 2


def current_tasks(swarm: dict) -> list[dict]:
    tasks = swarm["tasks"]
    for node, drained in swarm.get("drained_at", {}).items():
        elapsed = time.time() - drained
        for phase in swarm.get("phases", {}).get(node, []):
            if elapsed >= phase["at"]:
                tasks = phase["tasks"]
    return tasks


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
