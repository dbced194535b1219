"""Pulumi mocks that do the real work on the sandbox swarm.

Run under `tests.pulumi_program.run_program`, the program's own Output chain and dependency
graph drive a real bootstrap and deploy:
- each droplet is mapped (by name) to the sandbox host of the same name, and that host's sshd is
  given the host key the droplet's user data installs (`ssh_keys`), as cloud-init would do;
- each `command:remote:Command` runs its `create` script over SSH on the host named in its
  `connection.host`, with its `stdin`, and returns the real stdout. The connection must pin a
  host key (`connection.hostKey`) and `ssh` checks it strictly: a host presenting another key
  is refused before anything is sent;
- each Docker network, secret, config and service is created through the Engine API of the
  manager its provider's `host` names (engine_api.py builds the requests from the inputs), over
  SSH checked against the known_hosts file the provider's `sshOpts` name.
A failure fails the registration, as it would fail `pulumi up`.

Reuse one SandboxCloud for successive runs of the program to get `pulumi up` again: the
remote commands run again (their scripts must be idempotent), while a Docker object whose
inputs did not change is left alone, as the engine leaves a resource without a diff. A service
whose inputs changed is updated in place (POST /services/{id}/update), as the provider does;
changing any other Docker object is not emulated.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pulumi
import yaml

from tests.pulumi_program import FakeCloud, fake_droplet_id, unwrap
from tests.sandbox import engine_api
from tests.sandbox.harness import Host, Sandbox, install_host_key, pinned_known_hosts

SERVICE = "docker:index/service:Service"
# Docker resource type -> (Engine API endpoint, request builder)
ENGINE_CREATE = {
    "docker:index/network:Network": ("/networks/create", engine_api.network_request),
    "docker:index/secret:Secret": ("/secrets/create", engine_api.object_request),
    "docker:index/serviceConfig:ServiceConfig": ("/configs/create", engine_api.object_request),
    "docker:index/service:Service": ("/services/create", engine_api.service_spec),
}


class SandboxCloud(FakeCloud):
    def __init__(self, sandbox: Sandbox):
        super().__init__()
        self.sandbox = sandbox
        self.executed: list[tuple[str, str, float]] = []  # (command name, host, seconds)
        self.skipped: list[str] = []  # commands not run on the sandbox (volume mounts)
        self.node_config_skipped: list[str] = []  # authorized keys and daemon settings, see _run_command
        self.docker_hosts: dict[str, Host] = {}  # docker provider id -> the manager it reaches
        self.docker_state: dict[tuple[str, str], tuple[str, str]] = {}  # (type, name) -> (inputs, id)
        self.docker_known_hosts: dict[str, Path] = {}  # docker provider id -> its known_hosts file
        self.docker_provider_inputs: dict[str, dict] = {}  # docker provider id -> its inputs (registry auth)
        self.host_keys: dict[Host, str] = {}  # host -> the private host key its "droplet" installed
        self._lock = threading.Lock()
        self.droplet_hosts: dict[str, Host] = {}  # droplet id -> host
        self.reserved: dict[str, Host] = {}  # reserved IP -> the host of the droplet it is assigned to

    def host_at(self, address: str) -> Host:
        """The host answering at `address`: a host's own, or a reserved IP assigned to its droplet."""
        return self.reserved.get(address) or self.sandbox.host_by_ip(address)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "digitalocean:index/droplet:Droplet":
            host = self.sandbox.hosts[args.inputs["name"]]
            self._install_host_key(host, unwrap(args.inputs)["userData"])
            droplet_id = fake_droplet_id(host.name)
            self.droplet_hosts[droplet_id] = host
            return [droplet_id, {**args.inputs, "ipv4Address": host.ip, "ipv4AddressPrivate": host.ip}]
        if args.typ == "digitalocean:index/reservedIpAssignment:ReservedIpAssignment":
            inputs = unwrap(args.inputs)
            self.reserved[inputs["ipAddress"]] = self.droplet_hosts[str(int(inputs["dropletId"]))]
            return [f"{args.name}-id", args.inputs]
        if args.typ == "command:remote:Command":
            return self._run_command(args)
        if args.typ == "pulumi:providers:docker":
            provider_id = f"{args.name}-id"
            inputs = unwrap(args.inputs)
            dialed = inputs["host"].split("@", 1)[1]
            host = self.host_at(dialed)
            self.docker_hosts[provider_id] = host
            # The provider pins the key for the address it dials (a reserved IP); the sandbox routes
            # that address to the host's own, so the key pinned for it is pinned for that one.
            self.docker_known_hosts[provider_id] = pinned_known_hosts(
                self.sandbox, host.ip, pinned_key(provider_known_hosts(inputs["sshOpts"]), dialed))
            self.docker_provider_inputs[provider_id] = inputs
            return [provider_id, args.inputs]
        if args.typ in ENGINE_CREATE:
            return self._create_docker_object(args)
        return super().new_resource(args)

    def _create_docker_object(self, args: pulumi.runtime.MockResourceArgs):
        inputs = unwrap(args.inputs)
        serialized = json.dumps(inputs, sort_keys=True)
        known = self.docker_state.get((args.typ, args.name))
        if known and known[0] == serialized:
            return [known[1], args.inputs]
        if known and args.typ != SERVICE:
            raise NotImplementedError(f"{args.name}: changing a Docker object other than a service is not emulated")
        provider_id = args.provider.rsplit("::", 1)[1]
        manager, known_hosts = self.docker_hosts[provider_id], self.docker_known_hosts[provider_id]
        auth = (engine_api.registry_auth_header(inputs, self.docker_provider_inputs[provider_id])
                if args.typ == SERVICE else None)
        headers = [f"X-Registry-Auth: {auth}"] if auth else []
        if known:  # the service's spec changed: update it in place, at the version Docker has
            object_id = known[1]
            version = engine_api.request(args.name, manager, f"/services/{object_id}",
                                         known_hosts=known_hosts)["Version"]["Index"]
            engine_api.request(args.name, manager, f"/services/{object_id}/update?version={version}",
                               engine_api.service_spec(inputs), headers, known_hosts=known_hosts)
        else:
            endpoint, build = ENGINE_CREATE[args.typ]
            created = engine_api.request(args.name, manager, endpoint, build(inputs), headers, known_hosts=known_hosts)
            object_id = created.get("ID") or created["Id"]
        self.docker_state[(args.typ, args.name)] = (serialized, object_id)
        return [object_id, args.inputs]

    def _run_command(self, args: pulumi.runtime.MockResourceArgs):
        if args.name.endswith("-swarm-state"):
            # Shared hosts have no block-storage volume to keep the swarm state on; the lifecycle
            # engine's droplets do (tests/sandbox/lifecycle_cloud.py).
            return [f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}]
        inputs = unwrap(args.inputs)
        if args.name.endswith(("-access", "-daemon")):
            # Shared hosts are booted by the tests, not from the user data: their daemon.json is
            # the harness's and the harness logs in with its own key. Rewriting either would
            # restart Docker under the other commands and lock the harness out; the lifecycle
            # engine's droplets boot from the user data and run both (tests/sandbox/lifecycle.py).
            with self._lock:
                self.node_config_skipped.append(args.name)
            return [f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}]
        if args.name.endswith("-volume"):
            # No block storage here: sandbox hosts share the machine's /dev and /etc/fstab, so the
            # mount script must not run on them. test_volume_mount.py runs it on loop devices.
            with self._lock:
                self.skipped.append(args.name)
            return [f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}]
        host = self.host_at(inputs["connection"]["host"])
        started = time.monotonic()
        result = self.ssh_pinned(args.name, inputs["connection"], inputs["create"], inputs.get("stdin"))
        with self._lock:
            self.executed.append((args.name, host.name, time.monotonic() - started))
        if result.returncode != 0:
            # Like the provider: the command's stderr is the error (never its stdin).
            raise RuntimeError(f"{args.name} failed on {host.name} (exit {result.returncode}): {result.stderr.strip()}")
        return [f"{args.name}-id", {**args.inputs, "stdout": result.stdout, "stderr": result.stderr}]

    def ssh_pinned(self, what: str, connection: dict, script: str, stdin: str | None):
        """Run `script` over SSH as pulumi-command does for `connection` (see pinned_ssh)."""
        return pinned_ssh(self.host_at(connection["host"]), what, connection, script, stdin, 300)

    def _install_host_key(self, host: Host, user_data: str) -> None:
        """cloud-init's `ssh_keys`, on a "droplet" the first time it is created with this key. A
        droplet that is not replaced does not run cloud-init again: a host whose sshd now presents
        another key keeps presenting it (see test_host_keys.py)."""
        private_key = user_data_host_key(user_data)
        with self._lock:
            if self.host_keys.get(host) == private_key:
                return
            self.host_keys[host] = private_key
        install_host_key(host, private_key)


