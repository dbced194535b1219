"""A local multi-host Docker Swarm sandbox for tests.

Each sandbox host stands in for a droplet: a network namespace with its own address on a
bridge in the root namespace, and a process tree in its own mount, UTS and PID namespaces
that runs `dockerd` and `sshd` at the default paths (/var/run/docker.sock,
/etc/docker/daemon.json, /var/lib/docker, /root/.ssh). Scripts reach a host over real SSH
with a generated key and run unchanged. The namespaces get no default route: nothing leaves
the sandbox, and image pulls fail at once so swarm uses the locally loaded image.

Everything a sandbox creates is named after its `prefix` and removed by `Sandbox.close()`,
also on exceptions, SIGTERM/SIGHUP and interpreter exit; leftovers of a crashed run with the
same prefix are removed when the next sandbox with that prefix starts. Needs root. See
tests/sandbox/README.md.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any, TypeVar

DEFAULT_IMAGE = "swarm-sandbox/busybox:1"

# Commands on sandbox hosts see a plain root environment, not the test runner's.
HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
REQUIRED_COMMANDS = (
    "blkid", "busybox", "docker", "docker-init", "dockerd", "ip", "iptables", "losetup", "mkfs.ext4",
    "nsenter", "ssh", "ssh-keygen", "ssh-keyscan", "sshd", "unshare",
)
_LOCK_DIR = Path("/run/swarm-sandbox")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}")  # "<prefix>-br" and "<prefix>-<n>" must fit IFNAMSIZ
_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
"""

# Runs as the child of docker-init, which is PID 1 of the host's PID namespace and reaps
# orphans (dockerd started later is one). Bind sources are absolute root-namespace paths,
# so they are mounted before /root and /run are covered (the workdir may live below them).
_INIT_SCRIPT = r"""
set -eu
name=$1 address=$2 dir=$3 sshd=$4 cloud_init_status=$5 systemctl=$6
hostname "$name"
# The host key lives on the host's disk, as a droplet's does in /etc/ssh: generated at first boot,
# kept across power cycles; install_host_key replaces it, as cloud-init's `ssh_keys` does. Read
# now: /run and /root may cover the workdir once mounted.
[ -e "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
host_key=$(cat "$dir/ssh_host_ed25519_key")
mkdir -p /var/lib/docker /etc/docker  # mount points; the docker.io package's own folders
mount --bind "$dir/var-lib-docker" /var/lib/docker
mount --bind "$dir/etc-docker" /etc/docker
mount --bind "$dir/root" /root
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
# Like a droplet's: its own /mnt (volumes are mounted there), its own /etc/fstab (kept on its
# disk across reboots) and its own /dev/disk (where an attached volume's device appears).
mount -t tmpfs -o mode=0755 tmpfs /mnt
[ -e "$dir/fstab" ] || : >"$dir/fstab"
mount --bind "$dir/fstab" /etc/fstab
mount -t tmpfs -o mode=0755 tmpfs /dev/disk
# What systemd does at boot: mount the volumes listed in fstab (nofail: a missing one is skipped).
mount -a -t ext4,xfs 2>/dev/null || true
# No systemd here: a `systemctl` that manages the one service scripts ask for, docker, first on
# PATH (/usr/local/sbin becomes the host's own).
mount -t tmpfs -o mode=0755 tmpfs /usr/local/sbin
printf '%s\n' "$systemctl" >/usr/local/sbin/systemctl
chmod 0755 /usr/local/sbin/systemctl
# Scripts meet a droplet after its first boot: cloud-init reports done, in its own files (else
# `cloud-init status --wait`, if the machine has cloud-init, waits for a boot that never runs).
mkdir /run/cloud-init
printf '%s\n' "$cloud_init_status" >/run/cloud-init/status.json
echo '{"v1": {"datasource": "DataSourceNone", "errors": []}}' >/run/cloud-init/result.json
(umask 077 && printf '%s\n' "$host_key" >/run/ssh_host_ed25519_key)
# -f /dev/null: independent of the machine's sshd_config (Port, ListenAddress, PAM, ...).
"$sshd" -D -e -f /dev/null \
  -o ListenAddress="$address" -o HostKey=/run/ssh_host_ed25519_key -o PidFile=/run/sshd.pid \
  -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no \
  -o KbdInteractiveAuthentication=no -o MaxStartups=100 -o 'Subsystem sftp internal-sftp' &
exec sleep infinity
"""

