"""A stack's files as `scripts/local-swarm` deploys them on the sandbox: there is no registry
there, so every service runs the local busybox image (as the sandbox tests do,
tests/sandbox/conftest.py `sandbox_stack_file`), everything else as the user wrote it.

What changes, and why:
- `image` becomes the sandbox image and `command` a long `sleep`: nothing can be pulled. The image
  the user wrote stays on the service as the container label `local-swarm.image`, so a new image
  (in the stack file, the catalogue or `swarm:images`) still changes the task and rolls the
  service out, as a release would;
- `entrypoint` and a non-numeric `user` are dropped (the image has neither the binary nor the
  account), a healthcheck's test becomes `true` (its timings are kept);
- `stop_grace_period` becomes 1s (`sleep` ignores SIGTERM: every stop would wait it out) and
  rolling updates pause 1s and watch each task 3s instead of the file's delay and monitor;
- relative `file:`/`env_file` paths become absolute (the copy lives elsewhere);
- CPU and memory reservations are scaled by `Scale` when the stack's largest droplet has more
  vCPUs (memory) than this machine: every sandbox host reports this machine's CPUs and memory to
  the scheduler, so prod's reservations, sized for 4-vCPU 32 GB workers, would leave tasks
  pending on a 2-core laptop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.sandbox.harness import DEFAULT_IMAGE

CATALOGUE_KEY = "x-model-catalogue"
IMAGE_LABEL = "local-swarm.image"
COMMAND = ["sleep", "86400"]
NOTE = (f"images: no registry here, every service runs {DEFAULT_IMAGE} (busybox) with `sleep`; "
        f"the image you wrote is its label {IMAGE_LABEL} (a new one still rolls the service out). "
        "Stop grace 1s, rolling-update pauses 1s/3s.")


def _with_label(labels: Any, value: str) -> Any:
    if isinstance(labels, list):
        return [item for item in labels if not str(item).startswith(IMAGE_LABEL + "=")] + [f"{IMAGE_LABEL}={value}"]
    return {**(labels or {}), IMAGE_LABEL: value}


def _short_pauses(update: Any) -> None:
    if isinstance(update, dict):
        update.update({"delay": "1s", "monitor": "3s"})


@dataclass(frozen=True)
class Scale:
    """Factors (at most 1) for CPU and memory reservations."""

    cpus: float = 1.0
    memory: float = 1.0

    def apply(self, reservations: dict) -> None:
        """Scale a mapping's `cpus` and `memory` (a Compose reservation, a catalogue model)."""
        if "cpus" in reservations and self.cpus != 1:
            try:
                reservations["cpus"] = f"{max(round(float(reservations['cpus']) * self.cpus, 3), 0.001):g}"
            except (TypeError, ValueError):
                pass  # not a number: the program reports it
        if "memory" in reservations and self.memory != 1:
            from swarm.values import parse_memory

            try:
                reservations["memory"] = f"{max(int(parse_memory(str(reservations['memory'])) * self.memory) >> 20, 4)}M"
            except ValueError:
                pass


def localise_service(service: dict, original_image: str, scale: Scale = Scale()) -> None:
    reservations = ((service.get("deploy") or {}).get("resources") or {}).get("reservations")
    if isinstance(reservations, dict):
        scale.apply(reservations)
    service["image"] = DEFAULT_IMAGE
    service["command"] = list(COMMAND)
    service["stop_grace_period"] = "1s"
    service.pop("entrypoint", None)
    if not str(service.get("user", "0")).split(":")[0].isdigit():
        service.pop("user")
    if isinstance(service.get("healthcheck"), dict) and not service["healthcheck"].get("disable"):
        service["healthcheck"]["test"] = ["CMD", "true"]
    service["labels"] = _with_label(service.get("labels"), original_image)
    _short_pauses(service.get("deploy", {}).get("update_config"))


def _absolute(path: str, base: Path) -> str:
    return str((base / path).resolve()) if not Path(path).is_absolute() else path


def localise_catalogue(catalogue: dict, images: dict[str, str], scale: Scale = Scale()) -> None:
    defaults = catalogue.get("defaults") or {}
    _short_pauses(defaults.get("update_config"))
    scale.apply(defaults)
    for model in catalogue.get("models") or []:
        scale.apply(model)
        image = str(model.get("image", ""))
        if "/" not in image:
            image = str(model.get("image_prefix", defaults.get("image_prefix", ""))) + image
        image = images.get(str(model.get("name")), image)
        model["image"] = DEFAULT_IMAGE
        _short_pauses(model.get("update_config"))
        overrides = model.setdefault("overrides", {})
        overrides.update({"command": list(COMMAND), "stop_grace_period": "1s"})
        overrides["labels"] = _with_label(overrides.get("labels"), image)
        overrides.pop("entrypoint", None)


def write_local_stack(stack_file: Path, out: Path, images: dict[str, str], scale: Scale = Scale()) -> Path:
    """Write the local copy of `stack_file` (and of its model catalogue) into `out`; `images`
    are swarm:images (service -> image), applied here since the program gets none."""
    out.mkdir(parents=True, exist_ok=True)
    base = stack_file.parent
    document = yaml.safe_load(stack_file.read_text()) or {}
    for name, service in (document.get("services") or {}).items():
        localise_service(service, images.get(name, str(service.get("image", ""))), scale)
        if isinstance(service.get("env_file"), str):
            service["env_file"] = _absolute(service["env_file"], base)
        elif isinstance(service.get("env_file"), list):
            service["env_file"] = [_absolute(item, base) if isinstance(item, str) else item
                                   for item in service["env_file"]]
    for section in ("secrets", "configs"):
        for item in (document.get(section) or {}).values():
            if isinstance(item, dict) and isinstance(item.get("file"), str):
                item["file"] = _absolute(item["file"], base)
    reference = document.get(CATALOGUE_KEY)
    if isinstance(reference, str) and (base / reference).is_file():
        catalogue = copy.deepcopy(yaml.safe_load((base / reference).read_text()) or {})
        localise_catalogue(catalogue, images, scale)
        local_catalogue = out / f"catalogue-{Path(reference).name}"
        local_catalogue.write_text(yaml.safe_dump(catalogue, sort_keys=False))
        document[CATALOGUE_KEY] = local_catalogue.name
    path = out / stack_file.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
