"""Node scripts for day 2, where data and running tasks are at stake: retiring a node from the
swarm (run on a manager) and mounting a node's block-storage volume (run on the node). Same rules
as swarm/node_scripts/swarm_cluster.py: complete POSIX sh scripts in swarm/node_scripts/, idempotent, values quoted by
node_scripts.render.
"""

from __future__ import annotations

from swarm.node_scripts import template
from swarm.node_scripts.swarm_cluster import SAFE_WORD as _SAFE_WORD

# Retirement: how long a drained node's tasks may take to run elsewhere, how long they may sit
# `pending` with an error (no node can take them) before retirement gives up, and how long a
# retirement waits for the one before it in the same pool.
RETIRE_TIMEOUT_SECONDS = 600
UNPLACEABLE_SECONDS = 60
LOCK_WAIT_SECONDS = 3600
# A daemon restart lets a task that no other node can take (a database pinned to its volume) stop
# after this long: it cannot be kept running through the restart of its node's Docker.
RESTART_UNPLACEABLE_SECONDS = 10
# Per-pool locks live on the manager's /run: a tmpfs, so a reboot clears them.
RETIRE_LOCK_DIR = "/run/swarm-retire"
# The slot group every manager takes, whatever its pool: a manager drained or restarting is out of
# the quorum, so managers leave one at a time cluster-wide, not per pool (the database's manager
# and a control pool's would otherwise go together). No pool can have this name (pool names are
# DNS labels: no ".").
MANAGERS_SLOT = "all.managers"


def slot_group(role: str, pool: str) -> str:
    """The retirement slots a node takes: its pool's, or for a manager the managers' one."""
    return MANAGERS_SLOT if role == "manager" else pool


def retire_script(
    node_id: str,
    pool: str,
    timeout_seconds: int = RETIRE_TIMEOUT_SECONDS,
    unplaceable_seconds: int = UNPLACEABLE_SECONDS,
    lock_wait_seconds: int = LOCK_WAIT_SECONDS,
    lock_dir: str = RETIRE_LOCK_DIR,
    max_unavailable: int = 1,
) -> str:
    """Run on a manager: drain node `node_id` of pool `pool`, wait until its tasks run elsewhere,
    then remove it from the swarm. Without `docker node rm` a replaced or removed droplet would
    stay in `docker node ls` as Down forever. A node that is already gone is fine.

    - Piled tasks first: Docker never rebalances, so a node may hold two or more tasks of one
      service (it stayed up while others were replaced, restarted or removed); a drain would
      stop them all at once. The node is paused (it keeps its tasks, takes no new ones) and each
      such service gets a forced rolling update, which replaces its tasks on the other nodes one
      at a time by its own update_config (bounded by `timeout_seconds`).
    - Waiting: right after a drain the node has no task desired running any more, so the node's
      own task list says nothing. The script watches the services instead: every replicated
      service that had a task on the node must have its replicas running on *other* nodes (by
      node ID: a successor droplet joins under the same hostname). A task with a healthcheck is
      `starting` until healthy, so running means healthy where there is a healthcheck. Global
      services are not waited for: their task on this node does not move.
    - Giving up: when a missing task sits `pending` with an error (no node can take it) for
      `unplaceable_seconds`, or after `timeout_seconds`, the node's availability is restored and
      the script fails *before* `docker node rm`, naming each short service and its tasks'
      errors. A node that is Down (its droplet is gone) is removed anyway: keeping it brings
      none of its tasks back; the services left short are printed as a warning.
    - A manager is demoted before its removal, and waited for until it has left the managers'
      raft and another manager leads (leadership moves while it is up if it led).
    - At most `max_unavailable` at a time per pool (the pool's `maxUnavailable`, 1 by default):
      Pulumi deletes independent resources in parallel and has no "N at a time" option, so the
      script takes one of the pool's slots on the manager (an atomic `mkdir`, the holder
      written inside) for the whole retirement. A slot whose holder process is gone, or older
      than the longest a retirement can take, is stale and taken over.
    """
    return _take_out("retire", node_id, pool, timeout_seconds, unplaceable_seconds, lock_wait_seconds, lock_dir,
                     max_unavailable)


# Docker reports the labels of a node's running daemon (daemon.json `labels`) in `docker info` and,
# to managers, in `docker node inspect` (.Description.Engine.Labels): this one names the daemon
# settings the program applied (swarm/node_scripts/node_config.py).
DAEMON_LABEL_KEY = "swarm.daemon-settings"


