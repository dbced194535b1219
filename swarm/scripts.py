"""Shell scripts run on the nodes by the program's remote commands.

Each function returns a complete POSIX sh script. Every script is idempotent: running it again
on a node that is already in the wanted state changes nothing and succeeds. Values are
substituted with shlex.quote; secrets (join tokens) never appear here: they arrive on stdin.
The sandbox test suite runs these very functions' output against real dockerd hosts.
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping, NamedTuple, Sequence

# Overlay networks get /24s from this pool. Docker's default (10.0.0.0/8) overlaps every
# 10.x VPC; this narrower pool only collides with a VPC inside 10.0.0.0/16, which the config
# refuses.
SWARM_ADDRESS_POOL = "10.0.0.0/16"
SWARM_PORT = 2377

_HEADER = "#!/bin/sh\nset -eu\n"
HEADER = _HEADER  # for swarm/day2_scripts.py

# A service counts as converged once its tasks have run for this long without a change, as
# `docker service create` verifies a new service before it returns.
STABLE_SECONDS = 5
# Service and node names, safe as words of a shell script.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAFE_WORD = _SAFE_WORD  # for swarm/day2_scripts.py

# Prints this node's swarm state; an unreachable daemon fails the script.
_LOCAL_STATE = "docker info --format '{{.Swarm.LocalNodeState}}'"


def wait_ready_script(timeout_seconds: int = 900) -> str:
    """Wait until first-boot provisioning is over and Docker answers.

    On droplets cloud-init installs Docker; `cloud-init status --wait` exits 0 when done and 2
    when done with recoverable errors (a deprecation, a transient apt warning): both leave a
    usable node, so only Docker's answer decides. Hosts without cloud-init skip that step.
    """
    return _HEADER + f"""\
if command -v cloud-init >/dev/null 2>&1; then
  status=0
  cloud-init status --wait >/dev/null || status=$?
  if [ "$status" -eq 1 ]; then
    cloud-init status --long >&2
    echo "cloud-init failed on $(hostname); see /var/log/cloud-init-output.log" >&2
    exit 1
  fi
fi
deadline=$(( $(date +%s) + {int(timeout_seconds)} ))
until docker info >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "Docker did not answer on $(hostname) within {int(timeout_seconds)}s" >&2
    exit 1
  fi
  sleep 2
