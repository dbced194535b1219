"""The top-level `volumes:` section, and a service's `volumes:` and `tmpfs:` (its mounts)."""

from __future__ import annotations

from typing import Any

from swarm.compose.model import Mount, VolumeSpec
from swarm.compose.reader import (
    V30,
    V32,
    V34,
    V36,
    V310,
    Reader,
    Where,
    external_of,
    join,
    kind_of,
)
from swarm.suggest import did_you_mean

_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def read_volumes(r: Reader, section: Any) -> dict[str, VolumeSpec]:
    keys = {"driver": V30, "driver_opts": V30, "external": V30, "labels": V30, "name": V34, "x-cluster-spec": V310}
    volumes = {}
    for key, definition in r.named_entries(section, "volumes"):
        path = join("volumes", key)
        definition = r.mapping(definition, path, keys)
        external, external_name = external_of(r, definition, path)
        name = r.string(definition["name"], join(path, "name")) if definition.get("name") is not None else None
        driver = r.string(definition["driver"], join(path, "driver")) if "driver" in definition else None
        if "x-cluster-spec" in definition:
            r.problem(
                join(path, "x-cluster-spec"),
                "cluster (CSI) volumes are not supported: use a local volume or a bind mount",
            )
        if external:
            for conflicting in ("driver", "driver_opts", "labels"):
                if conflicting in definition:
                    r.problem(
                        join(path, conflicting), "an external volume takes no `driver`, `driver_opts` or `labels`"
                    )
        deployed = name or external_name or (key if external else f"{r.stack}_{key}")
        volumes[key] = VolumeSpec(
            key=key,
            name=deployed,
            external=external,
            driver=driver,
            driver_opts=r.options(definition.get("driver_opts"), join(path, "driver_opts")),
            labels=r.labels(definition.get("labels"), join(path, "labels")),
        )
    return volumes


def read_mounts(r: Reader, value: Any, path: Where, volumes: dict[str, VolumeSpec]) -> list[Mount]:
    if not isinstance(value, list):
        r.problem(path, f"must be a list of volumes, not {kind_of(value)}")
        return []
    r.unique(value, path)
    mounts = []
    keys = {
        **dict.fromkeys(("type", "source", "target", "read_only", "consistency", "bind", "volume"), V32),
        "tmpfs": V36,
    }
    for index, item in enumerate(value):
        item_path = join(path, index)
        if isinstance(item, str):
            try:
                fields = _short_volume(item)
            except ValueError as error:
                r.problem(item_path, str(error))
                continue
            options = {}
            for option in fields.pop("options", []):
                if option in ("ro", "rw"):
                    options["read_only"] = option == "ro"
                elif option == "nocopy":
                    options["volume"] = {"nocopy": True}
                elif option in _PROPAGATIONS:
                    options["bind"] = {"propagation": option}
                else:
                    r.warn(item_path, f"option {option!r} is ignored by swarm")
            fields |= options
        elif isinstance(item, dict):
            r.require(V32, item_path, "the long volume syntax")
            fields = r.mapping(item, item_path, keys, extensions=None)
            if "type" not in fields:
                r.problem(item_path, "needs `type`: volume, bind or tmpfs")
                continue
        else:
            r.problem(item_path, f'must be a string like "/host/path:/container/path" or a mapping, not {kind_of(item)}')
            continue
        mount = _mount(r, fields, item_path, volumes)
        if mount is not None:
            mounts.append(mount)
    return mounts


