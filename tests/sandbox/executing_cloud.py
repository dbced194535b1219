"""Pulumi mocks that do the real work on the sandbox swarm.

Run under `tests.pulumi_program.run_program`, the program's own Output chain and dependency
graph drive a real bootstrap and deploy:
- each droplet is mapped (by name) to the sandbox host of the same name;
- each `command:remote:Command` runs its `create` script over SSH on the host named in its
  `connection.host`, with its `stdin`, and returns the real stdout;
- each Docker network, secret, config and service is created through the Engine API of the
  manager its provider's `host` names (engine_api.py builds the requests from the inputs).
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

import pulumi

from tests.pulumi_program import FakeCloud, fake_droplet_id, unwrap
from tests.sandbox import engine_api
from tests.sandbox.harness import Host, Sandbox

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
        self._lock = threading.Lock()
        self.droplet_hosts: dict[str, Host] = {}  # droplet id -> host
        self.reserved: dict[str, Host] = {}  # reserved IP -> the host of the droplet it is assigned to

    def host_at(self, address: str) -> Host:
        """The host answering at `address`: a host's own, or a reserved IP assigned to its droplet."""
        return self.reserved.get(address) or self.sandbox.host_by_ip(address)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "digitalocean:index/droplet:Droplet":
            host = self.sandbox.hosts[args.inputs["name"]]
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
            self.docker_hosts[provider_id] = self.host_at(unwrap(args.inputs)["host"].split("@", 1)[1])
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
        manager = self.docker_hosts[args.provider.rsplit("::", 1)[1]]
        auth = engine_api.registry_auth_header(inputs) if args.typ == SERVICE else None
        headers = [f"X-Registry-Auth: {auth}"] if auth else []
        if known:  # the service's spec changed: update it in place, at the version Docker has
            object_id = known[1]
            version = engine_api.request(args.name, manager, f"/services/{object_id}")["Version"]["Index"]
            engine_api.request(args.name, manager, f"/services/{object_id}/update?version={version}",
                         engine_api.service_spec(inputs), headers)
        else:
            endpoint, build = ENGINE_CREATE[args.typ]
            created = engine_api.request(args.name, manager, endpoint, build(inputs), headers)
            object_id = created.get("ID") or created["Id"]
        self.docker_state[(args.typ, args.name)] = (serialized, object_id)
        return [object_id, args.inputs]

    def _run_command(self, args: pulumi.runtime.MockResourceArgs):
        if args.name.endswith("-swarm-state"):
            # Shared hosts have no block-storage volume to keep the swarm state on; the lifecycle
            # engine's droplets do (tests/sandbox/lifecycle_cloud.py).
            return [f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}]
        inputs = unwrap(args.inputs)
        host = self.host_at(inputs["connection"]["host"])
        started = time.monotonic()
        result = host.ssh(inputs["create"], stdin=inputs.get("stdin"), check=False, timeout=300)
        with self._lock:
            self.executed.append((args.name, host.name, time.monotonic() - started))
        if result.returncode != 0:
            # Like the provider: the command's stderr is the error (never its stdin).
            raise RuntimeError(f"{args.name} failed on {host.name} (exit {result.returncode}): {result.stderr.strip()}")
        return [f"{args.name}-id", {**args.inputs, "stdout": result.stdout, "stderr": result.stderr}]
