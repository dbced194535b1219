"""First-boot configuration of a node, rendered as cloud-init user data.

Changing the rendered text replaces the droplet (user_data forces replacement on
DigitalOcean), so the output must be deterministic: same node and host key in, same bytes out.

Besides Docker, the user data hardens the node (docs/security.md):
- its SSH host key is the one the program generated for it (`ssh_keys`), the only one sshd
  offers, so every connection can pin it; the image's own keys are deleted;
- sshd takes keys only: no passwords, root by key only;
- unattended security upgrades, never an automatic reboot (a reboot is an operator's drain).

What may have to change on a running node (the block-storage volume's mount) is not here but in a
remote command (components/swarm_cluster.py), which re-runs in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from swarm.config import Node
from swarm.node_scripts import template
from swarm.node_scripts.day2 import VOLUME_DEVICE_PREFIX

# Docker's apt repository signing key (https://download.docker.com/linux/ubuntu/gpg).
DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
DOCKER_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io")
PACKAGES = (*DOCKER_PACKAGES, "unattended-upgrades")

HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key"
SSHD_CONFIG_PATH = "/etc/ssh/sshd_config.d/00-swarm.conf"
# sshd keeps the first value it reads for an option, and reads sshd_config.d/*.conf in name
# order before the rest of sshd_config: 00- wins over the image's and cloud-init's own files.
# HostKey names the program's key; with the image's key files deleted (ssh_deletekeys) it is the
# only key sshd can offer, so no client negotiates another key type instead of the pinned one.
SSHD_CONFIG = f"""\
# Written by cloud-init from the swarm program (docs/security.md).
HostKey {HOST_KEY_PATH}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
AuthenticationMethods publickey
"""

# Security updates from the distribution, every day (Ubuntu's unattended-upgrades only takes the
# -security pocket by default; Docker's repository is not among its origins, so dockerd is never
# upgraded, and so restarted, behind the swarm's back). Never a reboot on its own: a manager that
# reboots takes the swarm's control plane (and, here, the database) with it, and workers rebooting
# together take every replica down; reboots are drained by an operator (docs/security.md,
# "Reboots"). apt reads apt.conf.d in name order, the last value winning: 52- comes after the
# package's own 20auto-upgrades and 50unattended-upgrades, whatever they say.
UPGRADE_POLICY_PATH = "/etc/apt/apt.conf.d/52swarm-upgrades"
UPGRADE_POLICY = """\
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
Unattended-Upgrade::Automatic-Reboot "false";
"""
# needrestart restarts services whose libraries an upgrade replaced; restarting dockerd or
# containerd restarts every task of the node (swarm mode has no live-restore). Leave them alone.
NEEDRESTART_PATH = "/etc/needrestart/conf.d/50-swarm.conf"
NEEDRESTART = """\
$nrconf{override_rc}{qr(^docker)} = 0;
$nrconf{override_rc}{qr(^containerd)} = 0;
"""


@dataclass(frozen=True)
class HostKey:
    """A node's SSH host key pair in OpenSSH formats (the private one is a secret)."""

    private_openssh: str
    public_openssh: str  # "ssh-ed25519 AAAA...": what connections pin


# The daemon.json a node boots with. FROZEN: it is part of the user data, and a change here would
# replace every droplet of an existing cluster (user_data is ForceNew). The daemon settings a node
# runs with are swarm.node_scripts.node_config.DAEMON_SETTINGS, applied in place by a remote command that owns
# these keys from the first `up` on; change them there. (Log rotation keeps chatty model servers
# from filling the disk. No live-restore: it is incompatible with swarm mode.)
DAEMON_CONFIG = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "20m", "max-file": "5"},
}

class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so the user data reads like the files it writes."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


GPU_SETUP_SCRIPT_PATH = "/usr/local/sbin/swarm-setup-gpus"
NVIDIA_RUNTIME_CONFIG = "/etc/nvidia-container-runtime/config.toml"

