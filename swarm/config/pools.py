"""`swarm:nodePools`: the node pools, read and validated into frozen `Pool`s.

Split from swarm/config/cluster.py, which calls `parse_pools` from `parse_config` (so `nodePools` is a
known key there and every pool problem is collected with the others). A pool's keys (role,
count, size, gpu, image, labels, volume, previousNames, maxUnavailable) and its volume's are
checked here, each problem under its own path (`nodePools.<pool>.<key>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarm.config.keys import NAMESPACE, Collector, known_key
from swarm.config.renames import parse_previous_names
from swarm.config.sizes import SIZES, DropletSize
from swarm.diagnostics import ProblemPath
from swarm.model import GPU_LABEL
from swarm.suggest import did_you_mean

DEFAULT_IMAGE = "ubuntu-24-04-x64"
# DigitalOcean's AI/ML-ready GPU image: Ubuntu with the NVIDIA driver installed.
DEFAULT_GPU_IMAGE = "gpu-h100x1-base"
ROLES = ("manager", "worker")

# Swarm stores any label key but refuses a placement constraint on one outside this set (`key
# 'node.labels.bad key!' is invalid`).
LABEL_KEY = re.compile(r"^[A-Za-z0-9._-]+$")
# Stricter than swarm's own value pattern: no blanks, so the value is safe in scripts and
# unambiguous in `node.labels.k == v`.
LABEL_VALUE = re.compile(r"^[A-Za-z0-9:_./+-]+$")
# Droplet names become hostnames and swarm node names: one DNS label.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
IMAGE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# Images the user data can serve: it installs Docker from Docker's *Ubuntu* repository, for the
# release the node runs. DigitalOcean's Ubuntu slugs, its GPU images (Ubuntu with the NVIDIA
# driver), or the numeric ID of an operator's own snapshot (of Ubuntu: the program cannot see it).
SERVED_IMAGE = re.compile(r"^(ubuntu-[0-9]{2}-[0-9]{2}-x64|gpu-[a-z0-9]+(-[a-z0-9]+)*-base|[0-9]+)$")
KNOWN_IMAGES = ("ubuntu-22-04-x64", "ubuntu-24-04-x64", DEFAULT_GPU_IMAGE)
MOUNT_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")

POOL_KEYS = {"role", "count", "size", "image", "labels", "gpu", "volume", "previousNames", "maxUnavailable"}
VOLUME_KEYS = {"sizeGb", "mountPath", "protect"}
MAX_VOLUME_GB = 16 * 1024


@dataclass(frozen=True)
class Volume:
    size_gb: int
    mount_path: str
    # Pulumi refuses to delete (or replace) a protected volume; `protect: false` opts out.
    protect: bool = True


@dataclass(frozen=True)
class Pool:
    name: str
    role: str
    count: int
    size: DropletSize
    image: str
    labels: Mapping[str, str]
    gpu: bool = False
    volume: Volume | None = None
    # Names this pool had before (`previousNames`): its resources are aliased to them, so a
    # renamed pool keeps its volumes (and its droplets are replaced, not created beside them).
    previous_names: tuple[str, ...] = ()
    # How many of the pool's nodes a rolling change may take out of service at once: nodes
    # being retired (drained, waiting for their tasks to run elsewhere, removed) at one time.
    max_unavailable: int = 1


@known_key("nodePools", type="object", default="required",
           doc="pool name → pool (see [A pool](#a-pool)); pools are created in the order given")
def parse_pools(value: Any, stack: str, found: Collector) -> list[Pool]:
    if value is None:
        found.problem("nodePools", "is required: declare at least one pool with `role: manager` (see docs/configuration.md)")
        return []
    if not isinstance(value, dict) or not value:
        found.problem("nodePools", "must be a non-empty mapping of pool name to pool")
        return []
    pools = [pool for name, spec in value.items() if (pool := _parse_pool(str(name), spec, stack, found))]
    if not any(pool.role == "manager" and pool.count > 0 for pool in pools) and not any_pool_problem(found):
        found.problem("nodePools", "no pool has `role: manager` with `count` >= 1; a swarm needs a manager to init it")
    managers = sum(pool.count for pool in pools if pool.role == "manager")
    if managers and managers % 2 == 0:
        found.warn("nodePools", f"{managers} managers tolerate no more failures than {managers - 1}; use an odd number")
    first = next((pool for pool in pools if pool.role == "manager" and pool.count > 0), None)
    if managers == 1 and first is not None and first.volume is None:
        # Its swarm state is kept on its volume across a replacement (scripts.handover_script).
        found.warn(
            ("nodePools", first.name), "a lone manager without a volume: replacing its droplet (a new "
            "image, user data or SSH key) starts a new, empty swarm and every service, secret and network is "
            "created again; give the pool a `volume` (its swarm state is kept there) or run 3 managers"
        )
    return pools


def any_pool_problem(found: Collector) -> bool:
    """A broken pool may be the intended manager: don't also claim that none exists."""
    return any(p.path[0] == f"{NAMESPACE}:nodePools" and len(p.path) > 1 for p in found.problems)


