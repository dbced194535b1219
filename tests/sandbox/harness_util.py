"""Small utilities of the sandbox harness (tests/sandbox/harness.py): its errors, the
commands it needs and how it finds them, `wait_for`, and running commands in the root
namespace."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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
