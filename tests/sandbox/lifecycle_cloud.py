"""The lifecycle engine's providers on the swarm sandbox: a DigitalOcean account and its
droplets, played by sandbox hosts.

- Droplet: create boots a blank host with a new address (a replacement of the same name gets
  one too) and gives its sshd the host key of its user data (`ssh_keys`), as cloud-init does;
  delete destroys it, processes and disk; a `size` change powers it off hard and boots it again
  on the same disk and address, as DigitalOcean's resize does. Volumes listed in `volumeIds` are
  attached: their device appears at /dev/disk/by-id/scsi-0DO_Volume_<name> on the host, where
  the program's `-volume` command finds it. A volume attached to another droplet is refused, as
  DigitalOcean refuses it.
- Volume: a real block device (a loop device over a sparse file) that outlives hosts, formatted
  at creation when `initialFilesystemType` says so (DigitalOcean formats new volumes). Deleting
  an attached volume fails.
- remote Command: `create` (and `update`, else `create`, on an update) runs over real SSH on the
  host whose address its connection names, with its stdin, checking the host key the connection
  pins (`hostKey`) strictly; `delete` runs with the old inputs,
  on the old connection's address. An address no host answers fails after the dial attempts the
  connection allows (dial_error_limit, default 10; -1 retries until the step's timeout, capped
  here at DIAL_CAP_SECONDS).
- Docker network, secret, config and service: created, updated (services) and deleted through
  the Engine API of the manager the docker provider's `host` names, at the time of the step,
  over SSH checked against the known_hosts file its `sshOpts` name.
- Everything else (VPC, tags, firewall, SSH key, keys, registry credentials): no cloud here;
  IDs are generated and the outputs are the inputs (plus the values FakeCloud gives).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.lifecycle.engine import Engine, Provider, StepContext
from tests.pulumi_program import FakeCloud, unwrap
from tests.sandbox import engine_api
from tests.sandbox.executing_cloud import (
    pinned_key,
    pinned_ssh,
    provider_known_hosts,
    user_data_daemon_json,
    user_data_host_key,
)
from tests.sandbox.harness import Host, Sandbox, _which, install_host_key, pinned_known_hosts

# A real droplet's dial retries give up after about 11 s (pulumi/pulumi-command#1238); a
# command with dial_error_limit -1 retries until its timeout (20 minutes for `ready`), which
# the sandbox shortens: an address no host will ever answer again fails in a minute.
DIAL_SECONDS_PER_ATTEMPT = 1.1
DIAL_CAP_SECONDS = 60
VOLUME_BYTES = 64 * 1024 * 1024
VOLUME_DEVICE = "/dev/disk/by-id/scsi-0DO_Volume_"
DEFAULT_COMMAND_TIMEOUT = 900


class DialError(RuntimeError):
    pass


class Cloud:
    """The sandbox as a DigitalOcean account: live droplets (hosts) and volumes."""

    def __init__(self, sandbox: Sandbox, workdir: Path):
        self.sandbox = sandbox
        self.volume_dir = workdir / "volumes"
        self.volume_dir.mkdir(parents=True, exist_ok=True)
        self.droplets: dict[str, Host] = {}  # droplet id -> host
        self.volumes: dict[str, dict] = {}  # volume id -> {name, file, device, droplet}
        self.outages: list[tuple[str, float, float]] = []  # (hostname, powered off, booted again)
        self.reserved: dict[str, str] = {}  # reserved IP -> droplet id it is assigned to
        self.lock = threading.RLock()
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def host_at(self, address: str) -> Host | None:
        """The live host answering at `address`: its own, or a reserved IP assigned to it."""
        with self.lock:
            if address in self.reserved:
                host = self.droplets.get(self.reserved[address])
                return host if host is not None and host.ready else None
            for host in self.droplets.values():
                if host.ip == address and host.ready:
                    return host
        return None

    def fail_host(self, name: str) -> None:
        """A host failure: the droplet named `name` is destroyed outside Pulumi (no command runs
        on it first), as DigitalOcean destroys it: its reserved IPs are unassigned and its
        volumes detached, and they live on. The engine's state still lists it until a refresh."""
        with self.lock:
            (droplet_id,) = [d for d, host in self.droplets.items() if host.name == name]
            host = self.droplets.pop(droplet_id)
            for address in [a for a, d in self.reserved.items() if d == droplet_id]:
                del self.reserved[address]
            for volume in self.volumes.values():
                if volume["droplet"] == droplet_id:
                    volume["droplet"] = None
        self.sandbox.destroy_host(host.key)

    def close(self) -> None:
        """Destroy every droplet and volume left (between scenarios of a report)."""
        with self.lock:
            droplets, self.droplets = dict(self.droplets), {}
            volumes, self.volumes = dict(self.volumes), {}
        errors = []
        for host in droplets.values():
            try:
                self.sandbox.destroy_host(host.key)
            except Exception as error:  # noqa: BLE001 - the others are destroyed all the same
                errors.append(f"{host.key}: {error}")
        for volume in volumes.values():
            _detach_loop(volume)
        if errors:
            raise RuntimeError("could not destroy every droplet: " + "; ".join(errors))


