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

The harness is split by concern; this module has `Sandbox` and re-exports the rest, so tests
import everything from here: harness_host.py (`Host`), harness_host_keys.py (known_hosts, host
keys), harness_images.py (the busybox image), harness_teardown.py (leftovers, exit handlers)
and harness_util.py (errors, `wait_for`, commands).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tests.sandbox.harness_host import Host
from tests.sandbox.harness_host_keys import (
    host_public_key,
    install_host_key,
    pinned_known_hosts,
    pinned_ssh_options,
    write_known_hosts,
)
from tests.sandbox.harness_images import DEFAULT_IMAGE, build_image, image_tar
from tests.sandbox.harness_teardown import (
    _acquire_lock,
    _forward_rule,
    _link_names,
    _register,
    _remove_leftovers,
    _unregister,
    leftovers,
    pids_in_namespace,
)
from tests.sandbox.harness_util import (
    HOST_ENV,
    REQUIRED_COMMANDS,
    CommandError,
    SandboxError,
    _attempt,
    _ip,
    _iptables,
    _parallel,
    _which,
    find_command,
    missing_prerequisites,
    wait_for,
)

__all__ = [
    "DEFAULT_IMAGE", "HOST_ENV", "REQUIRED_COMMANDS", "CommandError", "Host", "Sandbox", "SandboxError", "_which",
    "find_command", "host_public_key", "install_host_key", "leftovers", "missing_prerequisites", "pids_in_namespace",
    "pinned_known_hosts", "pinned_ssh_options", "wait_for", "write_known_hosts",
]

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}")  # "<prefix>-br" and "<prefix>-<n>" must fit IFNAMSIZ


class Sandbox:
    """A bridge with sandbox hosts on it. Use as a context manager, or call `close()`.

    `workdir` must be on a real disk (dockerd data lives there); it also caches the SSH key
    and the built image across runs. `prefix` names every namespace, link and cgroup, so two
    sandboxes with different prefixes and subnets can run side by side; a second sandbox
    with the same prefix is refused while the first one runs.
    """

    def __init__(self, workdir: Path, subnet: str = "10.231.0.0/24", prefix: str = "swsb",
                 storage_driver: str = "overlay2") -> None:
        self._fields(workdir, subnet, prefix, storage_driver)
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

    def _fields(self, workdir: Path, subnet: str, prefix: str, storage_driver: str) -> None:
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

    # --- a sandbox that outlives its process (scripts/local-swarm) ---------------------------

    def detach(self) -> dict[str, Any]:
        """Leave the hosts, bridge and firewall rule running and let go of the sandbox: no
        teardown at exit, the prefix's lock released. Returns what `attach` needs to take it up
        again in another process (JSON-able)."""
        with self._mutex:
            if self._closed:
                raise SandboxError("sandbox is closed")
            self._closed = True
            hosts = [host.record() for host in self._hosts.values() if host.ready]
            self._hosts.clear()
        self._lock_file.close()
        _unregister(self)
        used = [int(ipaddress.IPv4Address(h["ip"])) for h in hosts]
        return {
            "workdir": str(self.workdir), "subnet": str(self.network), "prefix": self.prefix,
            "storage_driver": self.storage_driver, "hosts": hosts,
            "images": {tag: str(tar) for tag, tar in self._images.items()},
            "next_address": str(ipaddress.IPv4Address(max(used, default=int(self.network[1])) + 1)),
        }

    @classmethod
    def attach(cls, record: Mapping[str, Any]) -> Sandbox:
        """Take up a sandbox another process left running (`detach`): its hosts are adopted as
        they run, nothing is removed or booted. Fails, naming what is missing, when a host or
        the bridge is gone (the machine rebooted, or the sandbox was torn down meanwhile)."""
        sandbox = cls.__new__(cls)
        sandbox._fields(Path(record["workdir"]), record["subnet"], record["prefix"], record["storage_driver"])
        sandbox._lock_file = _acquire_lock(sandbox.prefix)
        _register(sandbox)
        try:
            if sandbox.bridge not in _link_names(sandbox.prefix):
                raise SandboxError(f"bridge {sandbox.bridge} is gone")
            # Addresses are never reused, also across processes: a replacement gets a new one.
            first = ipaddress.IPv4Address(record["next_address"])
            sandbox._addresses = (a for a in sandbox.network.hosts() if a >= first and str(a) != sandbox.gateway)
            sandbox._images = {tag: Path(tar) for tag, tar in record.get("images", {}).items()}
            for entry in record["hosts"]:
                sandbox._hosts[entry["key"]] = Host.adopt(sandbox, entry)
        except BaseException:
            sandbox.detach_quietly()
            raise
        return sandbox

    def detach_quietly(self) -> None:
        """Let go of the sandbox without touching it (an `attach` that failed)."""
        with self._mutex:
            self._closed = True
            self._hosts.clear()
        self._lock_file.close()
        _unregister(self)

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
        tar = image_tar(self.workdir, tag, busybox)
        if not tar.exists():
            builder = next((h for h in list(self._hosts.values()) if h.ready), None)
            if builder is None:
                raise SandboxError("load_image must build on a host: add one first")
            build_image(builder, tag, busybox, tar)
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