done
docker version --format '{{{{.Server.Version}}}}'
"""


def init_script(advertise_addr: str, state_dir: str | None = None) -> str:
    """Bring the first manager into the swarm, advertising its VPC address. Prints the node ID.

    A swarm is initialised only when no existing swarm can be found, never as a side effect of a
    replacement. In order, an `inactive` node:
    1. joins the swarm the other managers hold, when any does: stdin carries one line
       `<address> <manager join token>` per manager that is in a swarm (manager_probe_script,
       run on each of them just before). This is the first of three managers replaced: its
       successor joins the two that kept quorum, and the old node is retired afterwards. A swarm
       found but refusing every join fails the script: initialising would split it.
    2. with `state_dir` (on the manager's block-storage volume), restores the swarm state its
       predecessor kept there (handover_script), as Docker's admin guide recovers a
       manager: the state copied back while Docker is stopped, then `swarm init
       --force-new-cluster`. The kept state names the old droplet's address, which is rewritten
       to this one's first, else the restored manager cannot listen. Services, secrets,
       configs, networks and node labels come back with their IDs; the workers rejoin (their
       join command sees the new manager address).
    3. otherwise initialises a new swarm: the cluster's first `up`.

    Only an `inactive` node is brought in. A node that is `pending` or in `error` (a join or an
    init that never completed) or `locked` is neither taken for a working manager nor reset: it
    may hold swarm state, so the script stops and says what to look at.
    """
    addr = shlex.quote(advertise_addr)
    restore = "" if state_dir is None else _restore_block(advertise_addr, state_dir)
    roster = shlex.quote(f"{state_dir}/{MANAGERS_FILE}") if state_dir else "/dev/null"
    refuse = "" if state_dir is None else f"""\
if [ "$state" = inactive ] && [ -d {shlex.quote(state_dir)} ]; then
  echo "$(hostname): {state_dir} on this volume belonged to a manager of a swarm, but no manager holds it any more and no kept state is there: not initialising a new, empty swarm over it. Restore the swarm state (docs/day-2-operations.md), or remove {state_dir} to start afresh" >&2
  exit 1
fi
"""
    return _HEADER + f"""\
state=$({_LOCAL_STATE})
if [ "$state" = inactive ]; then
  found=""
  # The probes' answers first, then the managers the predecessor listed on the volume.
  while read -r peer token; do
    [ -n "$token" ] || continue
    found="$found $peer"
    if docker swarm join --advertise-addr {addr} --listen-addr {addr}:{SWARM_PORT} --token "$token" "$peer:{SWARM_PORT}" >/dev/null; then
      echo "$(hostname): joined the swarm the manager at $peer holds" >&2
      state=$({_LOCAL_STATE})
      break
    fi
    # A join that failed half-way leaves the node pending: clear it before the next manager.
    if [ "$({_LOCAL_STATE})" != inactive ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  done <<PEERS
$(cat; if [ -f {roster} ]; then cat {roster}; fi)
PEERS
  if [ "$state" = inactive ] && [ -n "$found" ]; then
    echo "$(hostname): the managers at$found hold a swarm that refused this node; not initialising another (see docker info there)" >&2
    exit 1
  fi
fi
{restore}{refuse}case "$state" in
  inactive)
    docker swarm init --advertise-addr {addr} --listen-addr {addr}:{SWARM_PORT} \\
      --default-addr-pool {SWARM_ADDRESS_POOL} --default-addr-pool-mask-length 24 >/dev/null
    ;;
  active)
    if [ "$(docker info --format '{{{{.Swarm.ControlAvailable}}}}')" != true ]; then
      echo "$(hostname) is in a swarm but not as a manager; it cannot init this one" >&2
      exit 1
    fi
    ;;
  *)
    echo "$(hostname): swarm state '$state' is not a working manager (pending or error: a join or init that did not complete; locked: run docker swarm unlock); see docker info" >&2
    exit 1
    ;;
esac
if [ -f {roster} ]; then rm -f {roster}; fi
docker info --format '{{{{.Swarm.NodeID}}}}'
"""


def manager_probe_script() -> str:
    """Run on a manager other than the first: print `<address> <manager join token>` when it is
    a manager of a swarm that has a leader, nothing otherwise. The first manager's init reads
    these lines to join an existing swarm rather than start one. Its output must be marked
    secret and not logged."""
    return _HEADER + """\
if [ "$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')" != "active true" ]; then
  exit 0
fi
# A manager cut off from the others has no leader: its token would be refused.
if ! docker node ls -q >/dev/null 2>&1; then
  exit 0
fi
printf '%s %s\\n' "$(docker info --format '{{.Swarm.NodeAddr}}')" "$(docker swarm join-token -q manager)"
"""


def join_tokens_script() -> str:
    """Print both join tokens as JSON. Its output must be marked secret and not logged.

    An empty token (a manager that lost its swarm) fails here, rather than as a baffling join
    error on every node.
    """
    return _HEADER + """\
worker=$(docker swarm join-token -q worker)
manager=$(docker swarm join-token -q manager)
if [ -z "$worker" ] || [ -z "$manager" ]; then
  echo "$(hostname): docker swarm join-token returned an empty token; is this node still a swarm manager?" >&2
  exit 1
