"""pulumi-docker resource inputs (as the engine receives them) turned into Docker Engine API
requests, the way the Docker provider builds them, so the sandbox mocks can create the very
objects `pulumi up` would create.

Only the fields the program sets are mapped; an input this module does not know fails loudly
rather than being dropped, so a new field in swarm/compose/service_args.py cannot slip past the sandbox.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from swarm.compose import parse_duration


class UnmappedInput(KeyError):
    pass


def _take(source: dict, known: set[str], where: str) -> dict:
    unknown = set(source) - known
    if unknown:
        raise UnmappedInput(f"{where}: no Engine API mapping for {sorted(unknown)}")
    return source


def _labels(items: list[dict] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in items or []}


def _ns(duration: str | None) -> int | None:
    return None if duration is None else parse_duration(duration)


def _int(value: Any) -> int | None:
    """Numbers arrive as floats, some ids (uid/gid) as strings."""
    return None if value is None else int(value)


def _compact(values: dict) -> dict:
    return {key: value for key, value in values.items() if value not in (None, [], {})}


def network_request(inputs: dict) -> dict:
    _take(inputs, {"name", "driver", "attachable", "internal", "options", "labels", "ipamDriver", "ipamConfigs"}, "network")
    ipam = None
    if inputs.get("ipamDriver") or inputs.get("ipamConfigs"):
        ipam = _compact({"Driver": inputs.get("ipamDriver"),
                         "Config": [{"Subnet": c["subnet"]} for c in inputs.get("ipamConfigs", [])]})
    return _compact({
        "Name": inputs["name"],
        "Driver": inputs.get("driver", "overlay"),
        "Attachable": inputs.get("attachable"),
        "Internal": inputs.get("internal"),
        "Options": inputs.get("options"),
        "Labels": _labels(inputs.get("labels")),
        "IPAM": ipam,
    })


def object_request(inputs: dict) -> dict:
    """docker.Secret / docker.ServiceConfig: name, base64 data, labels."""
    _take(inputs, {"name", "data", "labels"}, "secret/config")
    return {"Name": inputs["name"], "Data": inputs["data"], "Labels": _labels(inputs.get("labels"))}


def registry_auth_header(inputs: dict, provider_inputs: dict | None = None) -> str:
    """The X-Registry-Auth header the provider sends with a service's create or update (what
    `--with-registry-auth` does), base64url JSON, as kreuzwerker's `retrieveAndMarshalAuth`
    builds it (internal/provider/resource_docker_service_funcs.go): the service's own `auth`
    when it has one; else the provider's `registry_auth` entry filed under the text before the
    image's first '/' (`fromRegistryAuth`); else an empty configuration, `{}`, sent all the same."""
    auth = inputs.get("auth")
    if auth:
        _take(auth, {"serverAddress", "username", "password"}, "auth")
        credentials = {"username": auth.get("username"), "password": auth.get("password"),
                       "serveraddress": auth["serverAddress"]}
    else:
        image = inputs["taskSpec"]["containerSpec"]["image"]
        prefix, slash, _ = image.partition("/")
        entries = {}
        configured = (provider_inputs or {}).get("registryAuth") or []
        # Provider inputs reach the engine JSON-encoded (as tests/unit/test_release.py reads them).
        for entry in json.loads(configured) if isinstance(configured, str) else configured:
            _take(entry, {"address", "username", "password"}, "registryAuth")
            address = entry["address"] if "://" in entry["address"] else f"https://{entry['address']}"
            entries[address.split("://", 1)[1].split("/", 1)[0]] = {
                "username": entry.get("username"), "password": entry.get("password"), "serveraddress": address}
        credentials = entries.get(prefix, {}) if slash else {}
    return base64.urlsafe_b64encode(json.dumps(credentials).encode()).decode()


def service_spec(inputs: dict) -> dict:
    _take(inputs, {"name", "labels", "taskSpec", "mode", "endpointSpec", "updateConfig", "rollbackConfig", "auth"}, "service")
    spec = {
        "Name": inputs["name"],
        "Labels": _labels(inputs.get("labels")),
        "TaskTemplate": _task(inputs["taskSpec"]),
        "Mode": _mode(inputs["mode"]),
        "UpdateConfig": _update(inputs.get("updateConfig")),
        "RollbackConfig": _update(inputs.get("rollbackConfig")),
        "EndpointSpec": _endpoint(inputs.get("endpointSpec")),
    }
    return _compact(spec)


