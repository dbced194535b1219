"""Shell scripts run on the nodes by the program's remote commands.

Each function renders one of the files in swarm/node_scripts/ (see its docstring): a complete
POSIX sh script with its inputs assigned, quoted, at the top. Every script is idempotent:
running it again on a node that is already in the wanted state changes nothing and succeeds.
Secrets (join tokens) never appear here: they arrive on stdin. The sandbox test suite runs
these very functions' output against real dockerd hosts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from swarm.model import SWARM_ADDRESS_POOL, Folder
from swarm.node_scripts import template

SWARM_PORT = 2377

# A service counts as converged once its tasks have run for this long without a change, as
# `docker service create` verifies a new service before it returns.
STABLE_SECONDS = 5
# Service and node names, safe as words of a shell script.
_SAFE_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SAFE_WORD = _SAFE_WORD  # for swarm/node_scripts/day2.py


# How long a new droplet may take to answer SSH, finish cloud-init and run Docker.
READY_TIMEOUT_SECONDS = 900


def wait_ready_script(timeout_seconds: int = READY_TIMEOUT_SECONDS) -> str:
    """Wait until first-boot provisioning is over and Docker answers.

    On droplets cloud-init installs Docker; `cloud-init status --wait` exits 0 when done and 2
    when done with recoverable errors (a deprecation, a transient apt warning): both leave a
    usable node, so only Docker's answer decides. Hosts without cloud-init skip that step.
    """
    return template.render("wait_ready", TIMEOUT=int(timeout_seconds))


# How long a lone manager's successor keeps the stand-in a manager after joining it: the workers
# learn the new manager from the stand-in at its next heartbeats (5 s each).
STANDIN_GRACE_SECONDS = 15


def init_script(advertise_addr: str, state_dir: str | None = None, standin_grace_seconds: int = STANDIN_GRACE_SECONDS) -> str:
    """Bring the first manager into the swarm, advertising its VPC address. Prints the node ID.

    A swarm is initialised only when no existing swarm can be found, never as a side effect of a
    replacement. In order, an `inactive` node:
    1. joins the swarm the other managers hold, when any does (or the worker a lone predecessor
       promoted to stand in for it, handover_script; demoted `standin_grace_seconds` after the
       join, once the workers know this manager): stdin carries one line
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
    # Without a volume: no kept state, no list of managers, nothing to refuse over.
    kept = {"STATE_DIR": "", "STATE_BACKUP": "", "ROSTER": "", "STANDINS": ""} if state_dir is None else {
        "STATE_DIR": state_dir, "STATE_BACKUP": f"{state_dir}/{SWARM_STATE_BACKUP}", "ROSTER": f"{state_dir}/{MANAGERS_FILE}",
        "STANDINS": f"{state_dir}/{STANDINS_FILE}",
    }
    return template.render("init", ADDR=advertise_addr, PORT=SWARM_PORT, ADDRESS_POOL=SWARM_ADDRESS_POOL,
                               STANDIN_GRACE=int(standin_grace_seconds), **kept)


def manager_probe_script() -> str:
    """Run on a manager other than the first: print `<address> <manager join token>` when it is
    a manager of a swarm that has a leader, nothing otherwise. The first manager's init reads
    these lines to join an existing swarm rather than start one. Its output must be marked
    secret and not logged."""
    return template.render("manager_probe")


def join_tokens_script() -> str:
    """Print both join tokens as JSON. Its output must be marked secret and not logged.

    An empty token (a manager that lost its swarm) fails here, rather than as a baffling join
    error on every node.
    """
    return template.render("join_tokens")


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
    managers = " ".join(f"{address}:{SWARM_PORT}" for address in sorted({manager_addr, *manager_addrs}))
    return template.render(
        "join", ADDR=advertise_addr, PORT=SWARM_PORT, MANAGER=f"{manager_addr}:{SWARM_PORT}", MANAGERS=managers,
        MANAGER_WAIT=int(manager_wait_seconds),
    )


