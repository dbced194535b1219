"""Teardown of sandboxes (tests/sandbox/harness.py): the per-prefix lock, the removal of
everything named after a prefix (namespaces, links, the FORWARD rule, cgroups), and closing
open sandboxes on interpreter exit and on SIGTERM/SIGHUP."""

from __future__ import annotations

import atexit
import fcntl
import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tests.sandbox.harness_util import SandboxError, _ip, _iptables, _signal

if TYPE_CHECKING:
    from tests.sandbox.harness import Sandbox

_LOCK_DIR = Path("/run/swarm-sandbox")
_CGROUP_ROOT = Path("/sys/fs/cgroup")


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
