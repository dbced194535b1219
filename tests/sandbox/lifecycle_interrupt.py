"""An `up` cut off in the middle of a drain (issue 20: an interrupted drain heals), for the lifecycle
scenarios (tests/sandbox/lifecycle.py): while the first `up` runs, a watcher waits until a chosen
node is drained for its Docker restart, then kills the drain's script on the manager together with
its SSH session, as a dropped connection or a killed deploy does (SIGKILL: no trap runs, the
retirement slot stays behind with a dead holder). The `up` fails on that command; the scenario then
runs `up` again, which must heal: the node ends Ready and Active and takes tasks again.
"""

from __future__ import annotations

import threading
import time

DRAINED_WAIT_SECONDS = 300


class DrainCutter:
    """In a thread: once `hostname` is drained (asked of the manager at the reserved IP), kill the
    drain script (MODE restart, its node ID) and its SSH session on that manager. `cut` says what
    was killed; empty when the node was never seen drained."""

    def __init__(self, cloud, hostname: str):
        self.cloud = cloud
        self.hostname = hostname
        self.cut = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DrainCutter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _manager(self):
        with self.cloud.lock:
            addresses = list(self.cloud.reserved)
        return self.cloud.host_at(addresses[0]) if addresses else None

    def _watch(self) -> None:
        deadline = time.monotonic() + DRAINED_WAIT_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            manager = self._manager()
            if manager is not None:
                result = manager.exec(f"docker node inspect --format '{{{{.Spec.Availability}}}} {{{{.ID}}}}' "
                                      f"{self.hostname}", check=False, timeout=10)
                availability, _, node_id = result.stdout.strip().partition(" ")
                if result.returncode == 0 and availability == "drain":
                    self.cut = self._kill(manager, node_id)
                    if self.cut:
                        return
            self._stop.wait(0.2)

    def _kill(self, manager, node_id: str) -> str:
        # The drain script's command line holds its rendered inputs, NODE=<id> first and
        # MODE=restart a few lines on ('[N]' keeps this shell's own command line from matching).
        # These hosts share the machine's process namespace: the node ID makes the match unique,
        # and only a script whose parent is an SSH session (sshd) is killed, never the runner's
        # own `ssh` client, whose command line holds the same text.
        script = (
            f"for pid in $(pgrep -f '[N]ODE={node_id}.*MODE=restart'); do "
            "session=$(ps -o ppid= -p \"$pid\" | tr -d ' '); "
            "case \"$(ps -o comm= -p \"$session\")\" in sshd*) ;; *) continue ;; esac; "
            "kill -KILL \"$pid\" \"$session\" 2>/dev/null && echo \"$pid/$session\"; "
            "done"
        )
        result = manager.exec(script, check=False, timeout=10)
        killed = result.stdout.split()
        return f"killed the drain of {self.hostname} ({node_id}) on {manager.name}: {', '.join(killed)}" if killed else ""


def takes_tasks(manager, hostname: str, service: str) -> str:
    """Force a rolling update of `service` and return a problem when none of its tasks runs on
    `hostname` afterwards (empty when one does): a node Active again gets its share (the
    scheduler spreads a service's tasks over the nodes with fewest)."""
    update = manager.exec(f"docker service update --force --detach=false --quiet {service}", check=False, timeout=180)
    if update.returncode != 0:
        return f"the forced update of {service} failed: {update.stderr.strip()[:200]}"
    nodes = manager.exec(f"docker service ps --filter desired-state=running --format '{{{{.Node}}}}' {service}",
                         check=False, timeout=20).stdout.split()
    return "" if hostname in nodes else f"{hostname} took no task of {service} (its tasks run on {', '.join(nodes)})"