def _mode(mode: dict) -> dict:
    _take(mode, {"replicated", "global"}, "mode")
    if mode.get("global"):
        return {"Global": {}}
    return {"Replicated": {"Replicas": _int(mode["replicated"]["replicas"])}}


def _task(task: dict) -> dict:
    _take(task, {"containerSpec", "networksAdvanceds", "placement", "resources", "restartPolicy", "logDriver"}, "taskSpec")
    placement = task.get("placement") or {}
    _take(placement, {"constraints", "prefs", "maxReplicas"}, "placement")
    restart = task.get("restartPolicy") or {}
    _take(restart, {"condition", "delay", "maxAttempts", "window"}, "restartPolicy")
    log = task.get("logDriver")
    return _compact({
        "ContainerSpec": _container(task["containerSpec"]),
        "Networks": [
            _compact({"Target": n["id"], "Aliases": n.get("aliases"),
                      "DriverOpts": dict(o.split("=", 1) for o in n.get("driverOpts", []))})
            for n in task.get("networksAdvanceds", [])
        ],
        "Placement": _compact({
            "Constraints": placement.get("constraints"),
            "Preferences": [{"Spread": {"SpreadDescriptor": p.removeprefix("spread=")}} for p in placement.get("prefs", [])],
            "MaxReplicas": _int(placement.get("maxReplicas")),
        }),
        "Resources": _resources(task.get("resources")),
        "RestartPolicy": _compact({
            "Condition": restart.get("condition"),
            "Delay": _ns(restart.get("delay")),
            "MaxAttempts": _int(restart.get("maxAttempts")),
            "Window": _ns(restart.get("window")),
        }),
        "LogDriver": _compact({"Name": log["name"], "Options": log.get("options")}) if log else None,
    })


def _container(container: dict) -> dict:
    _take(container, {
        "image", "labels", "commands", "args", "env", "dir", "user", "hostname", "init", "readOnly", "isolation",
        "stopSignal", "stopGracePeriod", "sysctl", "hosts", "healthcheck", "mounts", "secrets", "configs",
        "dnsConfig", "capAdds", "capDrops",
    }, "containerSpec")
    health = container.get("healthcheck")
    dns = container.get("dnsConfig")
    return _compact({
        "Image": container["image"],
        "Labels": _labels(container.get("labels")),
        "Command": container.get("commands"),
        "Args": container.get("args"),
        "Env": [f"{key}={value}" for key, value in sorted((container.get("env") or {}).items())],
        "Dir": container.get("dir"),
        "User": container.get("user"),
        "Hostname": container.get("hostname"),
        "Init": container.get("init"),
        "ReadOnly": container.get("readOnly"),
        "Isolation": container.get("isolation"),
        "StopSignal": container.get("stopSignal"),
        "StopGracePeriod": _ns(container.get("stopGracePeriod")),
        "Sysctls": container.get("sysctl"),
        "Hosts": [f"{h['ip']} {h['host']}" for h in container.get("hosts", [])],
        "Healthcheck": _compact({
            "Test": health.get("tests"),
            "Interval": _ns(health.get("interval")),
            "Timeout": _ns(health.get("timeout")),
            "StartPeriod": _ns(health.get("startPeriod")),
            "Retries": _int(health.get("retries")),
        }) if health else None,
        "Mounts": [_mount(m) for m in container.get("mounts", [])],
        "Secrets": [_file_reference(s, "Secret") for s in container.get("secrets", [])],
        "Configs": [_file_reference(c, "Config") for c in container.get("configs", [])],
        "DNSConfig": _compact({"Nameservers": dns.get("nameservers"), "Search": dns.get("searches")}) if dns else None,
        "CapabilityAdd": container.get("capAdds"),
        "CapabilityDrop": container.get("capDrops"),
    })