fi
printf '{"worker":"%s","manager":"%s"}\\n' "$worker" "$manager"
"""


def join_script(advertise_addr: str, manager_addr: str, manager_addrs: Sequence[str] = (),
                manager_wait_seconds: int = 30) -> str:
    """Join the swarm whose manager listens on `manager_addr`, with the token read from stdin.

    Only an `active` node that knows that manager counts as joined, and is left alone. A node
    that does not know it yet, but knows another of today's managers (`manager_addrs`, every
    manager's VPC address), is in the right swarm: that manager joined it a moment ago (the
    successor of a replaced first manager) and reaches the node's manager list within seconds,
    so the script waits up to `manager_wait_seconds` for it. A node that knows none of today's
    managers is in another swarm, or in one whose manager moved (a lone manager replaced and
    restored on its successor): it leaves and joins again at once, as does a node stuck
    `pending` or in `error` (a join that never completed, whichever manager it names). Prints
    the node ID.
    """
    addr = shlex.quote(advertise_addr)
    manager = shlex.quote(f"{manager_addr}:{SWARM_PORT}")
    current = " ".join(shlex.quote(f"{a}:{SWARM_PORT}") for a in sorted({manager_addr, *manager_addrs}))
    return _HEADER + f"""\
manager={manager}
IFS= read -r token || {{ echo "no join token on stdin" >&2; exit 1; }}
state=$({_LOCAL_STATE})
case "$state" in
  active)
    known=" $(docker info --format '{{{{range .Swarm.RemoteManagers}}}}{{{{.Addr}}}} {{{{end}}}}')"
    ours=""
    set -- {current}  # today's managers
    for address in "$@"; do
      case "$known" in *" $address "*) ours=1 ;; esac
    done
    deadline=$(( $(date +%s) + {int(manager_wait_seconds)} ))
    until case "$known" in
            *" $manager "*) true ;;
            *) false ;;
          esac; do
      if [ -z "$ours" ] || [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$(hostname): in a swarm that does not know the manager $manager: leaving it to join that one" >&2
        docker swarm leave --force >/dev/null
        state=inactive
        break
      fi
      sleep 1
      known=" $(docker info --format '{{{{range .Swarm.RemoteManagers}}}}{{{{.Addr}}}} {{{{end}}}}')"
    done
    ;;
  pending | error)
    docker swarm leave --force >/dev/null
    state=inactive
    ;;
  inactive) ;;
  *)
    echo "$(hostname): unexpected swarm state '$state' (locked: run docker swarm unlock)" >&2
    exit 1
    ;;
esac
if [ "$state" = inactive ]; then
  docker swarm join --advertise-addr {addr} --listen-addr {addr}:{SWARM_PORT} --token "$token" "$manager" >/dev/null
fi
state=$({_LOCAL_STATE})
if [ "$state" != active ]; then
  echo "$(hostname): swarm state '$state' after joining $manager, not active" >&2
  exit 1
fi
docker info --format '{{{{.Swarm.NodeID}}}}'
"""


def node_settings_script(node_id: str, role: str, labels: Mapping[str, str]) -> str:
    """Run on a manager: give node `node_id` its declared role and exactly its declared labels.

    Labels are authoritative: a label the config does not declare is removed, so removing a
    label from the config removes it from the node. Every key and value is quoted, also keys
    added by hand with blanks or shell characters in them. Prints the node's labels as JSON.
    """
    node = shlex.quote(node_id)
    wanted = "".join(f"{key}\n" for key in sorted(labels))
    adds = " ".join(f"--label-add {shlex.quote(f'{key}={value}')}" for key, value in sorted(labels.items()))
    return _HEADER + f"""\
node={node}
# The declared label keys, one a line.
wanted={shlex.quote(wanted)}
current_role=$(docker node inspect --format '{{{{.Spec.Role}}}}' "$node")
if [ "$current_role" != {shlex.quote(role)} ]; then
  docker node {"promote" if role == "manager" else "demote"} "$node" >/dev/null
fi
keys=$(docker node inspect --format '{{{{range $k, $v := .Spec.Labels}}}}{{{{println $k}}}}{{{{end}}}}' "$node")
# The positional parameters collect one quoted `--label-rm KEY` per undeclared key.
set --
while IFS= read -r key; do
  if [ -n "$key" ] && ! printf '%s' "$wanted" | grep -qxF -e "$key"; then
    set -- "$@" --label-rm "$key"
  fi