def _detach_loop(volume: dict) -> None:
    subprocess.run([_which("losetup"), "-d", volume["device"]], check=False, capture_output=True)
    Path(volume["file"]).unlink(missing_ok=True)


class DropletProvider(Provider):
    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def create(self, step: StepContext) -> tuple[str, dict]:
        inputs = unwrap(step.inputs)
        number = self.cloud.next_id()
        droplet_id = str(300_000_000 + number)  # DigitalOcean's droplet IDs are numbers
        name = inputs["name"]
        with self.cloud.lock:
            taken = name in self.cloud.sandbox.hosts
        # cloud-init's daemon.json (over the harness's own settings), as the droplet boots with it.
        host = self.cloud.sandbox.add_host(name, daemon_json=user_data_daemon_json(inputs["userData"]),
                                           key=f"{name}.{number}" if taken else name)
        with self.cloud.lock:
            self.cloud.droplets[droplet_id] = host
        try:
            install_host_key(host, user_data_host_key(inputs["userData"]))  # kept across power cycles
            self._attach(droplet_id, host, inputs.get("volumeIds") or [])
        except Exception:
            self.delete_droplet(droplet_id)
            raise
        return droplet_id, {**step.inputs, "ipv4Address": host.ip, "ipv4AddressPrivate": host.ip}

    def update(self, step: StepContext) -> dict:
        assert step.old is not None
        old, new = unwrap(step.old.inputs), unwrap(step.inputs)
        host = self.cloud.droplets[step.old.id]
        if old.get("size") != new.get("size"):
            off = time.monotonic()
            host.power_cycle()
            self._attach(step.old.id, host, new.get("volumeIds") or [])
            with self.cloud.lock:
                self.cloud.outages.append((host.name, off, time.monotonic()))
        elif (old.get("volumeIds") or []) != (new.get("volumeIds") or []):
            self._attach(step.old.id, host, new.get("volumeIds") or [])
        return {**step.old.outputs, **step.inputs}

    def delete(self, step: StepContext) -> None:
        assert step.old is not None
        host = self.cloud.droplets.get(step.old.id)
        if host is not None and unwrap(step.old.inputs).get("gracefulShutdown") and host.ready:
            # A graceful shutdown: Docker is stopped as systemd would, then the power goes.
            host.exec("pid=$(cat /run/docker.pid 2>/dev/null) && kill \"$pid\" && "
                      "while kill -0 \"$pid\" 2>/dev/null; do sleep 0.2; done", check=False, timeout=60)
        self.delete_droplet(step.old.id)

    def read(self, step: StepContext) -> dict | None:
        """Refresh: a droplet destroyed outside Pulumi is gone (dropped from the state)."""
        assert step.old is not None
        with self.cloud.lock:
            return step.old.outputs if step.old.id in self.cloud.droplets else None

    def delete_droplet(self, droplet_id: str) -> None:
        with self.cloud.lock:
            host = self.cloud.droplets.pop(droplet_id, None)
            # A destroyed droplet's reserved IPs are unassigned, its volumes detached.
            for address in [a for a, d in self.cloud.reserved.items() if d == droplet_id]:
                del self.cloud.reserved[address]
            for volume in self.cloud.volumes.values():
                if volume["droplet"] == droplet_id:
                    volume["droplet"] = None
        if host is not None:
            self.cloud.sandbox.destroy_host(host.key)

    def _attach(self, droplet_id: str, host: Host, volume_ids: list[str]) -> None:
        """Attach the volumes to the droplet and make their devices appear where DigitalOcean
        puts them (the program's own `-volume` command mounts them, over SSH)."""
        with self.cloud.lock:
            for volume_id in volume_ids:
                volume = self.cloud.volumes.get(volume_id)
                if volume is None:
                    raise RuntimeError(f"volume {volume_id} does not exist")
                if volume["droplet"] not in (None, droplet_id) and volume["droplet"] in self.cloud.droplets:
                    raise RuntimeError(
                        f"422 volume {volume['name']} is attached to droplet {volume['droplet']}: a volume "
                        "attaches to one droplet at a time"
                    )
                volume["droplet"] = droplet_id
            for volume in self.cloud.volumes.values():
                if volume["droplet"] == droplet_id and volume["id"] not in volume_ids:
                    volume["droplet"] = None
            attached = [v for v in self.cloud.volumes.values() if v["droplet"] == droplet_id]
        for volume in attached:
            host.exec(f"mkdir -p /dev/disk/by-id && ln -sfn {volume['device']} "
                      f"{shlex.quote(VOLUME_DEVICE + volume['name'])}")