# Makes the node's GPUs schedulable by swarm (NVIDIA/nvidia-container-toolkit#57, #1599):
# - the NVIDIA container toolkit from NVIDIA's apt repository (the GPU image has the driver);
# - the NVIDIA runtime as Docker's default, so a task needs no `--gpus` flag (swarm has none);
# - every GPU advertised as a generic resource `GPU=<uuid>`, read from the hardware at boot;
# - `swarm-resource` in the runtime's config, so a task sees only the GPUs swarm assigned to it
#   (through DOCKER_RESOURCE_GPU) instead of every GPU of the node.
# The script is carried byte for byte in the user data, where a changed byte replaces every GPU
# droplet: swarm/node_scripts/gpu_setup.sh has no inputs and no comments (these are its
# comments), and writes DAEMON_CONFIG's log options and NVIDIA_RUNTIME_CONFIG out in full
# (tests/unit/node_scripts/test_cloudinit.py checks that they agree).
GPU_SETUP_SCRIPT = template.render("gpu_setup")


def volume_name(node: Node) -> str:
    """DigitalOcean volume name for a node's data volume (lowercase, digits, '-', <= 64)."""
    return f"{node.name}-data"


def volume_device(name: str) -> str:
    """Where DigitalOcean exposes an attached volume, by the volume's name."""
    return f"{VOLUME_DEVICE_PREFIX}{name}"


def render_cloud_init(node: Node, host_key: HostKey) -> str:
    """The `#cloud-config` user data for `node`, whose SSH host key is `host_key`. It holds the
    private key: keep the result secret."""
    files = [
        {"path": SSHD_CONFIG_PATH, "permissions": "0644", "content": SSHD_CONFIG},
        {"path": UPGRADE_POLICY_PATH, "permissions": "0644", "content": UPGRADE_POLICY},
        {"path": NEEDRESTART_PATH, "permissions": "0644", "content": NEEDRESTART},
        {
            "path": "/etc/docker/daemon.json",
            "permissions": "0644",
            "content": json.dumps(DAEMON_CONFIG, indent=2, sort_keys=True) + "\n",
        },
    ]
    commands: list[list[str]] = [
        # cloud-init runs before sshd starts; should the image have started it anyway, it takes the
        # key and the settings now.
        ["systemctl", "try-reload-or-restart", "ssh.service"],
        ["systemctl", "enable", "--now", "docker"],
    ]
    if node.pool.gpu:
        files.append({"path": GPU_SETUP_SCRIPT_PATH, "permissions": "0755", "content": GPU_SETUP_SCRIPT})
        commands.append([GPU_SETUP_SCRIPT_PATH])

    document = {
        "hostname": node.name,
        "preserve_hostname": False,
        # SSH: the program's host key only (the image's keys deleted; with `ssh_keys` given,
        # cloud-init generates no other type), root by key (the nodes are run as root), no passwords.
        "ssh_deletekeys": True,
        "ssh_keys": {
            "ed25519_private": host_key.private_openssh if host_key.private_openssh.endswith("\n")
            else host_key.private_openssh + "\n",
            "ed25519_public": host_key.public_openssh.strip(),
        },
        "disable_root": False,
        "ssh_pwauth": False,
        "package_update": True,
        "apt": {
            "sources": {
                "docker.list": {
                    "source": "deb [signed-by=$KEY_FILE] https://download.docker.com/linux/ubuntu $RELEASE stable",
                    "keyid": DOCKER_APT_KEY_FINGERPRINT,
                }
            }
        },
        "packages": list(PACKAGES),
        "write_files": files,
        "runcmd": commands,
    }
    return "#cloud-config\n" + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)


def shell_scripts(node: Node) -> list[str]:
    """Every shell script the user data carries, for linting."""
    carried = [(GPU_SETUP_SCRIPT, node.pool.gpu)]
    return [script for script, wanted in carried if wanted]
