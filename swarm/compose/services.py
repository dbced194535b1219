"""The top-level `services:` section: one ServiceSpec per service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarm.compose.deploy import GPU_ADVICE, read_deploy, read_legacy_restart, read_rollback_config, read_update_config
from swarm.compose.model import (
    DEFAULT_NETWORK,
    FileReference,
    Healthcheck,
    Logging,
    Mount,
    NetworkAttachment,
    ServiceSpec,
    Ulimit,
)
from swarm.compose.networks import read_attachments
from swarm.compose.ports import read_ports
from swarm.compose.reader import (
    PROVIDER,
    V30,
    V31,
    V33,
    V34,
    V35,
    V37,
    V39,
    V312,
    V313,
    Reader,
    Version,
    Where,
    join,
    kind_of,
)
from swarm.compose.secrets import read_file_references
from swarm.compose.volumes import read_mounts, read_tmpfs
from swarm.values import moving_tag, parse_env_file, read_service_schedule, split_command

# Keys Docker accepts for a service that swarm does not act upon, with the version that
# introduced them and what to do instead.
_IGNORED_SERVICE_KEYS: dict[str, tuple[Version, str]] = {
    "build": (V30, "swarm deploys images: build and push the image, then set `image`"),
    "cgroup_parent": (V30, "swarm services do not support it"),
    "cgroupns_mode": (V39, "swarm services do not support it"),
    "container_name": (V30, "swarm names containers itself (<stack>_<service>.<slot>.<id>)"),
    "credential_spec": (V33, "it applies to Windows nodes only"),
    "depends_on": (V30, "swarm starts services in no particular order: make each service retry its dependencies"),
    "devices": (V30, "swarm services do not support it"),
    "domainname": (V30, "swarm services do not support it"),
    "expose": (V30, "services on a shared network reach each other on every port"),
    "external_links": (V30, "swarm services do not support it"),
    "ipc": (V30, "swarm services do not support it"),
    "links": (V30, "services on a shared network reach each other by service name"),
    "mac_address": (V30, "swarm services do not support it"),
    "network_mode": (V30, "swarm services use the stack's networks"),
    "oom_score_adj": (V313, PROVIDER),
    "pid": (V30, "swarm services do not support it"),
    "privileged": (V30, "swarm services do not support it"),
    "security_opt": (V30, "swarm services do not support it"),
    "shm_size": (V30, "swarm services do not support it"),
    "userns_mode": (V30, "swarm services do not support it"),
}


# Keys Docker refuses outright, with its advice.
_FORBIDDEN_SERVICE_KEYS = {
    "extends": "`extends` is not supported by docker stack deploy: write the service out in full",
    "volume_driver": "declare the volume under the top-level `volumes:` with its driver and use it from the service",
    "volumes_from": "declare a volume under the top-level `volumes:` and use it from each service that shares it",
    "cpu_quota": "set resource limits under deploy.resources",
    "cpu_shares": "set resource limits under deploy.resources",
    "cpuset": "set resource limits under deploy.resources",
    "mem_limit": "set resource limits under deploy.resources",
    "memswap_limit": "set resource limits under deploy.resources",
    # docker compose's GPU key: swarm reserves GPUs as generic resources instead.
    "gpus": GPU_ADVICE,
}


_SERVICE_KEYS: dict[str, Version] = {
    **dict.fromkeys(
        ("image", "command", "entrypoint", "environment", "env_file", "networks", "ports", "volumes")
        + ("healthcheck", "labels", "deploy", "stop_grace_period", "stop_signal", "user", "working_dir")
        + ("hostname", "tty", "stdin_open", "read_only", "cap_add", "cap_drop", "sysctls", "ulimits")
        + ("extra_hosts", "dns", "dns_search", "logging", "tmpfs", "restart"),
        V30,
    ),
    "secrets": V31,
    "configs": V33,
    "isolation": V35,
    "init": V37,
    **{key: version for key, (version, _) in _IGNORED_SERVICE_KEYS.items()},
    **dict.fromkeys(_FORBIDDEN_SERVICE_KEYS, V30),
}


_HEALTHCHECK_KEYS = {
    **dict.fromkeys(("disable", "interval", "retries", "test", "timeout"), V30),
    "start_period": V34,
    "start_interval": V312,
}


def read_command(r: Reader, value: Any, path: Where) -> tuple[str, ...] | None:
    if isinstance(value, str):
        try:
            words = split_command(value)
        except ValueError as error:
            r.problem(path, str(error))
            return None
    else:
        words = list(r.strings(value, path, unique=False))
    return tuple(words) or None


def read_environment(r: Reader, raw: dict, path: Where) -> dict[str, str]:
    variables: dict[str, tuple[str | None, str]] = {}
    if "env_file" in raw:
        env_files_path = join(path, "env_file")
        files = r.strings(raw["env_file"], env_files_path, single=True)
        for index, name in enumerate(files):
            file_path = env_files_path if isinstance(raw["env_file"], str) else join(env_files_path, index)
            file = r.base_dir / name
            try:
                variables |= {key: (value, file_path) for key, value in parse_env_file(file)}
            except FileNotFoundError:
                r.problem(file_path, f"{file.absolute()} does not exist (paths are relative to the stack file)")
            except (OSError, ValueError) as error:
                r.problem(file_path, f"{file.absolute()}: {error}")
    variables |= r.dictionary(raw.get("environment"), join(path, "environment"))
    environment = {}
    for key, (value, origin) in variables.items():
        if value is None:
            r.problem(
                origin,
                f"{key} has no value, and docker stack deploy would copy it from the deployer's shell: "
                f"write {key}=VALUE (an empty value is {key}=)",
            )
        else:
            environment[key] = value
    return environment


def read_healthcheck(r: Reader, value: Any, path: Where) -> Healthcheck | None:
    raw = r.mapping(value, path, _HEALTHCHECK_KEYS, extensions=None)
    if not isinstance(value, dict):
        return None
    test: tuple[str, ...] | None = None
    if "test" in raw:
        if isinstance(raw["test"], str):
            test = ("CMD-SHELL", raw["test"])
        else:
            test = r.strings(raw["test"], join(path, "test"), unique=False) or None
            if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
                r.problem(
                    join(path, "test"),
                    'a list test starts with "CMD", "CMD-SHELL" or "NONE"; a string runs in a shell',
                )
    disable = bool("disable" in raw and r.boolean(raw["disable"], join(path, "disable")))
    if disable and test:
        r.problem(path, "`test` and `disable: true` cannot be set at the same time")
    if "start_interval" in raw:
        r.warn(join(path, "start_interval"), f"ignored: {PROVIDER}")

    def duration(key: str) -> int | None:
        return r.duration(raw[key], join(path, key)) if key in raw else None

    retries = r.number(raw["retries"], join(path, "retries")) if "retries" in raw else None
    return Healthcheck(
        test=test,
        interval=duration("interval"),
        timeout=duration("timeout"),
        start_period=duration("start_period"),
        start_interval=duration("start_interval"),
        retries=None if retries is None else int(retries),
        disable=disable,
    )


def read_ulimits(r: Reader, value: Any, path: Where) -> dict[str, Ulimit]:
    if not isinstance(value, dict):
        r.problem(path, f"must be a mapping of limit names to a number or {{soft, hard}}, not {kind_of(value)}")
        return {}
    r.warn(path, f"ignored: {PROVIDER}")
    ulimits = {}
    for name, limit in value.items():
        limit_path = join(path, str(name))
        if not isinstance(name, str):
            r.problem(limit_path, "limit names are strings, like nofile")
        elif isinstance(limit, dict):
            limit = r.mapping(limit, limit_path, {"soft": V30, "hard": V30}, extensions=None)
            if "soft" not in limit or "hard" not in limit:
                r.problem(limit_path, "needs both `soft` and `hard`")
                continue
            soft = r.integer(limit["soft"], join(limit_path, "soft"), minimum=-1)
            hard = r.integer(limit["hard"], join(limit_path, "hard"), minimum=-1)
            if soft is not None and hard is not None:
                ulimits[name] = Ulimit(soft, hard)
        elif (single := r.integer(limit, limit_path, minimum=-1)) is not None:
            ulimits[name] = Ulimit(single, single)
    return ulimits


def read_extra_hosts(r: Reader, value: Any, path: Where) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):  # Docker turns the mapping form into sorted "host:ip" entries
        entries = sorted(f"{host}:{ip}" for host, (ip, _) in r.dictionary(value, path).items())
        paths = [path] * len(entries)
    else:
        entries = list(r.strings(value, path))
        paths = [join(path, index) for index in range(len(entries))]
    hosts = []
    for entry, entry_path in zip(entries, paths, strict=True):
        host, found, ip = entry.partition(":")
        if not found or not host or not ip:
            r.problem(entry_path, f"expected HOST:IP, not {entry!r}")
        else:
            hosts.append((host, ip))
    return tuple(hosts)


def read_logging(r: Reader, value: Any, path: Where) -> Logging | None:
    raw = r.mapping(value, path, {"driver": V30, "options": V30}, extensions=None)
    if not isinstance(value, dict):
        return None
    driver = r.string(raw["driver"], join(path, "driver")) if "driver" in raw else None
    return Logging(driver, r.options(raw.get("options"), join(path, "options")))


def _file_references(what: str) -> Callable[[Reader, Any, Where], tuple[FileReference, ...]]:
    def read(r: Reader, value: Any, path: Where) -> tuple[FileReference, ...]:
        return read_file_references(r, value, path, getattr(r.declared, f"{what}s"), what)

    return read


def _volume_mounts(r: Reader, value: Any, path: Where) -> list[Mount]:
    return read_mounts(r, value, path, r.declared.volumes)


def _flag(r: Reader, value: Any, path: Where) -> bool:
    return bool(r.boolean(value, path))


def _string_or_list(r: Reader, value: Any, path: Where) -> tuple[str, ...]:
    return r.strings(value, path, single=True)


def _networks(r: Reader, value: Any, path: Where) -> tuple[NetworkAttachment, ...]:
    return read_attachments(r, value, path, r.declared.networks)


Read = Callable[[Reader, Any, Where], Any]
# ServiceSpec field -> where its value is in the service (its key, a key path into `deploy`, or ()
# for the whole service), its reader, and its value when that is absent (a type is called for a
# fresh one). In ServiceSpec's order, which is the order problems are reported in.
SERVICE_FIELDS: dict[str, tuple[str | tuple[str, ...], Read, Any]] = {
    "entrypoint": ("entrypoint", read_command, None),
    "command": ("command", read_command, None),
    "environment": ((), read_environment, dict),  # environment and env_file
    "labels": ("labels", Reader.labels, dict),
    "deploy_labels": (("deploy", "labels"), Reader.labels, dict),
    "secrets": ("secrets", _file_references("secret"), ()),
    "configs": ("configs", _file_references("config"), ()),
    "networks": ("networks", _networks, (NetworkAttachment(DEFAULT_NETWORK),)),
    "healthcheck": ("healthcheck", read_healthcheck, None),
    "update_config": (("deploy", "update_config"), read_update_config, None),
    "rollback_config": (("deploy", "rollback_config"), read_rollback_config, None),
    "stop_grace_period": ("stop_grace_period", Reader.duration, None),
    "stop_signal": ("stop_signal", Reader.string, None),
    "user": ("user", Reader.string, None),
    "working_dir": ("working_dir", Reader.string, None),
    "hostname": ("hostname", Reader.string, None),
    "init": ("init", Reader.boolean, None),
    "tty": ("tty", _flag, False),
    "stdin_open": ("stdin_open", _flag, False),
    "read_only": ("read_only", _flag, False),
    "cap_add": ("cap_add", Reader.strings, ()),
    "cap_drop": ("cap_drop", Reader.strings, ()),
    "sysctls": ("sysctls", Reader.labels, dict),
    "ulimits": ("ulimits", read_ulimits, dict),
    "extra_hosts": ("extra_hosts", read_extra_hosts, ()),
    "dns": ("dns", _string_or_list, ()),
    "dns_search": ("dns_search", _string_or_list, ()),
    "logging": ("logging", read_logging, None),
    "isolation": ("isolation", Reader.string, None),
}


def _read_field(r: Reader, raw: dict, path: Where, keys: tuple[str, ...], read: Read, default: Any) -> Any:
    value = raw
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default() if isinstance(default, type) else default
        value = value[key]
    return read(r, value, join(path, *keys))


# SERVICE_FIELDS with each path as a tuple of keys, and the defaults of the fields a service
# does not set, made once: most of the fields are absent from most services.
_FIELD_KEYS = [(field, (where,) if isinstance(where, str) else where, read, default)
               for field, (where, read, default) in SERVICE_FIELDS.items()]


def _read_fields(r: Reader, raw: dict, path: Where) -> dict[str, Any]:
    return {
        field: _read_field(r, raw, path, keys, read, default) if not keys or keys[0] in raw
        else (default() if isinstance(default, type) else default)
        for field, keys, read, default in _FIELD_KEYS
    }


def read_service(r: Reader, name: str, value: Any) -> ServiceSpec:
    """One service; `r.declared` holds the top-level objects it may use."""
    path = join("services", name)
    raw = r.mapping(value, path, _SERVICE_KEYS)
    if not isinstance(value, dict):
        return ServiceSpec(name=name, image="")
    for key, advice in _FORBIDDEN_SERVICE_KEYS.items():
        if key in raw:
            r.problem(join(path, key), f"docker stack deploy refuses it: {advice}", key=True)
    for key, (_, advice) in _IGNORED_SERVICE_KEYS.items():
        if key in raw:
            r.warn(join(path, key), f"ignored: {advice}", key=True)

    def at(key: str) -> Where:
        return join(path, key)

    image = r.string(raw["image"], at("image")) if "image" in raw else None
    if isinstance(image, str) and (why := moving_tag(image)):
        r.warn(at("image"), why)
    if "image" not in raw:
        r.problem(path, "needs `image`: swarm runs images, it does not build them")

    deploy = read_deploy(r, raw.get("deploy"), at("deploy"))
    restart_policy = deploy["restart_policy"]
    if "restart" in raw:
        if isinstance(raw.get("deploy"), dict) and "restart_policy" in raw["deploy"]:
            r.warn(at("restart"), "ignored because deploy.restart_policy is set")
        else:
            restart_policy = read_legacy_restart(r, raw["restart"], at("restart"))

    ports = read_ports(r, raw["ports"], at("ports")) if "ports" in raw else ()
    if deploy["endpoint_mode"] == "dnsrr" and any(port.mode == "ingress" and port.published for port in ports):
        r.problem(at("ports"), "ports published in ingress mode need endpoint_mode vip; publish them with mode: host")
    mounts = _volume_mounts(r, raw["volumes"], at("volumes")) if "volumes" in raw else []
    mounts += read_tmpfs(r, raw["tmpfs"], at("tmpfs")) if "tmpfs" in raw else []
    for flag in ("tty", "stdin_open"):
        if raw.get(flag) is True:
            r.warn(at(flag), f"ignored: {PROVIDER}")
    schedule = read_service_schedule(
        raw, deploy["mode"], restart_policy.condition if restart_policy else None,
        lambda key, message: r.problem(at(key), message), lambda key, message: r.warn(at(key), message),
    )
    fields = _read_fields(r, raw, path)
    return ServiceSpec(
        name=name,
        image=image or "",
        ports=ports,
        mounts=tuple(mounts),
        schedule=schedule,
        **{**deploy, "restart_policy": restart_policy},
        **fields,
    )
