"""One sandbox host, a stand-in for a droplet (tests/sandbox/harness.py): its init script
and `systemctl`, booting, power cycles, teardown, and running commands on it over SSH or on
its console."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.sandbox.harness_host_keys import pinned_ssh_options
from tests.sandbox.harness_teardown import (
    _link_names,
    _netns_names,
    _remove_cgroups,
    _wait_until_empty,
    pids_in_namespace,
)
from tests.sandbox.harness_util import (
    HOST_ENV,
    CommandError,
    SandboxError,
    T,
    _decode,
    _first_child,
    _ip,
    _signal,
    _tail_file,
    _tcp_open,
    _which,
)

if TYPE_CHECKING:
    from tests.sandbox.harness import Sandbox

# Runs as the child of docker-init, which is PID 1 of the host's PID namespace and reaps
# orphans (dockerd started later is one). Bind sources are absolute root-namespace paths,
# so they are mounted before /root and /run are covered (the workdir may live below them).
_INIT_SCRIPT = r"""
set -eu
name=$1 address=$2 dir=$3 sshd=$4 cloud_init_status=$5 systemctl=$6 docker_client=$7
hostname "$name"
# The host key lives on the host's disk, as a droplet's does in /etc/ssh: generated at first boot,
# kept across power cycles; install_host_key replaces it, as cloud-init's `ssh_keys` does. Read
# now: /run and /root may cover the workdir once mounted.
[ -e "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
host_key=$(cat "$dir/ssh_host_ed25519_key")
# A droplet's own disk: /etc and /var copy-on-write over the machine's (an overlay each, its
# upper layer in the host's folder: kept across power cycles, gone with the droplet), so that
# what a program leaves on a node (cron entries, /var/lib/...) is not found by its successor.
# Each overlay is assembled at a staging point with the host's own folders bound into it, then
# moved over /etc or /var: the bind sources are read before /var covers the workdir (which may
# live below it). /etc first: an overlay whose upper layer lies below a directory already in use
# as another overlay's lower layer (/var) is refused by the kernel in the same namespace.
for top in etc var; do
  mkdir -p "$dir/disk/$top/upper" "$dir/disk/$top/work" "$dir/disk/$top/merged"
  mount -t overlay overlay -o "lowerdir=/$top,upperdir=$dir/disk/$top/upper,workdir=$dir/disk/$top/work" \
    "$dir/disk/$top/merged"
done
# A droplet's image has none of the program's files; the machine may (left by runs before hosts
# had their own disk, or by a run outside the sandbox): hidden from the host at its first boot.
if [ ! -e "$dir/disk/booted" ]; then
  rm -rf "$dir/disk/var/merged/lib/swarm-jobs" "$dir/disk/etc/merged/cron.d/swarm-jobs"
  : >"$dir/disk/booted"
fi
# The sandbox's own folder, when it lies below /var (/var/tmp/swarm-sandbox by default): the
# machine's, live, not through the overlay, which shows files added to its lower layer after it
# was mounted only by chance (a test's build context written after the hosts booted was missing).
sandbox=$(dirname "$(dirname "$dir")")
case "$sandbox" in
  /var/*)
    mkdir -p "$dir/disk/var/merged/${sandbox#/var/}"
    mount --bind "$sandbox" "$dir/disk/var/merged/${sandbox#/var/}"
    ;;
esac
mkdir -p "$dir/disk/var/merged/lib/docker" "$dir/disk/etc/merged/docker"  # the docker.io package's own folders
mount --bind "$dir/var-lib-docker" "$dir/disk/var/merged/lib/docker"
mount --bind "$dir/etc-docker" "$dir/disk/etc/merged/docker"
mount --bind "$dir/root" /root
[ -e "$dir/fstab" ] || : >"$dir/fstab"
[ -e "$dir/disk/etc/merged/fstab" ] || : >"$dir/disk/etc/merged/fstab"  # the mount point
mount --bind "$dir/fstab" "$dir/disk/etc/merged/fstab"
mount --move "$dir/disk/etc/merged" /etc
mount --move "$dir/disk/var/merged" /var
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
# Like a droplet's: its own /mnt (volumes are mounted there), its own /etc/fstab (kept on its
# disk across reboots) and its own /dev/disk (where an attached volume's device appears).
mount -t tmpfs -o mode=0755 tmpfs /mnt
mount -t tmpfs -o mode=0755 tmpfs /dev/disk
# What systemd does at boot: mount the volumes listed in fstab (nofail: a missing one is skipped).
mount -a -t ext4,xfs 2>/dev/null || true
# No systemd here: a `systemctl` that manages the one service scripts ask for, docker, first on
# PATH (/usr/local/sbin becomes the host's own).
mount -t tmpfs -o mode=0755 tmpfs /usr/local/sbin
printf '%s\n' "$systemctl" >/usr/local/sbin/systemctl
printf '%s\n' "$docker_client" >/usr/local/sbin/docker
chmod 0755 /usr/local/sbin/systemctl /usr/local/sbin/docker
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

# The hosts' `systemctl`: stop, start, restart and is-active for docker.service and docker.socket,
# as systemd does them (stop waits for dockerd to exit; start returns once the daemon answers).
# docker.socket is active from boot, as on a droplet; a unit stopped by `systemctl stop` is
# recorded in /run/docker.socket.stopped or /run/docker.service.stopped until started again. Where a test enables socket activation (/run/docker.socket-activation),
# the host's `docker` (_DOCKER_CLIENT) starts a stopped daemon while the socket is active, as
# systemd does for the first client to connect.
_SYSTEMCTL = r"""#!/bin/sh
set -eu
action=$1
shift
[ "$#" -gt 0 ] || { echo "systemctl (sandbox host): '$action' needs a unit" >&2; exit 1; }
service=false socket=false
for unit in "$@"; do
  case "$unit" in
    docker | docker.service) service=true ;;
    docker.socket) socket=true ;;
    *) echo "systemctl (sandbox host): only docker.service and docker.socket are managed here, not '$unit'" >&2; exit 1 ;;
  esac
done
stop() {
  pid=$(cat /run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}
start() {
  docker_answers && return 0
  setsid dockerd </dev/null >>/run/dockerd.log 2>&1 &
  tries=0
  until docker_answers; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { echo "dockerd did not answer; see /run/dockerd.log" >&2; exit 1; }
    sleep 0.2
  done
}
# The docker client that PATH finds after this directory's (the host's `docker` is a wrapper).
client=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx /usr/local/sbin | paste -sd: -) && command -v docker)
docker_answers() { "$client" info >/dev/null 2>&1; }
case "$action" in
  stop) if $socket; then : >/run/docker.socket.stopped; fi; if $service; then stop; : >/run/docker.service.stopped; fi ;;
  start) if $socket; then rm -f /run/docker.socket.stopped; fi; if $service; then rm -f /run/docker.service.stopped; start; fi ;;
  restart) if $service; then stop; start; fi ;;
  is-active)
    if $socket; then if [ -e /run/docker.socket.stopped ]; then echo inactive; exit 3; fi; echo active
    elif docker_answers; then echo active; else echo inactive; exit 3; fi ;;
  *) echo "systemctl (sandbox host): '$action' is not supported" >&2; exit 1 ;;
esac
"""

# The hosts' `docker` client, first on PATH: the real one, except that with socket activation
# enabled (/run/docker.socket-activation), a client finding docker.service stopped and
# docker.socket active starts the service first, logged to /run/docker.socket-activations.
_DOCKER_CLIENT = r"""#!/bin/sh
if [ -e /run/docker.socket-activation ] && [ -e /run/docker.service.stopped ] && [ ! -e /run/docker.socket.stopped ]; then
  date +%s.%N >>/run/docker.socket-activations
  systemctl start docker.service
fi
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx /usr/local/sbin | paste -sd: -)
exec docker "$@"
"""


def _cloud_init_done() -> str:
    """cloud-init's /run/cloud-init/status.json after a first boot without errors."""
    stage = {"start": time.time(), "finished": time.time(), "errors": []}
    stages = ("init-local", "init", "modules-config", "modules-final")
    return json.dumps({"v1": {"datasource": "DataSourceNone", "stage": None,
                              **{name: stage for name in stages}}})


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
        self.index = index
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
        and boot again with the same disk and address: /etc, /var (/var/lib/docker included) and
        /root are kept, /run, /mnt and /dev/disk start empty; fstab's volumes are mounted."""
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
                self.name, self.ip, str(self.dir), _which("sshd"), _cloud_init_done(), _SYSTEMCTL, _DOCKER_CLIENT]
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
        if self._init is not None:
            if self._init.poll() is None:
                _signal(self.init_pid or self._init.pid, signal.SIGKILL)
        elif self.init_pid and self._is_init(self.init_pid):
            _signal(self.init_pid, signal.SIGKILL)  # adopted: booted by another process

    # --- a host booted by another process (Sandbox.attach) ----------------------------------

    def record(self) -> dict[str, Any]:
        """What `adopt` needs to take this host up in another process."""
        return {"name": self.name, "key": self.key, "ip": self.ip, "index": self.index,
                "daemon_json": self.daemon_json}

    @classmethod
    def adopt(cls, sandbox: Sandbox, record: Mapping[str, Any]) -> Host:
        """The running host `record` describes: its PID 1 is found in its network namespace."""
        host = cls(sandbox, record["name"], record["ip"], record["index"], record["daemon_json"], record["key"])
        try:
            inode = os.stat(f"/run/netns/{host.netns}").st_ino
        except FileNotFoundError:
            raise SandboxError(f"host {host.key} is gone (no network namespace {host.netns})") from None
        # The host's PID 1 (docker-init) is the process of its network namespace that is PID 1
        # of its own PID namespace.
        inits = [pid for pid in pids_in_namespace("net", inode) if host._is_init(pid)]
        if not inits or not host._docker_answers_at(inits[0]):
            raise SandboxError(f"host {host.key} is not running (no init or dockerd in {host.netns})")
        host.init_pid = inits[0]
        host.pid_namespace = os.stat(f"/proc/{host.init_pid}/ns/pid").st_ino
        host.ready = True
        return host

    def _is_init(self, pid: int) -> bool:
        """True when `pid` is PID 1 of a PID namespace other than ours (a host's docker-init)."""
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            own = os.stat("/proc/self/ns/pid").st_ino
            if os.stat(f"/proc/{pid}/ns/pid").st_ino == own:
                return False
        except OSError:
            return False
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        return len(nspid) > 1 and nspid[-1] == "1"

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
        return self._docker_answers_at(self.init_pid)

    @staticmethod
    def _docker_answers_at(init_pid: int) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(2)
                conn.connect(f"/proc/{init_pid}/root/run/docker.sock")
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