done <<EOF
$keys
EOF
docker node update "$@" {adds} "$node" >/dev/null
docker node inspect --format '{{{{json .Spec.Labels}}}}' "$node"
"""


class Folder(NamedTuple):
    """A bind-mount source on a node: created when missing; owner and mode set when declared."""

    path: str  # absolute
    owner: str | None = None  # user[:group], names or numeric ids, as chown takes it
    mode: str | None = None  # octal, as chmod takes it, e.g. "0750"


def prepare_folders_script(folders: Sequence[Folder]) -> str:
    """Make every bind-mount source exist, with its declared owner and mode.

    Swarm refuses to start a task whose bind source is missing ("invalid mount config"). A path
    that exists is kept as it is (it may be a file or a socket such as /var/run/docker.sock):
    only a declared owner or mode is applied, never recursively, since the contents belong to
    the service. Nothing is ever removed: the folders hold data. Prints owner, mode and path.
    """
    lines = []
    for folder in folders:
        path = shlex.quote(folder.path)
        lines.append(f"[ -e {path} ] || mkdir -p {path}")
        if folder.owner:
            lines.append(f"chown {shlex.quote(folder.owner)} {path}")
        if folder.mode:
            lines.append(f"chmod {shlex.quote(folder.mode)} {path}")
        lines.append(f"stat -c '%U:%G %a %n' {path}")
    return _HEADER + "\n".join(lines) + "\n"


class ConvergeTarget(NamedTuple):
    """What one deployed service converges to."""

    service: str  # deployed name, <stack>_<service>
    tasks: int  # running tasks: the replicas, or one per node for a global service
    nodes: tuple[str, ...] = ()  # global services: the nodes (hostnames) that each run one


def converge_script(targets: Sequence[ConvergeTarget], timeout_seconds: int, digest: str) -> str:
    """Run on a manager: wait until every service runs all its tasks, steadily for
    STABLE_SECONDS; after `timeout_seconds`, fail naming each service that does not, with its
    tasks' own errors (`no suitable node`, `invalid mount config`, a refused image pull, ...).

    A service whose update paused or rolled back fails at once: waiting cannot help. `digest`
    identifies the services' specs. It is only written into the script, so that the script, and
    with it the command, changes whenever a service does: Pulumi then runs it again.
    """
    for name in (word for target in targets for word in (target.service, *target.nodes)):
        if not _SAFE_WORD.match(name):
            raise ValueError(f"{name!r}: service and node names are letters, digits, '.', '_' and '-'")
    lines = "\n".join(" ".join((target.service, str(target.tasks), *target.nodes)) for target in targets)
    return _HEADER + f"""\
# services: {digest}
# One line per service: its name, the running tasks it needs and, if global, its nodes.
targets={shlex.quote(lines)}
timeout={int(timeout_seconds)}
started=$(date +%s)
deadline=$(( started + timeout ))

# why NAME TASKS [NODE...]: prints why service NAME has not converged, nothing once it has;
# fails when waiting cannot help.
why() {{
  name=$1 tasks=$2
  shift 2
  update=$(docker service inspect --format '{{{{if .UpdateStatus}}}}{{{{.UpdateStatus.State}}}}{{{{end}}}}' "$name")
  case "$update" in
    updating | rollback_started)
      echo "update in progress"
      return 0
      ;;
    paused | rollback_paused | rollback_completed)
      echo "update $update: $(docker service inspect --format '{{{{.UpdateStatus.Message}}}}' "$name")"
      return 1
      ;;
  esac
  nodes=$(docker service ps "$name" --filter desired-state=running --format '{{{{.CurrentState}}}}|{{{{.Node}}}}' |
    sed -n 's/^Running[^|]*|//p')
  if [ "$#" -gt 0 ]; then
    missing=""
    for node in "$@"; do
      printf '%s\\n' "$nodes" | grep -qxF "$node" || missing="$missing $node"
    done
    if [ -n "$missing" ]; then echo "no running task on$missing"; fi
  else
    running=$(printf '%s' "$nodes" | grep -c . || true)
    if [ "$running" -ne "$tasks" ]; then echo "$running of $tasks tasks running"; fi
  fi
}}

