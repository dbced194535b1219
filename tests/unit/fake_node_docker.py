#!/usr/bin/env python3
"""A stand-in `docker` CLI for the join, init, join-tokens and settings scripts: one node's swarm
state in $FAKE/node.json; every call appended to $FAKE/calls.jsonl as its argument list.

`swarm join` leaves the node in `join_result` (default active) and fails when `join_fails`,
`swarm leave` makes it inactive. `demoted_meanwhile`: the node's demotion of itself fails (another
manager demoted it first).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FAKE = Path(os.environ["FAKE"])


def main(argv: list[str]) -> int:
    with open(FAKE / "calls.jsonl", "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    state = json.loads((FAKE / "node.json").read_text())
    command = " ".join(argv)
    if argv[:1] == ["info"]:
        fmt = argv[argv.index("--format") + 1]
        if "LocalNodeState" in fmt and "ControlAvailable" in fmt:
            print(state["local"], str(state.get("control", False)).lower())
        elif "LocalNodeState" in fmt:
            print(state["local"])
        elif "RemoteManagers" in fmt:
            # `managers_seen`: the lists successive calls see (a manager that joined a moment ago)
            seen = state.get("managers_seen")
            managers = seen.pop(0) if seen and len(seen) > 1 else seen[0] if seen else state.get("managers", [])
            print("".join(f"{addr} " for addr in managers))
        elif "Swarm.Managers" in fmt:
            print(state.get("managers_count", 1))
        elif "NodeAddr" in fmt:
            print(state.get("addr", "10.110.0.9"))
        elif "ControlAvailable" in fmt:
            print(str(state.get("control", False)).lower())
        else:
            print(state.get("id", "n0d3"))
    elif command.startswith("swarm leave"):
        state["local"] = "inactive"
    elif command.startswith("swarm join-token"):
        print(state["tokens"][argv[-1]])
    elif command.startswith("swarm join"):
        state["local"] = state.get("join_result", "active")
        if state.get("join_fails"):
            print("Error response from daemon: could not join", file=sys.stderr)
            (FAKE / "node.json").write_text(json.dumps(state))
            return 1
    elif command.startswith("swarm init"):
        state["local"] = "active"
    elif argv[:2] == ["node", "inspect"]:
        fmt = argv[argv.index("--format") + 1]
        if "ManagerStatus.Addr" in fmt:
            print({**state.get("other_managers", {}), **state.get("addresses", {})}[argv[-1]])
        elif "ManagerStatus.Reachability" in fmt:  # a promoted worker: `reachable` once it is one
            print(state.get("reachability", {}).get(argv[-1], ""))
        elif "Spec.Role" in fmt:
            print(state.get("roles", {}).get(argv[-1], state.get("role", "worker")))
        elif "range" in fmt:
            print("".join(f"{key}\n" for key in state.get("labels", [])))
        else:
            print("{}")
    elif argv[:2] == ["node", "demote"] and argv[2] == state.get("id"):
        state["control"] = False  # this node itself
        if state.get("demoted_meanwhile"):  # by its retirement, on another manager, a moment before
            print("Error response from daemon: This node is not a swarm manager.", file=sys.stderr)
            (FAKE / "node.json").write_text(json.dumps(state))
            return 1
    elif argv[:2] == ["node", "demote"] and argv[2] in state.get("roles", {}):  # another node, from here
        state["roles"][argv[2]] = "worker"
    elif argv[:2] in (["node", "update"], ["node", "promote"], ["node", "demote"]):
        pass
    elif argv[:2] == ["node", "ls"] and "role=worker" in argv:  # -q, or ID status availability
        print("\n".join(row[0] if "-q" in argv else " ".join(row) for row in state.get("workers", [])))
    elif argv[:2] == ["node", "ls"] and "--format" in argv:  # ID hostname status
        print("\n".join(" ".join(row) for row in state.get("node_table", [])))
    elif argv[:2] == ["node", "ls"]:  # -q [--filter role=manager]: this node, then the other managers
        print("\n".join([state.get("id", "n0d3"), *state.get("other_managers", {})]))
    elif argv[:3] == ["node", "rm", "--force"]:
        pass
    else:
        print(f"fake docker: unexpected call {argv}", file=sys.stderr)
        return 2
    (FAKE / "node.json").write_text(json.dumps(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