class VolumeProvider(Provider):
    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def create(self, step: StepContext) -> tuple[str, dict]:
        inputs = unwrap(step.inputs)
        volume_id = f"volume-{self.cloud.next_id()}"
        # A file of its own: IDs restart with every Cloud, and a test's fresh cluster shares the
        # workdir with a cluster still running, whose volume file of the same ID is mounted (opening
        # it "wb" truncated a mounted filesystem).
        handle, name = tempfile.mkstemp(prefix=f"{volume_id}-", suffix=".img", dir=self.cloud.volume_dir)
        image = Path(name)
        with os.fdopen(handle, "wb") as sparse:
            sparse.truncate(VOLUME_BYTES)
        device = subprocess.run([_which("losetup"), "-f", "--show", str(image)], check=True, capture_output=True,
                                text=True).stdout.strip()
        volume = {"id": volume_id, "name": inputs["name"], "file": str(image), "device": device, "droplet": None}
        if inputs.get("initialFilesystemType"):
            subprocess.run([_which(f"mkfs.{inputs['initialFilesystemType']}"), "-q", device], check=True,
                           capture_output=True)
        with self.cloud.lock:
            self.cloud.volumes[volume_id] = volume
        return volume_id, dict(step.inputs)

    def read(self, step: StepContext) -> dict | None:
        """Refresh: a volume outlives its droplet (detached when the droplet is destroyed); only
        a volume deleted outside Pulumi is gone."""
        assert step.old is not None
        with self.cloud.lock:
            return step.old.outputs if step.old.id in self.cloud.volumes else None

    def delete(self, step: StepContext) -> None:
        assert step.old is not None
        with self.cloud.lock:
            volume = self.cloud.volumes.get(step.old.id)
            if volume is None:
                return
            if volume["droplet"] in self.cloud.droplets:
                raise RuntimeError(f"409 volume {volume['name']} is attached to {volume['droplet']}; detach it first")
            del self.cloud.volumes[step.old.id]
        _detach_loop(volume)


class ReservedIpProvider(Provider):
    """A reserved IP: an address of its own (TEST-NET-1: it names the IP, nothing routes it)."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def create(self, step: StepContext) -> tuple[str, dict]:
        address = f"192.0.2.{self.cloud.next_id() % 250 + 1}"
        return address, {**step.inputs, "ipAddress": address}


class ReservedIpAssignmentProvider(Provider):
    """Assigning moves the IP to the droplet; deleting the assignment unassigns it."""

    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def create(self, step: StepContext) -> tuple[str, dict]:
        inputs = unwrap(step.inputs)
        droplet = str(int(inputs["dropletId"]))
        with self.cloud.lock:
            if droplet not in self.cloud.droplets:
                raise RuntimeError(f"422 droplet {droplet} does not exist")
            self.cloud.reserved[inputs["ipAddress"]] = droplet
        return f"{inputs['ipAddress']}-{droplet}", dict(step.inputs)

    def read(self, step: StepContext) -> dict | None:
        """Refresh: DigitalOcean unassigns a reserved IP when its droplet is destroyed; the
        provider's read then finds the IP on no droplet (or another) and drops the assignment."""
        assert step.old is not None
        inputs = unwrap(step.old.inputs)
        with self.cloud.lock:
            held = self.cloud.reserved.get(inputs["ipAddress"]) == str(int(inputs["dropletId"]))
        return step.old.outputs if held else None

    def delete(self, step: StepContext) -> None:
        inputs = unwrap(step.inputs)
        with self.cloud.lock:
            if self.cloud.reserved.get(inputs["ipAddress"]) == str(int(inputs["dropletId"])):
                del self.cloud.reserved[inputs["ipAddress"]]