def daemon_drain_script(
    node_id: str,
    pool: str,
    label: str,
    timeout_seconds: int = RETIRE_TIMEOUT_SECONDS,
    unplaceable_seconds: int = RESTART_UNPLACEABLE_SECONDS,
    lock_wait_seconds: int = LOCK_WAIT_SECONDS,
    lock_dir: str = RETIRE_LOCK_DIR,
    max_unavailable: int = 1,
) -> str:
    """Run on a manager: make way for node `node_id` to restart Docker with the daemon settings
    labelled `label` ("" for the settings cloud-init wrote), at most `max_unavailable` nodes of the
    pool at a time (the pool's `maxUnavailable`).

    Nothing happens when the node's running Docker already reports `label`. Otherwise, taking one
    of the pool's retirement slots (restarts and retirements together never take more than
    `max_unavailable` nodes of a pool out): move any service's tasks off the node one at a time
    when it holds two or more (paused, then a forced rolling update, as retirement does), drain
    the node and
    wait until its tasks run elsewhere, as retirement does (a task no other node can take, such as
    a database pinned to this node, is waited for `unplaceable_seconds` and then let stop), and
    keep the slot: the node's own command (swarm/node_scripts/daemon.sh) restarts Docker next, and
    daemon_return_script gives the node back. A manager that leads while two other managers are
    reachable is demoted first, and the script waits until another manager leads, then promotes
    it again and waits until it is a reachable follower: Docker has no "transfer leadership", and
    a leader whose Docker stops leaves the swarm without one until the others elect. Run it on a
    manager other than `node_id` (a demoted node answers no swarm command). If the tasks do not move within `timeout_seconds`,
    the node's availability is restored and the script fails.
    """
    return _take_out("restart", node_id, pool, timeout_seconds, unplaceable_seconds, lock_wait_seconds, lock_dir,
                     max_unavailable, label)


def _take_out(mode: str, node_id: str, pool: str, timeout_seconds: int, unplaceable_seconds: int,
              lock_wait_seconds: int, lock_dir: str, max_unavailable: int, label: str = "") -> str:
    if not _SAFE_WORD.match(pool):
        raise ValueError(f"{pool!r}: pool names are letters, digits, '.', '_' and '-'")
    if int(max_unavailable) < 1:
        raise ValueError(f"max_unavailable must be at least 1, not {max_unavailable}")
    return template.render(
        "retire", NODE=node_id, POOL=pool, MAX_UNAVAILABLE=int(max_unavailable), TIMEOUT=int(timeout_seconds),
        UNPLACEABLE=int(unplaceable_seconds), LOCK_WAIT=int(lock_wait_seconds), LOCK_DIR=lock_dir, MODE=mode,
        LABEL_KEY=DAEMON_LABEL_KEY, LABEL=label,
    )


def daemon_return_script(node_id: str, pool: str, label: str, timeout_seconds: int = RETIRE_TIMEOUT_SECONDS,
                         lock_dir: str = RETIRE_LOCK_DIR, role: str = "worker") -> str:
    """Run on a manager, after the node's daemon command: when daemon_drain_script drained node
    `node_id` (it holds a slot of `pool` for it), wait until the node is Ready and its Docker
    reports `label`, give it its `role` back (the configured one: a run killed between the
    demotion of a leader and its promotion heals here on the next `up`) and its availability,
    then free the slot. A node that was not drained keeps its
    availability (its role is given back all the same). After `timeout_seconds` the script fails
    and the node stays drained."""
    if not _SAFE_WORD.match(pool):
        raise ValueError(f"{pool!r}: pool names are letters, digits, '.', '_' and '-'")
    if role not in ("manager", "worker"):
        raise ValueError(f"role must be manager or worker, not {role!r}")
    return template.render("daemon-return", NODE=node_id, POOL=pool, LOCK_DIR=lock_dir,
                               LABEL_KEY=DAEMON_LABEL_KEY, LABEL=label, TIMEOUT=int(timeout_seconds), ROLE=role)


# Where DigitalOcean exposes a droplet's attached volume, by the volume's name.
VOLUME_DEVICE_PREFIX = "/dev/disk/by-id/scsi-0DO_Volume_"
# How much of a volume must read back before it may be taken for blank.
PROBE_BYTES = 1024 * 1024


def mount_volume_script(device: str, mount_path: str) -> str:
    """Run on a node: mount its block-storage volume at `mount_path`, now and at every boot (by
    UUID in /etc/fstab), formatting it only when it is provably blank.

    Blank means: the device's first MiB reads back in full, and `blkid -p` (a low-level probe of
    the device itself, no cache) exits 2, no signature. blkid's 2 alone proves nothing: it is
    also what a device that cannot be read gives. Anything else stops the script with what it
    found, and the volume is left untouched: a signature that is not a filesystem (a partition
    table), an ambivalent probe (8), a usage error (4), a short read.

    Idempotent, and safe to re-run on a node whose volume holds data. A changed `mount_path`
    moves the fstab line; the old path stays mounted until the next reboot (services may use it).
    """
    return template.render("mount_volume", DEVICE=device, MOUNT_PATH=mount_path, PROBE_BYTES=PROBE_BYTES)
