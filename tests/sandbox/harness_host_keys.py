"""Host keys and pinned SSH (tests/sandbox/harness.py): known_hosts files, the key a host
presents, and installing a new one as cloud-init would."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.sandbox.harness_util import wait_for

if TYPE_CHECKING:
    from tests.sandbox.harness import Sandbox
    from tests.sandbox.harness_host import Host


def pinned_ssh_options(sandbox: Sandbox, known_hosts: Path) -> list[str]:
    """The sandbox's ssh options with strict host key checking against `known_hosts` only."""
    return [*sandbox.login_options, "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null"]


def write_known_hosts(path: Path, entries: Iterable[tuple[str, str]]) -> Path:
    """A known_hosts file of (address, "ssh-ed25519 AAAA...") entries."""
    path.write_text("".join(f"{address} {key.strip()}\n" for address, key in entries))
    return path


def host_public_key(host: Host) -> str:
    """The host key the host's sshd presents now ("ssh-ed25519 AAAA..."), as a client sees it."""
    result = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-T", "2", host.ip],
                            capture_output=True, text=True, timeout=30)
    lines = [line.split(None, 1)[1] for line in result.stdout.splitlines() if line and not line.startswith("#")]
    return lines[0].strip() if lines else ""


def pinned_known_hosts(sandbox: Sandbox, address: str, host_key: str) -> Path:
    """A known_hosts file (kept in the workdir, one per address and key) that pins `host_key`
    ("ssh-ed25519 AAAA...") for `address`, for `Host.ssh(known_hosts=...)`."""
    directory = sandbox.workdir / "known_hosts"
    directory.mkdir(exist_ok=True)
    path = directory / hashlib.sha256(f"{address} {host_key.strip()}".encode()).hexdigest()[:16]
    if not path.exists():
        write_known_hosts(path.with_suffix(f".{threading.get_ident()}"), [(address, host_key)]).replace(path)
    return path


def install_host_key(host: Host, private_key: str, timeout: float = 30) -> str:
    """Make the host's sshd present `private_key` (OpenSSH format), as cloud-init installs the
    key the program generated on a new droplet: write it on the host's disk (kept across power
    cycles) and in /run where sshd reads it, SIGHUP sshd (it re-executes and reads its host key
    again), and wait until a client sees it. Returns the public key."""
    text = private_key if private_key.endswith("\n") else private_key + "\n"
    on_disk = host.dir / "ssh_host_ed25519_key"
    descriptor = os.open(on_disk.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(text)
    on_disk.with_suffix(".new").replace(on_disk)
    host.exec("umask 077 && cat >/run/ssh_host_ed25519_key.new && "
              "mv /run/ssh_host_ed25519_key.new /run/ssh_host_ed25519_key", stdin=text)
    public = host.exec("ssh-keygen -y -f /run/ssh_host_ed25519_key").stdout.split()
    expected = " ".join(public[:2])
    host.exec('kill -HUP "$(cat /run/sshd.pid)"')
    wait_for(lambda: host_public_key(host) == expected, f"{host.name}'s sshd to present its new host key", timeout)
    return expected