def _short_volume(spec: str) -> dict[str, Any]:
    """A short-syntax volume ("SOURCE:TARGET:OPTIONS"), split as Docker's ParseVolume does."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    if len(spec) <= 2:
        return {"type": "volume", "target": spec}
    fields: dict[str, Any] = {}
    buffer = ""
    for char in spec + "\0":
        if char == ":" and len(buffer) == 1 and buffer.isalpha():
            buffer += char  # a Windows drive letter, as Docker allows
        elif char in ":\0":
            if not buffer:
                raise ValueError(f"invalid spec {spec!r}: empty section between colons")
            if "source" not in fields and char == "\0":
                fields["target"] = buffer
            elif "source" not in fields:
                fields["source"] = buffer
            elif "target" not in fields:
                fields["target"] = buffer
            elif char == ":":
                raise ValueError(f"invalid spec {spec!r}: too many colons")
            else:
                fields["options"] = buffer.split(",")
            buffer = ""
        else:
            buffer += char
    source = fields.get("source", "")
    is_path = (
        source[:1] in (".", "/", "~")
        or source.startswith("\\\\")
        or (len(source) > 1 and source[0].isalpha() and source[1] == ":")
    )
    fields["type"] = "bind" if is_path else "volume"
    return fields


def _mount(r: Reader, fields: dict, path: Where, volumes: dict[str, VolumeSpec]) -> Mount | None:
    kind = r.choice(fields["type"], join(path, "type"), ("volume", "bind", "tmpfs", "npipe", "cluster"))
    if kind in ("npipe", "cluster"):
        r.problem(join(path, "type"), f"{kind} mounts are not supported: use volume, bind or tmpfs")
        return None
    target = r.string(fields["target"], join(path, "target")) if "target" in fields else None
    source = r.string(fields["source"], join(path, "source")) if fields.get("source") not in (None, "") else None
    read_only = bool("read_only" in fields and r.boolean(fields["read_only"], join(path, "read_only")))
    if "consistency" in fields:
        r.warn(join(path, "consistency"), "ignored: it only matters to Docker Desktop")
    if not target or not target.startswith("/"):
        r.problem(join(path, "target"), "needs an absolute path inside the container")
    for option, owner in (("bind", "bind"), ("volume", "volume"), ("tmpfs", "tmpfs")):
        if option in fields and kind != owner:
            r.problem(join(path, option), f"{option} options are incompatible with type {kind}")
    if kind is None or not target:
        return None
    if kind == "bind":
        bind = r.mapping(fields.get("bind"), join(path, "bind"), {"propagation": V32}, extensions=None)
        propagation = (
            r.choice(bind["propagation"], join(path, "bind", "propagation"), _PROPAGATIONS)
            if "propagation" in bind
            else None
        )
        if source is None or not source.startswith("/"):
            r.problem(
                join(path, "source"),
                f"a bind mount needs an absolute path on the node, not {source or 'nothing'!r}: relative paths "
                "would name the deployer's directories, which do not exist on the nodes",
            )
            return None
        return Mount("bind", target, source, read_only, propagation=propagation)
    if kind == "tmpfs":
        tmpfs = r.mapping(fields.get("tmpfs"), join(path, "tmpfs"), {"size": V36}, extensions=None)
        size = r.integer(tmpfs["size"], join(path, "tmpfs", "size")) if "size" in tmpfs else None
        if source is not None:
            r.problem(join(path, "source"), "a tmpfs mount takes no source")
        return Mount("tmpfs", target, None, read_only, tmpfs_size=size)
    options = r.mapping(fields.get("volume"), join(path, "volume"), {"nocopy": V32}, extensions=None)
    no_copy = bool("nocopy" in options and r.boolean(options["nocopy"], join(path, "volume", "nocopy")))
    if source is not None and source not in volumes:
        hint = did_you_mean(source, volumes)
        r.problem(join(path, "source"), f"volume {source!r} is not declared under the top-level `volumes:`{hint}")
        return None
    return Mount("volume", target, source, read_only, no_copy=no_copy, volume=volumes.get(source) if source else None)


def read_tmpfs(r: Reader, value: Any, path: Where) -> list[Mount]:
    mounts = []
    for index, target in enumerate(r.strings(value, path, single=True)):
        target_path = path if isinstance(value, str) else join(path, index)
        if ":" in target or not target.startswith("/"):
            r.problem(
                target_path,
                "expected an absolute path; for options use a volume of `type: tmpfs` with `tmpfs: {size: BYTES}`",
            )
        else:
            mounts.append(Mount("tmpfs", target, None))
    return mounts