def pinned_ssh(host: Host, what: str, connection: dict, script: str, stdin: str | None, timeout: float):
    """Run `script` on `host` as pulumi-command does for `connection`: the host must present
    `connection.hostKey` (a strict known_hosts check), or `ssh` gives up before authenticating
    and nothing, stdin included, is sent. A connection that pins no key is refused outright."""
    host_key = connection.get("hostKey")
    if not host_key:
        raise RuntimeError(f"{what}: the connection to {connection['host']} pins no host key (connection.hostKey)")
    # Pinned for the address `ssh` dials: the host's own (a reserved IP is routed to it here).
    return host.ssh(script, stdin=stdin, check=False, timeout=timeout,
                    known_hosts=pinned_known_hosts(host.sandbox, host.ip, host_key))


def user_data_daemon_json(user_data: str) -> dict:
    """The /etc/docker/daemon.json a droplet's user data writes (cloud-init `write_files`)."""
    files = yaml.safe_load(user_data)["write_files"]
    (content,) = [f["content"] for f in files if f["path"] == "/etc/docker/daemon.json"]
    return json.loads(content)


def user_data_host_key(user_data: str) -> str:
    """The private host key a droplet's user data installs (cloud-init `ssh_keys`)."""
    return yaml.safe_load(user_data)["ssh_keys"]["ed25519_private"]


def pinned_key(known_hosts: Path, address: str) -> str:
    """The host key ("ssh-ed25519 AAAA...") a known_hosts file pins for `address`: exactly one."""
    keys = [line.split(" ", 1)[1].strip() for line in known_hosts.read_text().splitlines()
            if line.split(" ", 1)[0] == address]
    if len(keys) != 1:
        raise RuntimeError(f"{known_hosts} pins {len(keys)} keys for {address}, the address the Docker provider dials")
    return keys[0]


def provider_known_hosts(ssh_opts) -> Path:
    """The known_hosts file the Docker provider's `ssh` checks; it must check strictly."""
    options = json.loads(ssh_opts) if isinstance(ssh_opts, str) else list(ssh_opts)
    if "StrictHostKeyChecking=yes" not in options:
        raise RuntimeError(f"the Docker provider's ssh does not check host keys strictly: {options}")
    (path,) = [o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile=")]
    return Path(path)