def _mount(mount: dict) -> dict:
    _take(mount, {"type", "source", "target", "readOnly", "bindOptions", "volumeOptions", "tmpfsOptions"}, "mount")
    volume = mount.get("volumeOptions")
    return _compact({
        "Type": mount["type"],
        "Source": mount.get("source"),
        "Target": mount["target"],
        "ReadOnly": mount.get("readOnly"),
        "BindOptions": _compact({"Propagation": mount["bindOptions"].get("propagation")}) if mount.get("bindOptions") else None,
        "VolumeOptions": _compact({
            "NoCopy": volume.get("noCopy"),
            "Labels": _labels(volume.get("labels")),
            "DriverConfig": _compact({"Name": volume.get("driverName"), "Options": volume.get("driverOptions")}),
        }) if volume else None,
        "TmpfsOptions": _compact({"SizeBytes": _int(mount["tmpfsOptions"].get("sizeBytes"))}) if mount.get("tmpfsOptions") else None,
    })


def _file_reference(reference: dict, kind: str) -> dict:
    key = kind.lower()
    return {
        f"{kind}ID": reference[f"{key}Id"],
        f"{kind}Name": reference[f"{key}Name"],
        "File": {
            "Name": reference["fileName"],
            "UID": str(reference.get("fileUid", "0")),
            "GID": str(reference.get("fileGid", "0")),
            "Mode": _int(reference.get("fileMode", 0o444)),
        },
    }


def _resources(resources: dict | None) -> dict | None:
    if not resources:
        return None
    _take(resources, {"limits", "reservation"}, "resources")
    limits = resources.get("limits") or {}
    reservation = resources.get("reservation") or {}
    generic = (reservation.get("genericResources") or {}).get("discreteResourcesSpecs", [])
    return _compact({
        "Limits": _compact({"NanoCPUs": _int(limits.get("nanoCpus")), "MemoryBytes": _int(limits.get("memoryBytes"))}),
        "Reservations": _compact({
            "NanoCPUs": _int(reservation.get("nanoCpus")),
            "MemoryBytes": _int(reservation.get("memoryBytes")),
            "GenericResources": [
                {"DiscreteResourceSpec": {"Kind": kind, "Value": int(value)}}
                for kind, value in (spec.split("=", 1) for spec in generic)
            ],
        }),
    })


def _update(policy: dict | None) -> dict | None:
    if not policy:
        return None
    _take(policy, {"parallelism", "delay", "failureAction", "monitor", "maxFailureRatio", "order"}, "update/rollback")
    return _compact({
        "Parallelism": _int(policy.get("parallelism")),
        "Delay": _ns(policy.get("delay")),
        "FailureAction": policy.get("failureAction"),
        "Monitor": _ns(policy.get("monitor")),
        "MaxFailureRatio": float(policy["maxFailureRatio"]) if policy.get("maxFailureRatio") else None,
        "Order": policy.get("order"),
    })


def _endpoint(endpoint: dict | None) -> dict | None:
    if not endpoint:
        return None
    _take(endpoint, {"mode", "ports"}, "endpointSpec")
    return _compact({
        "Mode": endpoint.get("mode"),
        "Ports": [
            _compact({
                "Protocol": port.get("protocol", "tcp"),
                "TargetPort": _int(port["targetPort"]),
                "PublishedPort": _int(port.get("publishedPort")),
                "PublishMode": port.get("publishMode", "ingress"),
            })
            for port in endpoint.get("ports", [])
        ],
    })


def request(what: str, manager, endpoint: str, body: dict | None = None, headers=(), *,
            method: str | None = None, missing_ok: bool = False, known_hosts=None) -> dict:
    """One Engine API request on `manager`'s socket (a harness Host), over SSH as the provider
    reaches it: POST with a JSON body, else GET (or `method`). `missing_ok`: a 404 is an answer
    (a DELETE of what is already gone, as the provider treats it). `known_hosts`: the provider's
    known_hosts file, checked strictly as its `ssh` does."""
    import shlex

    options = [f"-H {shlex.quote(header)}" for header in headers]
    if method:
        options.append(f"-X {method}")
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
    if missing_ok and status == "404":
        return {}
    if result.returncode != 0 or not status.startswith("2"):
        raise RuntimeError(f"{what}: {endpoint} answered {status}: {answer.strip()} {result.stderr.strip()}")
    return json.loads(answer) if answer.strip() else {}
