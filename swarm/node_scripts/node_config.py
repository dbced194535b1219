"""What the program keeps in sync on every node without replacing its droplet: root's authorized
SSH keys and Docker's daemon settings.

A droplet's `ssh_keys` and `user_data` are ForceNew on DigitalOcean (terraform-provider-digitalocean,
digitalocean/droplet/resource_droplet.go): a key added to the droplets or a daemon setting written
by cloud-init would replace every droplet. Both are therefore applied by remote commands, in place
(components/node_config.py renders these scripts):

- authorized keys: the program's own key, then `swarm:sshAuthorizedKeys`, written to root's
  `authorized_keys` in one rename. The droplets' `ssh_keys` (the program's key, given to
  DigitalOcean at creation) are left as they are.
- daemon settings: DAEMON_SETTINGS, merged over /etc/docker/daemon.json (keys the program does not
  own, such as a GPU node's runtime and generic resources, stay), Docker restarted only when the
  file changed, one node per pool at a time (the pool's `maxUnavailable`): a manager drains the
  node and waits until its tasks run elsewhere (retire.sh's restart mode), then the node restarts
  Docker (daemon.sh), then the manager gives it its availability back (daemon-return.sh).

The user data keeps writing cloud-init's first daemon.json (swarm.node_scripts.cloudinit.DAEMON_CONFIG), byte
for byte as before: changing it would replace every droplet of an existing cluster. Change
DAEMON_SETTINGS here instead; cloud-init's copy is frozen.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from swarm.node_scripts import template
from swarm.node_scripts.cloudinit import DAEMON_CONFIG as FIRST_BOOT_DAEMON_CONFIG
from swarm.node_scripts.day2 import DAEMON_LABEL_KEY

ROOT_SSH_DIR = "/root/.ssh"  # the program's commands log in as root
DAEMON_CONFIG_PATH = "/etc/docker/daemon.json"
# The daemon.json keys the program wrote last (one per line): a key dropped from DAEMON_SETTINGS
# is removed from the file, a key the program never owned is left alone.
DAEMON_KEYS_PATH = "/etc/docker/swarm-daemon-keys"

# The Docker daemon settings of every node. Log rotation keeps chatty model servers from filling
# the disk. Never `live-restore`: swarm mode refuses it. Changing this restarts Docker on every
# node, drained first, one node per pool at a time (`maxUnavailable`); it replaces no droplet.
DAEMON_SETTINGS: dict[str, Any] = copy.deepcopy(FIRST_BOOT_DAEMON_CONFIG)


def daemon_label(settings: Mapping[str, Any] | None = None) -> str:
    """The label that names `settings` (default DAEMON_SETTINGS) on a node whose Docker runs with
    them; "" when they are cloud-init's own (nodes booted with them report no label, and need no
    restart)."""
    settings = DAEMON_SETTINGS if settings is None else settings
    if settings == FIRST_BOOT_DAEMON_CONFIG:
        return ""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def daemon_config(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keys the program writes to daemon.json: the settings, and the label naming them."""
    settings = DAEMON_SETTINGS if settings is None else settings
    if "live-restore" in settings:
        raise ValueError("live-restore is incompatible with swarm mode: Docker refuses to start a swarm node with it")
    if "labels" in settings:
        raise ValueError("daemon labels are the program's own (they name the settings a node runs with)")
    label = daemon_label(settings)
    return {**settings, "labels": [f"{DAEMON_LABEL_KEY}={label}"]} if label else dict(settings)


def daemon_script(node_id: str, settings: Mapping[str, Any] | None = None, config_path: str = DAEMON_CONFIG_PATH,
                  keys_path: str = DAEMON_KEYS_PATH) -> str:
    """Run on the node, after the manager drained it (swarm.node_scripts.day2.daemon_drain_script):
    apply the daemon settings (see the module's docstring). Idempotent: with the settings in place
    and loaded, it changes nothing and restarts nothing."""
    config = daemon_config(settings)
    return template.render(
        "daemon", NODE=node_id, SETTINGS=json.dumps(config, sort_keys=True), KEYS=" ".join(sorted(config)),
        FIRST_BOOT_KEYS=" ".join(sorted(FIRST_BOOT_DAEMON_CONFIG)), LABEL_KEY=DAEMON_LABEL_KEY,
        LABEL=daemon_label(settings), CONFIG=config_path, KEYS_FILE=keys_path,
    )


def authorized_keys(program_key: str, operator_keys: Sequence[str]) -> str:
    """root's authorized_keys: the program's key first (its remote commands log in with it), then
    each operator key not already listed."""
    lines: list[str] = []
    blobs: set[str] = set()
    for line in [program_key, *operator_keys]:
        line = line.strip()
        blob = line.split()[1] if len(line.split()) > 1 else line
        if line and blob not in blobs:
            blobs.add(blob)
            lines.append(line)
    return "\n".join(lines)


def authorized_keys_script(node_id: str, program_key: str, operator_keys: Sequence[str],
                           directory: str = ROOT_SSH_DIR) -> str:
    """Run on the node: make root's authorized_keys exactly `authorized_keys(...)`, in one rename.
    A key added by hand is removed, as labels added by hand are."""
    return template.render("authorized-keys", NODE=node_id, KEYS=authorized_keys(program_key, operator_keys),
                               DIR=directory)