# The hosts' `systemctl`: stop, start, restart and is-active for docker, as systemd would do
# them (stop waits for dockerd to exit; start returns once the daemon answers).
_SYSTEMCTL = r"""#!/bin/sh
set -eu
case "${2:-}" in
  docker | docker.service) ;;
  *) echo "systemctl (sandbox host): only docker is managed here, not '${2:-}'" >&2; exit 1 ;;
esac
stop() {
  pid=$(cat /run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
start() {
  docker info >/dev/null 2>&1 && return 0
  setsid dockerd </dev/null >>/run/dockerd.log 2>&1 &
  tries=0
  until docker info >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { echo "dockerd did not answer; see /run/dockerd.log" >&2; exit 1; }
    sleep 0.2
  done
}
case "$1" in
  stop) stop ;;
  start) start ;;
  restart) stop; start ;;
  is-active) if docker info >/dev/null 2>&1; then echo active; else echo inactive; exit 3; fi ;;
  *) echo "systemctl (sandbox host): '$1' is not supported" >&2; exit 1 ;;
esac
"""

T = TypeVar("T")
R = TypeVar("R")


class SandboxError(RuntimeError):
    """The sandbox could not be set up, used or torn down as asked."""


class CommandError(subprocess.CalledProcessError):
    """A command on a sandbox host failed; the message carries its output."""

    def __init__(self, where: str, cmd: str | list[str], returncode: int,
                 stdout: str, stderr: str) -> None:
        super().__init__(returncode, cmd, stdout, stderr)
        self.where = where

    def __str__(self) -> str:
        cmd = self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)
        return (f"{self.where}: command exited {self.returncode}: {cmd}\n"
                f"--- stdout (tail) ---\n{_tail(self.stdout)}\n"
                f"--- stderr (tail) ---\n{_tail(self.stderr)}")


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a sandbox; empty when it can."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (network namespaces, mounts, dockerd)")
    problems += [f"command not found: {cmd}" for cmd in REQUIRED_COMMANDS if not find_command(cmd)]
    busybox = shutil.which("busybox")
    if busybox and not _is_static_elf(Path(busybox)):
        problems.append(f"{busybox} is dynamically linked; install busybox-static")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("kernel lacks overlayfs (modprobe overlay)")
    return problems


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 60, interval: float = 0.5) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value; fail the test
    with `what` when `timeout` seconds pass first. For tests waiting on a swarm to settle."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return result


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


def leftovers(prefix: str) -> list[str]:
    """Network namespaces, links, firewall rules and cgroups of sandboxes with this prefix."""
    bridge = f"{prefix}-br"
    found = [f"netns {ns}" for ns in _netns_names(prefix)]
    found += [f"link {link}" for link in _link_names(prefix)]
    if _forward_rule_present(bridge):
        found.append(f"iptables FORWARD rule for {bridge}")
    found += [f"cgroup {path}" for path in _cgroup_dirs(prefix)]
    return found