class CommandProvider(Provider):
    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.executed: list[tuple[str, str, str, float]] = []  # (op, command name, host, seconds)

    def create(self, step: StepContext) -> tuple[str, dict]:
        return f"{step.name}-{self.cloud.next_id()}", self._run(step, "create", "create")

    def update(self, step: StepContext) -> dict:
        script = "update" if unwrap(step.inputs).get("update") else "create"
        return self._run(step, script, "update")

    def delete(self, step: StepContext) -> None:
        if unwrap(step.inputs).get("delete"):
            self._run(step, "delete", "delete")

    def _run(self, step: StepContext, script: str, op: str) -> dict:
        inputs = unwrap(step.inputs)
        connection = inputs["connection"]
        host = self._dial(connection["host"], connection.get("dialErrorLimit"), step.timeout)
        started = time.monotonic()
        result = pinned_ssh(host, step.name, connection, inputs[script], inputs.get("stdin") if op != "delete" else None,
                            step.timeout or DEFAULT_COMMAND_TIMEOUT)
        with self.cloud.lock:
            self.executed.append((op, step.name, host.name, time.monotonic() - started))
        if result.returncode != 0:
            # As the provider does: the command's stderr is the error, never its stdin.
            raise RuntimeError(f"{step.name} ({op}) failed on {host.name} (exit {result.returncode}): "
                               f"{result.stderr.strip()}")
        return {**step.inputs, "stdout": result.stdout, "stderr": result.stderr}

    def _dial(self, address: str, limit: float | None, timeout: float | None) -> Host:
        attempts = int(limit) if limit not in (None, 0) else 10
        budget = min(timeout or DIAL_CAP_SECONDS, DIAL_CAP_SECONDS) if attempts < 0 else attempts * DIAL_SECONDS_PER_ATTEMPT
        deadline = time.monotonic() + budget
        while True:
            host = self.cloud.host_at(address)
            if host is not None:
                return host
            if time.monotonic() >= deadline:
                raise DialError(f"dial tcp {address}:22: connect: no route to host (gave up after {budget:.0f}s)")
            time.sleep(0.5)


class DockerObjectProvider(Provider):
    """Networks, secrets, configs and services through the Engine API of the manager the
    docker provider reaches now."""

    PATHS = {
        "docker:index/network:Network": ("/networks/create", engine_api.network_request, "/networks"),
        "docker:index/secret:Secret": ("/secrets/create", engine_api.object_request, "/secrets"),
        "docker:index/serviceConfig:ServiceConfig": ("/configs/create", engine_api.object_request, "/configs"),
        "docker:index/service:Service": ("/services/create", engine_api.service_spec, "/services"),
    }

    def __init__(self, cloud: Cloud):
        self.cloud = cloud

    def _manager(self, step: StepContext) -> Host:
        address = unwrap(step.provider_inputs())["host"].split("@", 1)[1]
        host = self.cloud.host_at(address)
        if host is None:
            raise DialError(f"error during connect: ssh://root@{address}: no route to host")
        return host

    def _known_hosts(self, step: StepContext) -> Path:
        """The provider pins the key for the address it dials (a reserved IP); the sandbox routes
        that address to the host's own, so the key pinned for it is pinned for that one."""
        inputs = unwrap(step.provider_inputs())
        dialed = inputs["host"].split("@", 1)[1]
        return pinned_known_hosts(self._manager(step).sandbox, self._manager(step).ip,
                                  pinned_key(provider_known_hosts(inputs["sshOpts"]), dialed))

    def create(self, step: StepContext) -> tuple[str, dict]:
        inputs = unwrap(step.inputs)
        endpoint, build, _ = self.PATHS[step.type]
        auth = (engine_api.registry_auth_header(inputs, unwrap(step.provider_inputs()))
                if step.type.endswith(":Service") else None)
        created = engine_api.request(step.name, self._manager(step), endpoint, build(inputs),
                                     [f"X-Registry-Auth: {auth}"] if auth else [], known_hosts=self._known_hosts(step))
        return created.get("ID") or created["Id"], dict(step.inputs)

    def update(self, step: StepContext) -> dict:
        assert step.old is not None and step.type.endswith(":Service"), "only services update in place"
        inputs = unwrap(step.inputs)
        manager = self._manager(step)
        known_hosts = self._known_hosts(step)
        version = engine_api.request(step.name, manager, f"/services/{step.old.id}",
                                     known_hosts=known_hosts)["Version"]["Index"]
        auth = engine_api.registry_auth_header(inputs, unwrap(step.provider_inputs()))
        engine_api.request(step.name, manager, f"/services/{step.old.id}/update?version={version}",
                           engine_api.service_spec(inputs), [f"X-Registry-Auth: {auth}"] if auth else [],
                           known_hosts=known_hosts)
        return dict(step.inputs)

    def read(self, step: StepContext) -> dict | None:
        """Refresh: read through the manager the provider reaches now (it fails when none
        answers, as the provider does); an object the swarm no longer has is gone."""
        assert step.old is not None
        _, _, base = self.PATHS[step.type]
        found = engine_api.request(step.name, self._manager(step), f"{base}/{step.old.id}", missing_ok=True,
                                   known_hosts=self._known_hosts(step))
        return step.old.outputs if found else None

    def delete(self, step: StepContext) -> None:
        assert step.old is not None
        _, _, base = self.PATHS[step.type]
        engine_api.request(step.name, self._manager(step), f"{base}/{step.old.id}", method="DELETE",
                           missing_ok=True, known_hosts=self._known_hosts(step))


