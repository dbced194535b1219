"""The top-level `secrets:` and `configs:` sections, and the ones a service uses."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from swarm.compose.model import ConfigSpec, FileReference, SecretSpec
from swarm.compose.reader import (
    V30,
    V35,
    V38,
    Reader,
    Version,
    Where,
    external_of,
    join,
    kind_of,
)
from swarm.suggest import did_you_mean

_SECRET_MAX_BYTES = 500 * 1024  # swarm's limits


_CONFIG_MAX_BYTES = 1000 * 1024


def read_file_objects(r: Reader, section: str, raw: Any, provided: Collection[str] | None) -> dict[str, SecretSpec]:
    """Top-level secrets or configs: file contents read now, external values left to config."""
    is_secret = section == "secrets"
    keys: dict[str, Version] = {"file": V30, "external": V30, "labels": V30, "name": V35, "template_driver": V38}
    if is_secret:
        keys |= {"driver": V38, "driver_opts": V38}
    spec_type = SecretSpec if is_secret else ConfigSpec
    limit = _SECRET_MAX_BYTES if is_secret else _CONFIG_MAX_BYTES
    objects = {}
    for key, definition in r.named_entries(raw, section):
        path = join(section, key)
        definition = r.mapping(definition, path, keys)
        external, external_name = external_of(r, definition, path)
        for unsupported in ("driver", "driver_opts", "template_driver"):
            if unsupported in definition:
                r.problem(join(path, unsupported), "not supported: give the value with `file:` or `external: true`")
        if "name" in definition or external_name:
            name_path = join(path, *(("name",) if "name" in definition else ("external", "name")))
            r.warn(
                name_path,
                f"ignored: deployed names carry a content hash (<stack>_{key}_<hash>) so a new value rolls out safely",
            )
        labels = r.labels(definition.get("labels"), join(path, "labels"))
        file, content = None, None
        if external:
            if "file" in definition:
                r.problem(path, "has both `file:` and `external: true`: keep one")
            if provided is not None and key not in provided:
                secret = " --secret" if is_secret else ""
                r.problem(
                    path,
                    f"is external but the stack configuration has no value for it: run "
                    f"`pulumi config set{secret} --path 'swarm:{section}.{key}' VALUE`",
                )
        elif "file" not in definition:
            r.problem(path, "needs `file: PATH` (relative to the stack file) or `external: true` (value from config)")
        elif (name := r.string(definition["file"], join(path, "file"))) is not None:
            file = (r.base_dir / name).absolute()
            if not file.is_file():
                r.problem(
                    join(path, "file"),
                    f"{file} does not exist or is not a file (paths are relative to the stack file)",
                )
            else:
                content = file.read_bytes()
                if len(content) > limit:
                    r.problem(join(path, "file"), f"{file} has {len(content)} bytes; swarm takes at most {limit}")
        objects[key] = spec_type(key=key, external=external, file=file, content=content, labels=labels)
    return objects


def read_file_references(
    r: Reader, value: Any, path: Where, declared: dict[str, SecretSpec], what: str
) -> tuple[FileReference, ...]:
    if not isinstance(value, list):
        r.problem(
            path, f"must be a list of {what} names or {{source, target, uid, gid, mode}} mappings, not {kind_of(value)}"
        )
        return ()
    references = []
    keys = dict.fromkeys(("source", "target", "uid", "gid", "mode"), V30)
    for index, item in enumerate(value):
        item_path = join(path, index)
        if isinstance(item, str):
            item = {"source": item}
            source_path = item_path
        else:
            item = r.mapping(item, item_path, keys, extensions=None)
            source_path = join(item_path, "source")
            if "source" not in item:
                r.problem(item_path, f"needs `source`: the name of a top-level {what}")
                continue
        source = r.string(item["source"], source_path)
        if source is None:
            continue
        if source not in declared:
            hint = did_you_mean(source, declared)
            r.problem(source_path, f"{what} {source!r} is not declared under the top-level `{what}s:`{hint}")
        target = r.string(item["target"], join(item_path, "target")) if "target" in item else None
        uid = r.string(item["uid"], join(item_path, "uid")) if "uid" in item else None
        gid = r.string(item["gid"], join(item_path, "gid")) if "gid" in item else None
        mode = r.number(item["mode"], join(item_path, "mode"), maximum=0o7777) if "mode" in item else None
        references.append(
            FileReference(
                source=source,
                target=target or source,
                uid=uid or "0",
                gid=gid or "0",
                mode=0o444 if mode is None else int(mode),
            )
        )
    return tuple(references)
