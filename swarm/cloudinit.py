"""First-boot configuration of a node, rendered as cloud-init user data.

Changing the rendered text replaces the droplet (user_data forces replacement on
DigitalOcean), so the output must be deterministic: same node in, same bytes out.
"""

from __future__ import annotations

import json

import yaml

from swarm.config import Node

# Docker's apt repository signing key (https://download.docker.com/linux/ubuntu/gpg).
DOCKER_APT_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
DOCKER_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io")

# Log rotation keeps chatty model servers from filling the disk. No live-restore: it is
# incompatible with swarm mode.
DAEMON_CONFIG = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "20m", "max-file": "5"},
}

MOUNT_SCRIPT_PATH = "/usr/local/sbin/swarm-mount-volume"

# Formats the block-storage volume only when it carries no filesystem yet (a volume kept
# across a droplet replacement keeps its data), then mounts it by UUID, now and at every boot.
MOUNT_SCRIPT = """\
#!/bin/sh
set -eu
device=$1
mount_path=$2
for _ in $(seq 1 60); do
  [ -b "$device" ] && break
  sleep 2
done
if [ ! -b "$device" ]; then
  echo "volume $device did not appear" >&2
  exit 1
fi
if [ -z "$(blkid -o value -s TYPE "$device" || true)" ]; then
  mkfs.ext4 -q "$device"
fi
uuid=$(blkid -o value -s UUID "$device")
mkdir -p "$mount_path"
if ! grep -q "^UUID=$uuid " /etc/fstab; then
  echo "UUID=$uuid $mount_path ext4 defaults,nofail,discard,noatime 0 2" >> /etc/fstab
fi
if ! mountpoint -q "$mount_path"; then
  mount "$mount_path"
fi
"""


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so the user data reads like the files it writes."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def volume_name(node: Node) -> str:
    """DigitalOcean volume name for a node's data volume (lowercase, digits, '-', <= 64)."""
    return f"{node.name}-data"


def volume_device(node: Node) -> str:
    """Where DigitalOcean exposes the node's attached volume."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name(node)}"


def render_cloud_init(node: Node) -> str:
    """The `#cloud-config` user data for `node`."""
    files = [
        {
            "path": "/etc/docker/daemon.json",
            "permissions": "0644",
            "content": json.dumps(DAEMON_CONFIG, indent=2, sort_keys=True) + "\n",
        },
    ]
    commands: list[list[str]] = [["systemctl", "enable", "--now", "docker"]]
    volume = node.pool.volume
    if volume:
        files.append({"path": MOUNT_SCRIPT_PATH, "permissions": "0755", "content": MOUNT_SCRIPT})
        commands.append([MOUNT_SCRIPT_PATH, volume_device(node), volume.mount_path])

    document = {
        "hostname": node.name,
        "preserve_hostname": False,
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
        "packages": list(DOCKER_PACKAGES),
        "write_files": files,
        "runcmd": commands,
    }
    return "#cloud-config\n" + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)


def shell_scripts(node: Node) -> list[str]:
    """Every shell script the user data carries, for linting."""
    return [MOUNT_SCRIPT] if node.pool.volume else []
