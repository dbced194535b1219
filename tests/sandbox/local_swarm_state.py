"""What `scripts/local-swarm` keeps on disk between two invocations: the sandbox it left running
(hosts, addresses, images), the lifecycle engine's state (every resource's inputs, outputs,
dependencies and options: what a Pulumi backend keeps) and the sandbox cloud's droplets and
volumes. One JSON file, mode 0600 in a folder only root reads: it holds the stack's generated
secrets and keys, as a Pulumi state would (but unencrypted: a local play cluster only).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.lifecycle.engine import Engine, Options, Provider, Resource
from tests.sandbox.harness import Sandbox, SandboxError, _which
from tests.sandbox.lifecycle_cloud import Cloud

STATE_FILE = "state.json"
FORMAT = 1


def _resource(data: dict) -> Resource:
    options = data.pop("options")
    return Resource(
        **{**data, "dependencies": tuple(data["dependencies"]),
           "property_dependencies": {key: tuple(urns) for key, urns in data["property_dependencies"].items()}},
        options=Options(**{**options, "ignore_changes": tuple(options["ignore_changes"]),
                           "replace_on_changes": tuple(options["replace_on_changes"])}),
    )


def dump_engine(engine: Engine) -> dict:
    return {"resources": [dataclasses.asdict(r) for r in engine.state.values()],
            "pending": [dataclasses.asdict(r) for r in engine.pending]}


def load_engine(engine: Engine, data: dict) -> None:
    for entry in data["resources"]:
        resource = _resource(dict(entry))
        engine.state[resource.urn] = resource
    engine.pending = [_resource(dict(entry)) for entry in data["pending"]]


def dump_cloud(cloud: Cloud) -> dict:
    return {
        "droplets": {droplet_id: host.key for droplet_id, host in cloud.droplets.items()},
        "volumes": cloud.volumes,
        "reserved": cloud.reserved,
        # IDs stay unique across invocations: a new droplet never takes an old one's ID.
        "next_id": next(cloud._ids),
        "next_provider_id": next(Provider._ids),
    }


def load_cloud(cloud: Cloud, sandbox: Sandbox, data: dict) -> None:
    hosts = sandbox.hosts
    missing = [key for key in data["droplets"].values() if key not in hosts]
    if missing:
        raise SandboxError("droplets without a running host: " + ", ".join(missing))
    cloud.droplets = {droplet_id: hosts[key] for droplet_id, key in data["droplets"].items()}
    for volume in data["volumes"].values():
        if loop_backing_file(volume["device"]) != volume["file"]:
            raise SandboxError(f"volume {volume['name']}: loop device {volume['device']} is gone")
    cloud.volumes = data["volumes"]
    cloud.reserved = data["reserved"]
    cloud._ids = itertools.count(data["next_id"])
    Provider._ids = itertools.count(data["next_provider_id"])


def loop_backing_file(device: str) -> str:
    result = subprocess.run([_which("losetup"), "-n", "-O", "BACK-FILE", device], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def loop_devices_under(directory: Path) -> list[str]:
    """Loop devices whose backing file lies in `directory` (a volume left by a crashed run)."""
    result = subprocess.run([_which("losetup"), "-n", "-l", "-O", "NAME,BACK-FILE"], capture_output=True, text=True)
    prefix = str(directory.resolve()) + os.sep
    return [line.split(None, 1)[0] for line in result.stdout.splitlines()
            if len(line.split(None, 1)) == 2 and line.split(None, 1)[1].strip().startswith(prefix)]


def read(workdir: Path) -> dict[str, Any] | None:
    path = workdir / STATE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise SandboxError(f"{path} was written by another version of local-swarm: run `down` first")
    return data


def write(workdir: Path, data: dict[str, Any]) -> None:
    """Written whole or not at all (a crash mid-write keeps the previous state)."""
    path = workdir / STATE_FILE
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({**data, "format": FORMAT}, file, indent=1, sort_keys=True)
    partial.replace(path)