def _parse_pool(name: str, spec: Any, stack: str, found: Collector) -> Pool | None:
    key = ("nodePools", name)
    if not DNS_LABEL.match(name):
        found.problem(key, "pool names must be lowercase letters, digits and '-' (droplets are named <stack>-<pool>-<n>)")
    elif len(f"{stack}-{name}-999") > 63:
        found.problem(key, "pool name too long: <stack>-<pool>-<n> must fit in a 63-character hostname")
    if not isinstance(spec, dict):
        found.problem(key, "must be a mapping with at least `role`, `count` and `size`")
        return None
    for unknown in sorted(set(spec) - POOL_KEYS, key=str):
        hint = did_you_mean(unknown, POOL_KEYS)
        found.problem((*key, str(unknown)), f"unknown key{hint or '; a pool takes ' + ', '.join(sorted(POOL_KEYS))}")

    before = len(found.problems)
    role = spec.get("role")
    if role not in ROLES:
        hint = (did_you_mean(role, ROLES) if isinstance(role, str) else "") or "; use 'manager' or 'worker'"
        found.problem((*key, "role"), f"{role!r} is not a role{hint}")
    count = spec.get("count")
    if not _is_int(count) or count < 0:
        found.problem((*key, "count"), f"{count!r} is not a node count; use a whole number >= 0")
    gpu = spec.get("gpu", False)
    if not isinstance(gpu, bool):
        found.problem((*key, "gpu"), f"{gpu!r} must be true or false")
    size = _parse_size(spec.get("size"), gpu is True, (*key, "size"), found)
    image = spec.get("image", DEFAULT_GPU_IMAGE if gpu is True else DEFAULT_IMAGE)
    if not isinstance(image, str) or not IMAGE.match(image):
        found.problem((*key, "image"), f"{image!r} is not a DigitalOcean image slug; e.g. '{DEFAULT_IMAGE}'")
    elif not SERVED_IMAGE.match(image):
        found.problem((*key, "image"), f"{image!r} cannot run the nodes' user data, which installs Docker from "
                      f"Docker's Ubuntu repository: use an ubuntu-<release>-x64 slug (e.g. '{DEFAULT_IMAGE}'), "
                      f"DigitalOcean's GPU image ('{DEFAULT_GPU_IMAGE}') or the numeric ID of your own Ubuntu "
                      f"snapshot{did_you_mean(image, KNOWN_IMAGES)}")
    labels = _parse_labels(spec.get("labels", {}), (*key, "labels"), found)
    if gpu is True:
        label, value = GPU_LABEL
        if labels.setdefault(label, value) != value:
            found.problem((*key, "labels", label), f"a GPU pool's nodes are labelled {label}={value}; drop this label or rename it")
    volume = _parse_volume(spec.get("volume"), (*key, "volume"), found)
    previous_names = parse_previous_names(spec.get("previousNames"), (*key, "previousNames"), name, "pool", DNS_LABEL,
                                          found.problem)
    max_unavailable = _parse_max_unavailable(spec.get("maxUnavailable", 1), role, count, (*key, "maxUnavailable"), found)
    if len(found.problems) > before:
        return None
    return Pool(name, role, int(count), size, image, labels, gpu, volume, previous_names, max_unavailable)


