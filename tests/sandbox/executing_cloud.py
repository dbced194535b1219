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

import hashlib
import json
import shlex
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import pulumi
import yaml

from tests.pulumi_program import FakeCloud, unwrap
from tests.sandbox import engine_api
from tests.sandbox.harness import Host, Sandbox, install_host_key, write_known_hosts

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
        self.docker_hosts: dict[str, Host] = {}  # docker provider id -> the manager it reaches
        self.docker_state: dict[tuple[str, str], tuple[str, str]] = {}  # (type, name) -> (inputs, id)
        self.docker_known_hosts: dict[str, Path] = {}  # docker provider id -> its known_hosts file
        self.host_keys: dict[Host, str] = {}  # host -> the private host key its "droplet" installed
        self._known_hosts_dir = Path(tempfile.mkdtemp(prefix="swarm-known-hosts-"))
        weakref.finalize(self, shutil.rmtree, self._known_hosts_dir, True)
        self._lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "digitalocean:index/droplet:Droplet":
            host = self.sandbox.hosts[args.inputs["name"]]
            self._install_host_key(host, unwrap(args.inputs)["userData"])
            return [f"droplet-{host.name}", {**args.inputs, "ipv4Address": host.ip, "ipv4AddressPrivate": host.ip}]
        if args.typ == "command:remote:Command":
            return self._run_command(args)
        if args.typ == "pulumi:providers:docker":
            provider_id = f"{args.name}-id"
            inputs = unwrap(args.inputs)
            self.docker_hosts[provider_id] = self.sandbox.host_by_ip(inputs["host"].split("@", 1)[1])
            self.docker_known_hosts[provider_id] = provider_known_hosts(inputs["sshOpts"])
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
        auth = engine_api.registry_auth_header(inputs) if args.typ == SERVICE else None
        headers = [f"X-Registry-Auth: {auth}"] if auth else []
        if known:  # the service's spec changed: update it in place, at the version Docker has
            object_id = known[1]
            version = self._engine(args.name, manager, known_hosts, f"/services/{object_id}")["Version"]["Index"]
            self._engine(args.name, manager, known_hosts, f"/services/{object_id}/update?version={version}",
                         engine_api.service_spec(inputs), headers)
        else:
            endpoint, build = ENGINE_CREATE[args.typ]
            created = self._engine(args.name, manager, known_hosts, endpoint, build(inputs), headers)
            object_id = created.get("ID") or created["Id"]
        self.docker_state[(args.typ, args.name)] = (serialized, object_id)
        return [object_id, args.inputs]

    @staticmethod
    def _engine(what: str, manager: Host, known_hosts: Path, endpoint: str, body: dict | None = None,
                headers: Sequence[str] = ()) -> dict:
        """One Engine API request on the manager's socket: POST with a JSON body, else GET. Over
        SSH checked against the provider's known_hosts, as the provider's `ssh` does."""
        options = [f"-H {shlex.quote(header)}" for header in headers]
        if body is not None:
            options += ["-H 'Content-Type: application/json'", "--data-binary @-"]
        result = manager.ssh(
            f"curl -sS --unix-socket /var/run/docker.sock {' '.join(options)} "
            f"-w '\\n%{{http_code}}' {shlex.quote('http://localhost' + endpoint)}",
            stdin=None if body is None else json.dumps(body),
            check=False,
            known_hosts=known_hosts,
        )
        answer, _, status = result.stdout.rpartition("\n")
        if result.returncode != 0 or not status.startswith("2"):
            raise RuntimeError(f"{what}: {endpoint} answered {status}: {answer.strip()} {result.stderr.strip()}")
        return json.loads(answer) if answer.strip() else {}

    def _run_command(self, args: pulumi.runtime.MockResourceArgs):
        inputs = unwrap(args.inputs)
        host = self.sandbox.host_by_ip(inputs["connection"]["host"])
        started = time.monotonic()
        result = self.ssh_pinned(args.name, inputs["connection"], inputs["create"], inputs.get("stdin"))
        with self._lock:
            self.executed.append((args.name, host.name, time.monotonic() - started))
        if result.returncode != 0:
            # Like the provider: the command's stderr is the error (never its stdin).
            raise RuntimeError(f"{args.name} failed on {host.name} (exit {result.returncode}): {result.stderr.strip()}")
        return [f"{args.name}-id", {**args.inputs, "stdout": result.stdout, "stderr": result.stderr}]

    def ssh_pinned(self, what: str, connection: dict, script: str, stdin: str | None):
        """Run `script` over SSH as pulumi-command does for `connection`: the host must present
        `connection.hostKey` (strict known_hosts check), or nothing is sent."""
        host_key = connection.get("hostKey")
        if not host_key:
            raise RuntimeError(f"{what}: the connection to {connection['host']} pins no host key (connection.hostKey)")
        host = self.sandbox.host_by_ip(connection["host"])
        return host.ssh(script, stdin=stdin, check=False, timeout=300,
                        known_hosts=self._known_hosts(connection["host"], host_key))

    def _known_hosts(self, address: str, host_key: str) -> Path:
        name = hashlib.sha256(f"{address} {host_key}".encode()).hexdigest()[:16]
        path = self._known_hosts_dir / name
        if not path.exists():
            write_known_hosts(path.with_suffix(".tmp"), [(address, host_key)]).replace(path)
        return path

    def _install_host_key(self, host: Host, user_data: str) -> None:
        """cloud-init's `ssh_keys`, on a "droplet" the first time it is created with this key. A
        droplet that is not replaced does not run cloud-init again: a host whose sshd now presents
        another key keeps presenting it (see test_host_keys.py)."""
        private_key = yaml.safe_load(user_data)["ssh_keys"]["ed25519_private"]
        with self._lock:
            if self.host_keys.get(host) == private_key:
                return
            self.host_keys[host] = private_key
        install_host_key(host, private_key)


def provider_known_hosts(ssh_opts) -> Path:
    """The known_hosts file the Docker provider's `ssh` checks; it must check strictly."""
    options = json.loads(ssh_opts) if isinstance(ssh_opts, str) else list(ssh_opts)
    if "StrictHostKeyChecking=yes" not in options:
        raise RuntimeError(f"the Docker provider's ssh does not check host keys strictly: {options}")
    (path,) = [o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile=")]
    return Path(path)