def node_settings_script(node_id: str, role: str, labels: Mapping[str, str]) -> str:
    """Run on a manager: give node `node_id` its declared role and exactly its declared labels.

    Labels are authoritative: a label the config does not declare is removed, so removing a
    label from the config removes it from the node. Every key and value is quoted, also keys
    added by hand with blanks or shell characters in them. Prints the node's labels as JSON.
    """
    for key, value in labels.items():
        if "=" in key or "\n" in key or "\n" in value:
            raise ValueError(f"{key!r}: {value!r}: label keys hold no '=' and no newline, values no newline")
    return template.render(
        "settings", NODE=node_id, ROLE=role, LABELS="".join(f"{key}={labels[key]}\n" for key in sorted(labels))
    )


def prepare_folders_script(folders: Sequence[Folder]) -> str:
    """Make every bind-mount source exist, with its declared owner and mode.

    Swarm refuses to start a task whose bind source is missing ("invalid mount config"). A path
    that exists is kept as it is (it may be a file or a socket such as /var/run/docker.sock):
    only a declared owner or mode is applied, never recursively, since the contents belong to
    the service. Nothing is ever removed: the folders hold data. Prints owner, mode and path.
    """
    lines = []
    for folder in folders:
        if "\n" in folder.path or any(" " in value or "\n" in value for value in (folder.owner or "", folder.mode or "")):
            raise ValueError(f"{folder}: a folder's path holds no newline, its owner and mode no blank")
        lines.append(f"{folder.owner or '-'} {folder.mode or '-'} {folder.path}\n")
    return template.render("folders", FOLDERS="".join(lines))


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
    return template.render(
        "converge", DIGEST=digest, TARGETS=lines, TIMEOUT=int(timeout_seconds), STABLE=STABLE_SECONDS
    )


# The swarm state a lone manager keeps on its volume while its droplet is replaced.
SWARM_STATE_BACKUP = "swarm-state.tar.gz"
# The other managers (`<address> <manager join token>` lines) a first manager of several leaves on
# its volume before its droplet goes, for its successor to join when no probe finds them.
MANAGERS_FILE = "managers"
# The workers a lone manager promoted to stand in for it (node IDs), for its successor to demote
# once it has joined them.
STANDINS_FILE = "standins"


def swarm_state_dir(mount_path: str) -> str:
    """Where a manager keeps its swarm state on its block-storage volume."""
    return f"{mount_path.rstrip('/')}/.swarm-state"


def keep_swarm_state_script(state_dir: str | None, mount_path: str | None) -> str:
    """The create of the first manager's handover command: with a volume, check that the folder
    where a lone manager's state is kept (when its droplet is replaced) is on the mounted volume."""
    if state_dir is None or mount_path is None:
        state_dir = mount_path = ""
    return template.render("keep_swarm_state", STATE_DIR=state_dir, MOUNT_PATH=mount_path)


def handover_script(state_dir: str | None, node_id: str, demote_wait_seconds: int = 60,
                    standin_grace_seconds: int = STANDIN_GRACE_SECONDS) -> str:
    """Run on the first manager before its droplet goes (its handover command's delete).

    It acts only on the node it was made for: `node_id`, the swarm node ID its init printed.
    Anywhere else (whatever its connection reaches when the delete runs: a successor with the
    same name, host key and reserved IP) it does nothing and succeeds, so a handover never
    demotes the node that replaces the one it was made for.

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
      stopped, /var/lib/docker/swarm copied whole, Docker started again. Then, when a worker is
      Ready and Active, it promotes it to **stand in** (STANDINS_FILE names it, MANAGERS_FILE
      lists its address and the manager token) and demotes itself: the workers follow the
      stand-in as their manager and keep their tasks, and the successor joins it (init_script),
      then demotes it. Without a worker, or when the promotion does not take within the wait, its
      successor restores the kept state instead (and the workers rejoin it). A demotion of itself
      that does not take fails the script with the stand-in demoted again: two managers, one
      destroyed, would leave the swarm without quorum.
    """
    if not _SAFE_WORD.match(node_id):
        raise ValueError(f"{node_id!r}: a swarm node ID is letters and digits")
    backup = "" if state_dir is None else f"{state_dir}/{SWARM_STATE_BACKUP}"
    roster = "" if state_dir is None else f"{state_dir}/{MANAGERS_FILE}"
    standins = "" if state_dir is None else f"{state_dir}/{STANDINS_FILE}"
    return template.render("handover", NODE=node_id, BACKUP=backup, ROSTER=roster, STANDIN=standins,
                               DEMOTE_WAIT=int(demote_wait_seconds), GRACE=int(standin_grace_seconds))