def _parse_max_unavailable(value: Any, role: Any, count: Any, key: ProblemPath, found: Collector) -> int:
    """`maxUnavailable`: nodes of the pool a rolling change (a new size, image or user data, a
    scale-down) takes out of service at once, each drained and retired only once its tasks run
    elsewhere. More is faster and needs room for more moved tasks on the other nodes."""
    if not _is_int(value) or value < 1:
        found.problem(key, f"{value!r} is not a node count; use a whole number >= 1 (default 1)")
        return 1
    if role == "manager" and value > 1:
        found.problem(key, "managers leave one at a time, so that the others keep quorum; remove maxUnavailable")
    elif _is_int(count) and count >= 1 and value > count:
        found.problem(key, f"{int(value)} is more than the pool's {int(count)} nodes; use at most {int(count)}")
    return int(value)


def _parse_size(slug: Any, gpu: bool, key: ProblemPath, found: Collector) -> DropletSize | None:
    if not isinstance(slug, str) or slug not in SIZES:
        hint = did_you_mean(slug, SIZES, cutoff=0.5) if isinstance(slug, str) else ""
        suggestion = hint or "; see `doctl compute size list`"
        found.problem(key, f"{slug!r} is not a known DigitalOcean size slug{suggestion} (table: swarm/config/sizes.py)")
        return None
    size = SIZES[slug]
    if gpu and not size.gpus:
        found.problem(key, f"'{slug}' has no GPU but the pool says `gpu: true`; use a gpu-* size such as 'gpu-h100x1-80gb'")
    if size.gpus and not gpu:
        found.problem(key, f"'{slug}' is a GPU size; set `gpu: true` on the pool so its GPUs are set up for swarm")
    return size


def _parse_labels(value: Any, key: ProblemPath, found: Collector) -> dict[str, str]:
    if not isinstance(value, dict):
        found.problem(key, "must be a mapping of label key to value, e.g. {type: machine-learning}")
        return {}
    labels = {}
    for label, label_value in value.items():
        if not isinstance(label, str) or not LABEL_KEY.match(label):
            found.problem(
                (*key, str(label)),
                "swarm cannot use this label key in a placement constraint; use letters, digits, '-', '_' and '.' only",
            )
        elif not isinstance(label_value, str) or not LABEL_VALUE.match(label_value):
            found.problem(
                (*key, label),
                f"{label_value!r} is not a usable label value; use a quoted string of letters, digits and ':_./+-'",
            )
        else:
            labels[label] = label_value
    return labels


def _parse_volume(value: Any, key: ProblemPath, found: Collector) -> Volume | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        found.problem(key, "must be a mapping like {sizeGb: 50, mountPath: /mnt/postgresql}")
        return None
    for unknown in sorted(set(value) - VOLUME_KEYS):
        found.problem((*key, str(unknown)), f"unknown key; a volume takes {', '.join(sorted(VOLUME_KEYS))}")
    size_gb = value.get("sizeGb")
    if not _is_int(size_gb) or not 1 <= size_gb <= MAX_VOLUME_GB:
        found.problem((*key, "sizeGb"), f"{size_gb!r} is not a volume size; use whole GiB from 1 to {MAX_VOLUME_GB}")
    mount_path = value.get("mountPath")
    if not isinstance(mount_path, str) or not MOUNT_PATH.match(mount_path) or mount_path.split("/")[1] in _SYSTEM_DIRS:
        found.problem((*key, "mountPath"), f"{mount_path!r} is not a usable mount point; use an absolute path such as /mnt/postgresql")
    protect = value.get("protect", True)
    if not isinstance(protect, bool):
        found.problem((*key, "protect"), f"{protect!r} must be true (the default: Pulumi refuses to delete the volume) or false")
    return Volume(int(size_gb), mount_path, protect is not False) if _is_int(size_gb) else None


_SYSTEM_DIRS = {"bin", "boot", "dev", "etc", "lib", "lib64", "proc", "root", "run", "sbin", "sys", "usr", "var"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