class FakeOutputs(Provider):
    """A resource with no cloud here: FakeCloud's outputs (generated keys, credentials)."""

    def __init__(self):
        self.fake = FakeCloud()

    def create(self, step: StepContext) -> tuple[str, dict]:
        import pulumi

        args = pulumi.runtime.MockResourceArgs(step.type, step.name, step.inputs, step.provider, None, True)
        _, outputs = self.fake.new_resource(args)
        return f"{step.name}-{next(self._ids)}", outputs


def sandbox_engine(sandbox: Sandbox, workdir: Path) -> tuple[Engine, Cloud, CommandProvider]:
    """An engine whose droplets, volumes, commands and Docker objects are the sandbox's."""
    cloud = Cloud(sandbox, workdir)
    commands = CommandProvider(cloud)
    docker = DockerObjectProvider(cloud)
    providers: dict[str, Provider] = {
        "digitalocean:index/droplet:Droplet": DropletProvider(cloud),
        "digitalocean:index/volume:Volume": VolumeProvider(cloud),
        "digitalocean:index/reservedIp:ReservedIp": ReservedIpProvider(cloud),
        "digitalocean:index/reservedIpAssignment:ReservedIpAssignment": ReservedIpAssignmentProvider(cloud),
        "command:remote:Command": commands,
        **{type_: docker for type_ in DockerObjectProvider.PATHS},
    }
    return Engine(providers, default=FakeOutputs()), cloud, commands


def swarm_snapshot(cloud: Cloud) -> dict:
    """What a manager of the swarm says now: cluster ID, nodes, services, secrets, networks.
    Empty when no manager answers."""
    script = r"""
set -e
docker info --format '{{json .Swarm}}'
echo '---'
docker node ls --format '{{json .}}'
echo '---'
docker service ls --format '{{json .}}'
echo '---'
docker secret ls --format '{{.Name}} {{.ID}}'
echo '---'
docker network ls --filter scope=swarm --format '{{.Name}} {{.ID}}'
"""
    for host in list(cloud.droplets.values()):
        if not host.ready:
            continue
        result = host.exec(script, check=False, timeout=20)
        if result.returncode != 0:
            continue
        info, nodes, services, secrets, networks = result.stdout.split("---\n")
        swarm = json.loads(info)
        if not swarm.get("ControlAvailable"):
            continue
        return {
            "cluster": swarm["Cluster"]["ID"],
            "manager": host.name,
            "nodes": [json.loads(line) for line in nodes.splitlines() if line.strip()],
            "services": {s["Name"]: s for s in (json.loads(line) for line in services.splitlines() if line.strip())},
            "secrets": dict(line.split() for line in secrets.splitlines() if line.strip()),
            "networks": dict(line.split() for line in networks.splitlines() if line.strip()),
        }
    return {}
