"""An `up` cut off in the middle of a drain (issue 20: an interrupted drain heals), for the lifecycle
scenarios (tests/sandbox/lifecycle.py): while the first `up` runs, a watcher on the manager waits
until a chosen node's drain script (for its Docker restart) runs and the node is drained, then
kills that script together with its SSH session, as a dropped connection or a killed deploy does
(SIGKILL: no trap runs, the retirement slot stays behind with a dead holder). The `up` fails on
that command; the scenario then runs `up` again, which must heal: the node ends Ready and Active
and takes tasks again.
"""

from __future__ import annotations

import threading

WATCH_SECONDS = 300
STOP_FILE = "/run/lifecycle-drain-cutter.stop"

# Runs on the manager's console (nsenter), every 0.1 s: a poll from the test runner, each one a
# process started in the host's namespaces, missed drains that end within a second. The drain
# script's command line holds its rendered inputs, NODE=<id> first and MODE=restart a few lines
# on ('[N]' keeps this loop's own command line from matching). The hosts share the machine's
# process namespace: the node ID makes the match unique, and only a script whose parent is an SSH
# session (sshd) is killed, never the runner's own `ssh` client, whose command line holds the
# same text. Prints `<script pid>/<session pid>` once it cut; exits 1 when told to stop first.
_CUTTER = r"""
rm -f "$STOP"
deadline=$(( $(date +%s) + WATCH ))
while [ "$(date +%s)" -lt "$deadline" ] && [ ! -e "$STOP" ]; do
  for pid in $(pgrep -f "[N]ODE=$ID.*MODE=restart"); do
    session=$(ps -o ppid= -p "$pid" | tr -d ' ')
    case "$(ps -o comm= -p "$session")" in sshd*) ;; *) continue ;; esac
    if [ "$(docker node inspect --format '{{.Spec.Availability}}' "$ID" 2>/dev/null)" = drain ]; then
      kill -KILL "$pid" "$session" && echo "$pid/$session" && exit 0
    fi
  done
  sleep 0.1
done
exit 1
"""


class DrainCutter:
    """In a thread, for as long as the `with` block runs: the watcher above on the manager at the
    reserved IP, for node `hostname`. `cut` says what was killed; empty when nothing was."""

    def __init__(self, cloud, hostname: str):
        self.cloud = cloud
        self.hostname = hostname
        self.cut = ""
        self.seen = ""  # why nothing was cut, when nothing was
        with cloud.lock:
            addresses = list(cloud.reserved)
        self.manager = cloud.host_at(addresses[0]) if addresses else None
        self.node_id = ""
        if self.manager is not None:
            self.node_id = self.manager.exec(f"docker node inspect --format '{{{{.ID}}}}' {hostname}",
                                             check=False, timeout=20).stdout.strip()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DrainCutter:
        if self.manager is None or not self.node_id:
            self.seen = f"no manager at the reserved IP knows {self.hostname}"
        else:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.manager.exec(f"touch {STOP_FILE}", check=False, timeout=20)
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        script = f"ID={self.node_id}\nSTOP={STOP_FILE}\nWATCH={WATCH_SECONDS}\n{_CUTTER}"
        try:
            result = self.manager.exec(script, check=False, timeout=WATCH_SECONDS + 30)
        except Exception as error:  # noqa: BLE001 - reported as what was seen
            self.seen = f"the watcher failed: {error}"
            return
        if result.returncode == 0 and result.stdout.strip():
            self.cut = (f"killed the drain of {self.hostname} ({self.node_id}) and its SSH session on "
                        f"{self.manager.name}: {result.stdout.strip()}")
        else:
            self.seen = f"its drain script was never found running while it was drained {result.stderr.strip()[:120]}"


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