def pids_in_namespace(kind: str, inode: int) -> list[int]:
    """PIDs of processes whose namespace of `kind` ("net", "pid", ...) has this inode."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/{kind}").st_ino == inode:
                    pids.append(int(entry))
            except OSError:  # the process exited meanwhile
                pass
    return pids


class Host:
    """One sandbox host ("droplet"). Created by `Sandbox.add_host`, not directly."""

    def __init__(self, sandbox: Sandbox, name: str, ip: str, index: int,
                 daemon_json: Mapping[str, Any], key: str | None = None) -> None:
        self.sandbox = sandbox
        self.name = name  # its hostname
        # Its handle in the sandbox: the name, unless two hosts share one (a droplet and its
        # replacement, both alive for a while, as with create-before-delete).
        self.key = key or name
        self.ip = ip
        self.netns = f"{sandbox.prefix}-{self.key}"
        self.veth = f"{sandbox.prefix}-{index}"
        self.dir = sandbox.workdir / "hosts" / self.key
        self.cgroup_parent = f"/{sandbox.prefix}/{self.key}"
        # A per-host cgroup parent keeps containers of hosts that were killed from leaking
        # into a shared /docker cgroup: teardown removes the whole subtree.
        self.daemon_json: dict[str, Any] = {
            "storage-driver": sandbox.storage_driver,
            "cgroup-parent": self.cgroup_parent,
            **daemon_json,
        }
        self.init_pid = 0  # global PID of the host's PID 1 (docker-init)
        self.pid_namespace = 0  # inode of its PID namespace: every process of the host
        self.boot_seconds = 0.0
        self.ready = False  # booted: SSH and dockerd answer, images loaded
        self._init: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.ip!r})"

    # --- commands -----------------------------------------------------------------------

    def ssh(self, cmd: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` with root's shell over real SSH, as a deploy tool would. With `known_hosts`,
        the host must present a key listed there (strict checking, as a pinned connection):
        otherwise `ssh` gives up before authenticating, and nothing (command, stdin) is sent."""
        options = self.sandbox.ssh_options if known_hosts is None else pinned_ssh_options(self.sandbox, known_hosts)
        argv = ["ssh", *options, f"root@{self.ip}", "--", cmd]
        return self._complete(argv, cmd, stdin, check, timeout)

    def docker(self, *args: str, stdin: str | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker ARGS...` over SSH."""
        return self.ssh(shlex.join(["docker", *args]), stdin=stdin, check=check, timeout=timeout)

    def exec(self, cmd: str, stdin: str | None = None, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `cmd` with bash as root on the host's console (nsenter, no SSH)."""
        return self._complete(self._nsenter(["bash", "-c", cmd]), cmd, stdin, check, timeout)

    # --- dockerd ------------------------------------------------------------------------

    def start_dockerd(self, timeout: float = 60) -> None:
        """Start dockerd (as `systemctl start docker` would) and wait until it answers."""
        if self._docker_answers():
            raise SandboxError(f"{self.name}: dockerd is already running")
        # The log is handed in as an open descriptor: no pipe of ours stays open in dockerd,
        # and its path need not be visible inside the host.
        with open(self.dir / "dockerd.log", "ab") as log:
            fd = log.fileno()
            started = self._run(["bash", "-c", f"dockerd </dev/null >&{fd} 2>&1 {fd}>&- & echo $!"],
                                pass_fds=(fd,))
        # $! is dockerd's PID inside the host: it lives under the host's own /proc.
        alive = Path(f"/proc/{self.init_pid}/root/proc/{int(started.stdout)}")

        def answers() -> bool:
            if not alive.exists():
                raise SandboxError(f"{self.name}: dockerd exited during start\n"
                                   f"{_tail_file(self.dir / 'dockerd.log')}")
            return self._docker_answers()

        self._wait(answers, "dockerd", timeout, self.dir / "dockerd.log")

    def stop_dockerd(self, timeout: float = 60) -> None:
        """Stop dockerd gracefully and wait for it to exit (seconds in swarm mode)."""
        self.exec('pid=$(cat /run/docker.pid) && kill "$pid" && '
                  'while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done', timeout=timeout)

    def restart_dockerd(self, timeout: float = 60) -> None:
        self.stop_dockerd(timeout)
        self.start_dockerd(timeout)

    # --- lifecycle (driven by Sandbox) ----------------------------------------------------

    def power_cycle(self, timeout: float = 60) -> None:
        """Power off hard (every process dies, as DigitalOcean's power-off before a resize)
        and boot again with the same disk and address: /var/lib/docker, /etc/docker, /root and
        /etc/fstab are kept, /run, /mnt and /dev/disk start empty; fstab's volumes are mounted."""
        self.ready = False
        self._kill()
        if self._init is not None:
            self._init.wait(timeout=timeout)
        if self.pid_namespace:
            _wait_until_empty("pid", self.pid_namespace, self.name)
        _remove_cgroups(self.cgroup_parent.strip("/"))
        started = time.monotonic()
        self._start(load_images=False)
        self.boot_seconds = time.monotonic() - started

    def _boot(self, public_key: str) -> None:
        started = time.monotonic()
        shutil.rmtree(self.dir, ignore_errors=True)
        for sub in ("var-lib-docker", "etc-docker", "root/.ssh"):
            (self.dir / sub).mkdir(parents=True)
        (self.dir / "root").chmod(0o700)
        (self.dir / "root/.ssh").chmod(0o700)
        keys = self.dir / "root/.ssh/authorized_keys"
        keys.write_text(public_key)
        keys.chmod(0o600)
        (self.dir / "etc-docker/daemon.json").write_text(json.dumps(self.daemon_json, indent=2))

        sb = self.sandbox
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        _ip("link", "set", self.veth, "master", sb.bridge, "up")
        _ip("-n", self.netns, "addr", "add", f"{self.ip}/{sb.network.prefixlen}", "dev", "eth0")
        _ip("-n", self.netns, "link", "set", "eth0", "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")
        self._start(load_images=True)
        self.boot_seconds = time.monotonic() - started

    def _start(self, load_images: bool) -> None:
        """Start the host's processes (init, sshd, dockerd) on its existing disk and network."""
        sb = self.sandbox
        Path("/dev/disk").mkdir(exist_ok=True)  # the mount point of each host's own /dev/disk
        # Not `ip netns exec`: it remounts /sys and dockerd then fails ("Devices cgroup
        # isn't mounted"). --kill-child: killing unshare takes the whole host down.
        argv = ["nsenter", f"--net=/run/netns/{self.netns}",
                "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child",
                "--mount-proc", "--propagation", "private",
                "docker-init", "--", "bash", "-c", _INIT_SCRIPT, "init",
                self.name, self.ip, str(self.dir), _which("sshd"), _cloud_init_done(), _SYSTEMCTL]
        with open(self.dir / "init.log", "ab") as log:  # init script and sshd output
            # Own session: a terminal's Ctrl-C reaches the test runner, not the hosts.
            self._init = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=HOST_ENV,
                                          start_new_session=True)
        init = self._init
        self.init_pid = self._wait(lambda: _first_child(init.pid), "host init", 10,
                                   self.dir / "init.log")
        self.pid_namespace = os.stat(f"/proc/{self.init_pid}/ns/pid").st_ino
        # sshd listens only once the mounts are in place, so dockerd can start after it.
        self._wait(lambda: _tcp_open(self.ip, 22), "sshd", 30, self.dir / "init.log")
        self.start_dockerd()
        self._wait(lambda: self.ssh("true", check=False, timeout=10).returncode == 0,
                   "ssh login", 30, self.dir / "init.log")
        # Images are read only now, so that a concurrent load_image either sees this host
        # as ready or its image is in the list (at worst both: loading twice is harmless).
        with sb._mutex:
            images = list(sb._images.values()) if load_images else []
            self.ready = True
        for image in images:
            self._load_image(image)

    def _kill(self) -> None:
        """SIGKILL the host's PID 1: the kernel then kills every process in its PID namespace
        (containers included); unshare exits once that is done."""
        if self._init is not None and self._init.poll() is None:
            _signal(self.init_pid or self._init.pid, signal.SIGKILL)

    def _remove(self) -> None:
        """Wait for the killed host's processes, then remove its namespace, link and state."""
        if self._init is not None:
            self._init.wait(timeout=60)
        if self.pid_namespace:
            _wait_until_empty("pid", self.pid_namespace, self.name)
        if self.netns in _netns_names(self.sandbox.prefix):
            _ip("netns", "del", self.netns)
        if self.veth in _link_names(self.sandbox.prefix):
            try:
                _ip("link", "del", self.veth)
            except CommandError:
                # Deleting the namespace deletes the pair too, asynchronously: it may have gone
                # between the listing and the delete. Only a link that is still there is an error.
                if self.veth in _link_names(self.sandbox.prefix):
                    raise
        _remove_cgroups(self.cgroup_parent.strip("/"))
        shutil.rmtree(self.dir, ignore_errors=True)

    def _load_image(self, tar: Path) -> None:
        with open(tar, "rb") as data:
            self._run(["docker", "load", "-q"], stdin=data)

    def _docker_answers(self) -> bool:
        """GET /_ping on the host's socket, reached through its PID 1's root: polling this
        spawns no processes, which matters while several hosts boot on two cores."""
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(2)
                conn.connect(f"/proc/{self.init_pid}/root/run/docker.sock")
                conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return conn.recv(64).split(b"\r\n")[0].endswith(b" 200 OK")
        except OSError:
            return False

    # --- plumbing -----------------------------------------------------------------------

    def _nsenter(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-n", "-p", "--wd=/root",
                "--", *argv]

    def _run(self, argv: list[str], check: bool = True,
             **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        """Run argv inside the host's namespaces (binary I/O, for plumbing)."""
        kwargs.setdefault("env", HOST_ENV)
        if "input" not in kwargs:
            kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        result = subprocess.run(self._nsenter(argv), stderr=subprocess.PIPE, timeout=300,
                                **kwargs)
        if check and result.returncode != 0:
            raise CommandError(f"{self.name} (console)", argv, result.returncode,
                               _decode(result.stdout), _decode(result.stderr))
        return result

    def _complete(self, argv: list[str], shown: str, stdin: str | None, check: bool,
                  timeout: float) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, input=stdin,
                                stdin=subprocess.DEVNULL if stdin is None else None,
                                capture_output=True, text=True, timeout=timeout, env=HOST_ENV)
        if check and result.returncode != 0:
            raise CommandError(self.name, shown, result.returncode, result.stdout, result.stderr)
        return result

    def _wait(self, probe: Callable[[], T], what: str, timeout: float, log: Path) -> T:
        """Poll `probe` until it returns a truthy value; fail early if the host died."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if self._init is not None and self._init.poll() is not None:
                raise SandboxError(f"{self.name}: host exited while waiting for {what}\n"
                                   f"{_tail_file(log)}")
            if time.monotonic() > deadline:
                raise SandboxError(f"{self.name}: {what} not ready after {timeout:.0f} s\n"
                                   f"{_tail_file(log)}")
            time.sleep(0.05)


class Sandbox:
    """A bridge with sandbox hosts on it. Use as a context manager, or call `close()`.

    `workdir` must be on a real disk (dockerd data lives there); it also caches the SSH key
    and the built image across runs. `prefix` names every namespace, link and cgroup, so two
    sandboxes with different prefixes and subnets can run side by side; a second sandbox
    with the same prefix is refused while the first one runs.
    """

    def __init__(self, workdir: Path, subnet: str = "10.231.0.0/24", prefix: str = "swsb",
                 storage_driver: str = "overlay2") -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"prefix must match {_PREFIX.pattern}: {prefix!r}")
        self.workdir = Path(workdir).resolve()
        self.prefix = prefix
        self.network = ipaddress.IPv4Network(subnet)
        self.gateway = str(self.network[1])  # the bridge's address in the root namespace
        self.bridge = f"{prefix}-br"
        self.storage_driver = storage_driver
        self.key_path = self.workdir / "id_ed25519"
        self._hosts: dict[str, Host] = {}
        self._images: dict[str, Path] = {}
        self._addresses = (a for a in self.network.hosts() if str(a) != self.gateway)
        self._mutex = threading.RLock()
        self._closed = False
        self._lock_file = _acquire_lock(prefix)
        _register(self)
        try:
            _remove_leftovers(prefix)
            self._check_subnet_free()
            self.workdir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.workdir / "hosts", ignore_errors=True)
            if not self.key_path.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                "swarm-sandbox", "-f", str(self.key_path)], check=True)
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            # Bridged frames pass the root namespace's FORWARD chain (br_netfilter); its
            # policy is DROP once any dockerd ran there, and swarm joins then time out.
            _iptables("-I", "FORWARD", *_forward_rule(self.bridge))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def hosts(self) -> Mapping[str, Host]:
        """Hosts by name (read-only view, in the order they were added; includes a host
        that another thread is still booting, see `Host.ready`)."""
        return MappingProxyType(self._hosts)

    @property
    def public_key(self) -> str:
        return self.key_path.with_suffix(".pub").read_text()

    @property
    def ssh_options(self) -> list[str]:
        """Options for the system `ssh` to log in to any host as root (e.g. Docker's ssh_opts)."""
        return [*self.login_options, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]

    @property
    def login_options(self) -> list[str]:
        """The sandbox key and batch settings, without any host key policy."""
        return ["-F", "/dev/null", "-i", str(self.key_path), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]

    def host_by_ip(self, ip: str) -> Host:
        for host in list(self._hosts.values()):
            if host.ip == ip:
                return host
        raise KeyError(f"no sandbox host has address {ip}")

    def add_host(self, name: str, daemon_json: Mapping[str, Any] | None = None, key: str | None = None) -> Host:
        """Boot a host named `name` (also its hostname) and wait until SSH and dockerd answer.

        `daemon_json` is merged over the base /etc/docker/daemon.json, e.g.
        `{"node-generic-resources": ["GPU=fake-uuid-1"]}`. Every host gets a new address,
        also one that replaces a destroyed host of the same name (as a new droplet would).
        Images loaded with `load_image` are loaded on it too. `key` (default: the name) is
        its handle in `hosts`, for two hosts of the same name.
        """
        if not _HOSTNAME.fullmatch(name):
            raise ValueError(f"not a valid hostname: {name!r}")
        key = key or name
        with self._mutex:
            if self._closed:
                raise SandboxError("sandbox is closed")
            if key in self._hosts:
                raise SandboxError(f"host {key} exists; destroy_host it first")
            address = next(self._addresses, None)
            if address is None:
                raise SandboxError(f"no free address left in {self.network}")
            index = int(address) - int(self.network.network_address)
            # Registered before booting, so that close() also removes a half-booted host.
            host = self._hosts[key] = Host(self, name, str(address), index, daemon_json or {}, key)
        try:
            host._boot(self.public_key)
        except BaseException:
            self.destroy_host(key)
            raise
        return host

    def add_hosts(self, names: Iterable[str]) -> list[Host]:
        """Boot several hosts in parallel (dockerd start-up dominates; it overlaps well)."""
        return _parallel(self.add_host, list(names))

    def destroy_host(self, name: str) -> None:
        """Kill the host's processes and remove its namespace, link and state, like a
        destroyed droplet; `add_host(name)` then boots a fresh one."""
        with self._mutex:
            host = self._hosts.pop(name)
        host._kill()
        host._remove()

    def load_image(self, tag: str = DEFAULT_IMAGE) -> str:
        """Build (once; cached in workdir) a busybox image `FROM scratch` and load it on every
        host, now and added later. Services using it need `--no-resolve-image`."""
        busybox = Path(_which("busybox")).read_bytes()
        digest = hashlib.sha256(tag.encode() + _DOCKERFILE.encode() + busybox).hexdigest()
        tar = self.workdir / "images" / f"{digest[:16]}.tar"
        if not tar.exists():
            builder = next((h for h in list(self._hosts.values()) if h.ready), None)
            if builder is None:
                raise SandboxError("load_image must build on a host: add one first")
            self._build_image(builder, tag, busybox, tar)
        with self._mutex:
            self._images[tag] = tar
            hosts = [h for h in self._hosts.values() if h.ready]
        _parallel(lambda host: host._load_image(tar), hosts)
        return tag

    def close(self) -> None:
        """Tear down everything: processes, namespaces, links, firewall rule, cgroups, state.
        Idempotent; raises SandboxError afterwards if something could not be removed."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            hosts = list(self._hosts.values())
            self._hosts.clear()
        errors: list[str] = []
        for host in hosts:  # kill all first: the kernel tears the hosts down in parallel
            _attempt(errors, host._kill)
        for host in hosts:
            _attempt(errors, host._remove)
        _attempt(errors, _remove_leftovers, self.prefix)
        _attempt(errors, shutil.rmtree, self.workdir / "hosts", True)
        self._lock_file.close()
        _unregister(self)
        if errors:
            raise SandboxError(f"sandbox {self.prefix} teardown: " + "; ".join(errors))

    def _build_image(self, builder: Host, tag: str, busybox: bytes, tar: Path) -> None:
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as archive:
            for name, data, mode in (("Dockerfile", _DOCKERFILE.encode(), 0o644),
                                     ("busybox", busybox, 0o755)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))
        # The legacy builder needs no BuildKit frontend image (there is no registry).
        builder._run(["env", "DOCKER_BUILDKIT=0", "docker", "build", "-q", "-t", tag, "-"],
                     input=context.getvalue())
        tar.parent.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".partial")
        with open(partial, "wb") as out:
            builder._run(["docker", "save", tag], stdout=out)
        partial.replace(tar)

    def _check_subnet_free(self) -> None:
        routes = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"],
                                capture_output=True, text=True, check=True).stdout
        for line in routes.splitlines():
            # "DEST ..." or "TYPE DEST ..." (local, broadcast, unreachable, ...).
            for token in line.split()[:2]:
                try:
                    destination = ipaddress.IPv4Network(token, strict=False)
                except ValueError:
                    continue
                # A broader route (say a 10.0.0.0/8 VPC) loses to the bridge's own route.
                if (destination.overlaps(self.network)
                        and destination.prefixlen >= self.network.prefixlen):
                    raise SandboxError(f"subnet {self.network} is in use on this machine "
                                       f"({line.strip()}); pick another subnet")
                break


# --- teardown on exit and signals ---------------------------------------------------------

_open_sandboxes: set[Sandbox] = set()
_handlers_installed = False


def _register(sandbox: Sandbox) -> None:
    global _handlers_installed
    _open_sandboxes.add(sandbox)
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:  # leave others' handlers alone
                signal.signal(signum, _close_all_and_die)
    # SIGINT needs nothing: KeyboardInterrupt unwinds through close() or atexit.


def _unregister(sandbox: Sandbox) -> None:
    _open_sandboxes.discard(sandbox)


def _close_all() -> None:
    for sandbox in list(_open_sandboxes):
        try:
            sandbox.close()
        except Exception as error:  # keep closing the others
            print(f"swarm sandbox: {error}", flush=True)


def _close_all_and_die(signum: int, frame: FrameType | None) -> None:
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# --- helpers ------------------------------------------------------------------------------

def _acquire_lock(prefix: str) -> io.TextIOWrapper:
    """Hold a lock per prefix for the sandbox's lifetime; the kernel drops it if we die,
    which is how a later run knows that leftovers with this prefix are stale."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    lock = open(_LOCK_DIR / f"{prefix}.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "?"
        lock.close()
        raise SandboxError(f"a sandbox with prefix {prefix!r} is running (pid {owner}); "
                           "use another prefix and subnet") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _remove_leftovers(prefix: str) -> None:
    """Remove everything named after `prefix`; only called while holding its lock."""
    own_pid_ns = os.stat("/proc/self/ns/pid").st_ino
    for ns in _netns_names(prefix):
        pids = pids_in_namespace("net", os.stat(f"/run/netns/{ns}").st_ino)
        pid_namespaces = set()
        for pid in pids:
            try:
                pid_namespaces.add(os.stat(f"/proc/{pid}/ns/pid").st_ino)
            except OSError:
                pass
            _signal(pid, signal.SIGKILL)
        pid_namespaces.discard(own_pid_ns)
        for inode in pid_namespaces:
            _wait_until_empty("pid", inode, ns)
        _ip("netns", "del", ns)
    for link in _link_names(prefix):
        subprocess.run(["ip", "link", "del", link], capture_output=True)  # may go with its peer
    bridge = f"{prefix}-br"
    while _forward_rule_present(bridge):
        _iptables("-D", "FORWARD", *_forward_rule(bridge))
    _remove_cgroups(prefix)


def _cloud_init_done() -> str:
    """cloud-init's /run/cloud-init/status.json after a first boot without errors."""
    stage = {"start": time.time(), "finished": time.time(), "errors": []}
    stages = ("init-local", "init", "modules-config", "modules-final")
    return json.dumps({"v1": {"datasource": "DataSourceNone", "stage": None,
                              **{name: stage for name in stages}}})


def _wait_until_empty(kind: str, inode: int, what: str, timeout: float = 30) -> None:
    """A killed PID namespace empties asynchronously (the kernel reaps it from its init)."""
    deadline = time.monotonic() + timeout
    while pids_in_namespace(kind, inode):
        if time.monotonic() > deadline:
            raise SandboxError(f"processes of {what} survive SIGKILL")
        time.sleep(0.05)


def _netns_names(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{prefix}-"))
    except FileNotFoundError:
        return []


def _link_names(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    names = (line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
    return [name for name in names if name.startswith(f"{prefix}-")]


def _forward_rule(bridge: str) -> list[str]:
    return ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def _forward_rule_present(bridge: str) -> bool:
    return subprocess.run(["iptables", "-C", "FORWARD", *_forward_rule(bridge)],
                          capture_output=True).returncode == 0


def _cgroup_dirs(relative: str) -> list[Path]:
    """`relative` under the cgroup v2 root and under every v1 hierarchy."""
    roots = [_CGROUP_ROOT, *(p for p in _CGROUP_ROOT.iterdir() if p.is_dir())]
    return [root / relative for root in roots if (root / relative).is_dir()]


def _remove_cgroups(relative: str) -> None:
    for top in _cgroup_dirs(relative):
        for directory, _, _ in sorted(os.walk(top), key=lambda d: -len(d[0])):
            deadline = time.monotonic() + 5
            while True:
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the kernel still releases exited tasks
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def _ip(*args: str) -> None:
    _check_call(["ip", *args])


def _iptables(*args: str) -> None:
    _check_call(["iptables", "-w", *args])


def _check_call(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError("root namespace", argv, result.returncode, result.stdout,
                           result.stderr)


def find_command(command: str) -> str | None:
    """The command's path, looking in the sbin folders too (root's tools, not always on PATH)."""
    return shutil.which(command, path=os.environ.get("PATH", "") + os.pathsep + HOST_ENV["PATH"])


def _which(command: str) -> str:
    path = find_command(command)
    if path is None:
        raise SandboxError(f"command not found: {command}")
    return path


def _first_child(pid: int) -> int:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def _tcp_open(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=1).close()
        return True
    except OSError:
        return False


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a program interpreter (PT_INTERP)."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3
               for i in range(phnum))


def _parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(fn, items))


def _attempt(errors: list[str], fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception as error:
        errors.append(str(error))


def _decode(data: bytes | None) -> str:
    return (data or b"").decode(errors="replace")


def _tail(text: str | None, limit: int = 2000) -> str:
    text = text or ""
    return text if len(text) <= limit else "..." + text[-limit:]


def _tail_file(path: Path) -> str:
    try:
        return f"--- {path} (tail) ---\n{_tail(path.read_text(errors='replace'))}"
    except OSError:
        return f"({path} unreadable)"