stable_since=""
while :; do
  report="" hopeless=""
  while read -r name tasks nodes; do
    # shellcheck disable=SC2086 # $nodes: node names, which contain no blanks
    reason=$(why "$name" "$tasks" $nodes </dev/null) || hopeless=1
    if [ -n "$reason" ]; then
      report="$report$name: $reason
"
    fi
  done <<EOF
$targets
EOF
  now=$(date +%s)
  if [ -z "$report" ]; then
    stable_since=${{stable_since:-$now}}
    if [ $(( now - stable_since )) -ge {STABLE_SECONDS} ]; then
      break
    fi
  elif [ -n "$hopeless" ] || [ "$now" -ge "$deadline" ]; then
    echo "not every service converged after $(( now - started ))s (swarm:convergeTimeout: ${{timeout}}s):" >&2
    printf '%s' "$report" | while IFS= read -r line; do
      echo "  $line"
      # Docker quotes each task's error, and prints "" for a task without one.
      docker service ps "${{line%%:*}}" --no-trunc --format '{{{{.Error}}}}' </dev/null |
        sed 's/^"\\(.*\\)"$/\\1/' | awk 'NF && !seen[$0]++' | head -n 3 | sed 's/^/    task error: /'
    done >&2
    exit 1
  else
    stable_since=""
  fi
  sleep 2
done
printf '%s\\n' "$targets" | while read -r name tasks nodes; do
  echo "$name: $tasks of $tasks tasks running"
done
"""


# The swarm state a lone manager keeps on its volume while its droplet is replaced.
SWARM_STATE_BACKUP = "swarm-state.tar.gz"
# The other managers (`<address> <manager join token>` lines) a first manager of several leaves on
# its volume before its droplet goes, for its successor to join when no probe finds them.
MANAGERS_FILE = "managers"


def swarm_state_dir(mount_path: str) -> str:
    """Where a manager keeps its swarm state on its block-storage volume."""
    return f"{mount_path.rstrip('/')}/.swarm-state"


def _restore_block(advertise_addr: str, state_dir: str) -> str:
    backup = shlex.quote(f"{state_dir}/{SWARM_STATE_BACKUP}")
    addr = shlex.quote(advertise_addr)
    # Messages go to stderr: the script's stdout is the node ID.
    return f"""\
backup={backup}
if [ "$state" = inactive ] && [ -f "$backup" ]; then
  echo "$(hostname): restoring the swarm state kept in $backup" >&2
  systemctl stop docker
  rm -rf /var/lib/docker/swarm
  tar -C /var/lib/docker -xzf "$backup"
  new={addr}
  old=$(sed -n 's/.*"LocalAddr":"\\([^"]*\\)".*/\\1/p' /var/lib/docker/swarm/docker-state.json)
  if [ -n "$old" ]; then
    sed -i "s/$(printf '%s' "$old" | sed 's/[.]/[.]/g')/$new/g" /var/lib/docker/swarm/docker-state.json
  fi
  systemctl start docker
  docker swarm init --force-new-cluster --advertise-addr "$new" --listen-addr "$new:{SWARM_PORT}" >/dev/null
  # Tasks the daemon tried to start while the cluster was being re-formed keep failing ("cannot
  # create a swarm scoped network when swarm is not active"): a restart starts them cleanly.
  systemctl restart docker
  tries=0
  until [ "$(docker info --format '{{{{.Swarm.ControlAvailable}}}}' 2>/dev/null)" = true ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
      echo "$(hostname): the restored manager did not come back within 60s; see docker info" >&2
      exit 1
    fi
    sleep 1
  done
  mv "$backup" "$backup.restored-$(date -u +%Y%m%dT%H%M%SZ)"
  state=$({_LOCAL_STATE})
fi
"""


def keep_swarm_state_script(state_dir: str | None, mount_path: str | None) -> str:
    """The create of the first manager's handover command: with a volume, check that the folder
    where a lone manager's state is kept (when its droplet is replaced) is on the mounted volume."""
    if state_dir is None or mount_path is None:
        return _HEADER + 'echo "$(hostname) hands over to the other managers (demoted) before its droplet goes"\n'
    return _HEADER + f"""\
if ! mountpoint -q {shlex.quote(mount_path)}; then
  echo "$(hostname): {mount_path} is not mounted: the swarm state could not be kept across a replacement" >&2
  exit 1
fi
mkdir -p {shlex.quote(state_dir)}
chmod 0700 {shlex.quote(state_dir)}
echo "swarm state kept in {state_dir} when this droplet is replaced"
"""


def handover_script(state_dir: str | None, demote_wait_seconds: int = 60) -> str:
    """Run on the first manager before its droplet goes (its handover command's delete).

    - One of several managers: it demotes itself, so that leadership moves to another manager
      while it is still up. Removing a leader's droplet instead leaves the swarm without a
      leader until an election (measured on the sandbox: about 20 s with no manager answering,
      every sample of the lifecycle report lost). Its successor then joins the managers left,
      and its old node is retired. With `state_dir`, it first writes the other managers'
      addresses and the manager join token there (MANAGERS_FILE, mode 0600): when every manager
      is replaced in one `up`, the probes find only new, empty droplets, and the successor
      joins the old managers, which live until the end of the run, from this list instead.
    - The only manager, with `state_dir` on its block-storage volume: it copies its swarm state
      there, which outlives the droplet, the way Docker's admin guide backs a manager up: Docker
      stopped, /var/lib/docker/swarm copied whole, Docker started again. Its successor restores
      it (init_script).
    """
    keep = "" if state_dir is None else f"""\
backup={shlex.quote(f"{state_dir}/{SWARM_STATE_BACKUP}")}
umask 077
mkdir -p "$(dirname "$backup")"
systemctl stop docker
trap 'systemctl start docker' EXIT
tar -C /var/lib/docker -czf "$backup.tmp" swarm
mv "$backup.tmp" "$backup"
sync
echo "kept the swarm state of $(hostname) in $backup ($(wc -c <"$backup") bytes)"
"""
    lone = keep or 'echo "$(hostname) is the only manager and has no volume: its swarm state goes with it"\n'
    roster = "" if state_dir is None else f"""\
  roster={shlex.quote(f"{state_dir}/{MANAGERS_FILE}")}
  self=$(docker info --format '{{{{.Swarm.NodeID}}}}')
  token=$(docker swarm join-token -q manager)
  (
    umask 077
    mkdir -p "$(dirname "$roster")"
    for id in $(docker node ls -q --filter role=manager); do
      [ "$id" != "$self" ] || continue
      address=$(docker node inspect --format '{{{{.ManagerStatus.Addr}}}}' "$id")
      printf '%s %s\\n' "${{address%:*}}" "$token"
    done >"$roster.tmp"
    mv "$roster.tmp" "$roster"
  )
"""
    return _HEADER + f"""\
if [ "$({_LOCAL_STATE})" != active ] || [ "$(docker info --format '{{{{.Swarm.ControlAvailable}}}}')" != true ]; then
  echo "$(hostname) is not a swarm manager: nothing to hand over"
  exit 0
fi
managers=$(docker info --format '{{{{.Swarm.Managers}}}}')
if [ "$managers" -gt 1 ]; then
{roster}  docker node demote "$(docker info --format '{{{{.Swarm.NodeID}}}}')" >/dev/null
  deadline=$(( $(date +%s) + {int(demote_wait_seconds)} ))
  until [ "$(docker info --format '{{{{.Swarm.ControlAvailable}}}}')" = false ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$(hostname) is still a manager {int(demote_wait_seconds)}s after its demotion; see docker node ls" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$(hostname) handed over to the other $((managers - 1)) managers (demoted)"
  exit 0
fi
{lone}"""

