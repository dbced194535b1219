"""Model catalogues: one short entry per model instead of one Compose service written by hand.

A stack file names its catalogue with a top-level extension key, relative to the stack file:

    x-model-catalogue: models/prod.yaml

Compose ignores `x-` keys, so `docker stack config` and `docker stack deploy` still accept the
file (they just do not see the models). `load_stack` expands every model into a plain Compose
service entry, adds it to the document's `services:` and only then hands the document to
`parse_stack`: a generated service goes through exactly the loader, validation, translation and
capacity check a hand-written one does.

The catalogue:

    defaults:                     # any model field but `name`; a model's own value wins
      image_prefix: registry.example.com/models/
      networks: [main_network]
      constraints: [node.role == worker, node.labels.type == machine-learning]
    models:
      - name: spacy-en-sm         # the service: <stack>_spacy-en-sm
        image: spacy-server:3.7.5
        cpus: '0.25'
        memory: 512M
        environment: {SPACY_MODEL: en_core_web_sm}

Model fields (FIELDS below) and what each becomes in the service:
- `image`: used as is when it contains a `/`, else prefixed with `image_prefix`;
- `replicas` (default 1) -> deploy.replicas;
- `cpus`, `memory` (required) -> deploy.resources.reservations;
- `gpus` (default 0) -> a discrete `GPU` generic resource reservation, and `gpu_constraints`
  (default `node.labels.gpu == true`, the label every GPU pool's nodes carry) are added to
  `constraints` -> deploy.placement.constraints;
- `limits` -> deploy.resources.limits; a limit not given is `limit_ratio` (default 2) times the
  reservation, so no model can starve its neighbours;
- `environment`, `networks`, `secrets`, `restart_policy`, `update_config` -> the Compose keys;
- `overrides`: any Compose service keys, deep-merged last.
Merging, of a model over `defaults` and of `overrides` over the generated service, is one rule:
mappings (`environment`, `limits`, `overrides`, ...) merge key by key, anything else, lists
included, is replaced.

Problems are collected with the catalogue's file, path (`models[3].memory`), line and column,
and a problem the loader finds in a generated service is reported against the model that
generated it (at the model's line in the catalogue).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from swarm.compose.model import NAME
from swarm.compose.yamlfile import YamlDocument, display_path, read_stack_file
from swarm.diagnostics import (
    Collector,
    PathElement,
    Positions,
    Problem,
    ProblemPath,
    StackFileError,
    format_path,
)
from swarm.model import GPU_KIND, GPU_LABEL
from swarm.values import parse_constraint, parse_cpus, parse_memory

CATALOGUE_KEY = "x-model-catalogue"
DEFAULT_LIMIT_RATIO = 2
DEFAULT_GPU_CONSTRAINTS = (f"node.labels.{GPU_LABEL[0]} == {GPU_LABEL[1]}",)
_MEMORY_UNITS = (("G", 1024**3), ("M", 1024**2), ("K", 1024))


# ---- field values, each checked and normalised (or a problem added) ------------------------------


# Problems are collected with their path in the catalogue, ("models", 3, "memory"), printed
# "models[3].memory"; a key as the file spells it is one element.


def _text(value: Any, path: ProblemPath, problems: Collector) -> str | None:
    if isinstance(value, str) and value:
        return value
    problems.problem(path, f"must be a non-empty string, not {value!r}")
    return None


def _count(value: Any, path: ProblemPath, problems: Collector) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.problem(path, f"must be a whole number >= 0, not {value!r}")
    return None


def _cpus(value: Any, path: ProblemPath, problems: Collector) -> int | None:
    """NanoCPUs; a number is accepted as well as Compose's string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    try:
        nano = parse_cpus(value) if isinstance(value, str) else None
    except ValueError as error:
        problems.problem(path, str(error))
        return None
    if not nano:
        problems.problem(path, f"must be a CPU count above 0 like '0.5', not {value!r}")
        return None
    return nano


def _memory(value: Any, path: ProblemPath, problems: Collector) -> int | None:
    try:
        size = parse_memory(value) if isinstance(value, str) else None
    except ValueError as error:
        problems.problem(path, str(error))
        return None
    if not size:
        problems.problem(path, f"must be a size above 0 like 512M or 2G, not {value!r}")
        return None
    return size


def _ratio(value: Any, path: ProblemPath, problems: Collector) -> Fraction | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
        return Fraction(value)
    problems.problem(path, f"must be a number >= 1 (limit = ratio x reservation), not {value!r}")
    return None


def _prefix(value: Any, path: ProblemPath, problems: Collector) -> str | None:
    if isinstance(value, str):  # may be empty: no prefix
        return value
    problems.problem(path, f"must be a string like registry.example.com/models/, not {value!r}")
    return None


def _mapping(value: Any, path: ProblemPath, problems: Collector) -> dict | None:
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return value
    problems.problem(path, f"must be a mapping with string keys, not {value!r}")
    return None


def _names(value: Any, path: ProblemPath, problems: Collector) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return value
    problems.problem(path, f"must be a list of names, not {value!r}")
    return None


def _constraints(value: Any, path: ProblemPath, problems: Collector) -> list[str] | None:
    texts = _names(value, path, problems)
    if texts is None:
        return None
    valid = True
    for index, text in enumerate(texts):
        try:
            parse_constraint(text)
        except ValueError as error:
            problems.problem((*path, index), str(error))
            valid = False
    return texts if valid else None


def _limits(value: Any, path: ProblemPath, problems: Collector) -> dict[str, int] | None:
    raw = _mapping(value, path, problems)
    if raw is None:
        return None
    limits = {}
    for key, item in raw.items():
        read = {"cpus": _cpus, "memory": _memory}.get(key)
        if read is None:
            problems.problem((*path, str(key)), "unknown key; expected cpus or memory", key=True)
        else:
            limits[key] = read(item, (*path, key), problems)
    return limits if len(limits) == len(raw) and None not in limits.values() else None


FIELDS: dict[str, Callable[[Any, ProblemPath, Collector], Any]] = {
    "name": _text,
    "image": _text,
    "image_prefix": _prefix,
    "replicas": _count,
    "cpus": _cpus,
    "memory": _memory,
    "gpus": _count,
    "limits": _limits,
    "limit_ratio": _ratio,
    "environment": _mapping,
    "networks": _names,
    "secrets": _names,
    "constraints": _constraints,
    "gpu_constraints": _constraints,
    "restart_policy": _mapping,
    "update_config": _mapping,
    "overrides": _mapping,
}
REQUIRED = ("name", "image", "cpus", "memory")
# What a missing required field looks like, for the message that asks for it.
_EXAMPLES = {"name": ", e.g. `name: spacy-en-sm`", "image": ", e.g. `image: spacy-server:3.7.5`",
             "cpus": ", e.g. `cpus: '0.25'` (reserved vCPUs)", "memory": ", e.g. `memory: 512M` (reserved memory)"}


def _fields(value: Any, path: ProblemPath, problems: Collector, *, allowed: Collection[str]) -> dict[str, Any] | None:
    """The normalised fields of one entry (a model, or `defaults`); None when any is invalid."""
    raw = _mapping(value, path, problems)
    if raw is None:
        return None
    fields = {}
    for key, item in raw.items():
        if key not in allowed:
            problems.problem((*path, key), f"unknown key; expected one of: {', '.join(sorted(allowed))}", key=True)
        else:
            fields[key] = FIELDS[key](item, (*path, key), problems)
    return fields if len(fields) == len(raw) and None not in fields.values() else None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---- a model, as a Compose service entry ---------------------------------------------------------


def compose_cpus(nano_cpus: int) -> str:
    """NanoCPUs as the exact decimal string Compose reads back ("0.25")."""
    whole, fraction = divmod(nano_cpus, 1_000_000_000)
    return f"{whole}.{fraction:09d}".rstrip("0").rstrip(".")


def compose_memory(size: int) -> str:
    """Bytes in the largest unit that keeps the size exact ("512M", "3G")."""
    for unit, multiple in _MEMORY_UNITS:
        if size % multiple == 0:
            return f"{size // multiple}{unit}"
    return str(size)


def model_service(model: Mapping[str, Any]) -> dict[str, Any]:
    """The Compose service entry of a model whose fields are normalised and merged with the
    defaults (FIELDS, REQUIRED)."""
    image = model["image"] if "/" in model["image"] else model.get("image_prefix", "") + model["image"]
    gpus = model.get("gpus", 0)
    constraints = list(model.get("constraints", []))
    if gpus:
        constraints += [c for c in model.get("gpu_constraints", DEFAULT_GPU_CONSTRAINTS) if c not in constraints]
    ratio = model.get("limit_ratio", DEFAULT_LIMIT_RATIO)
    limits = model.get("limits", {})
    reservations: dict[str, Any] = {"cpus": compose_cpus(model["cpus"]), "memory": compose_memory(model["memory"])}
    if gpus:
        reservations["generic_resources"] = [{"discrete_resource_spec": {"kind": GPU_KIND, "value": gpus}}]
    deploy: dict[str, Any] = {"replicas": model.get("replicas", 1)}
    if constraints:
        deploy["placement"] = {"constraints": constraints}
    deploy["resources"] = {
        "reservations": reservations,
        "limits": {
            "cpus": compose_cpus(limits.get("cpus", round(model["cpus"] * ratio))),
            "memory": compose_memory(limits.get("memory", round(model["memory"] * ratio))),
        },
    }
    for key in ("restart_policy", "update_config"):
        if key in model:
            deploy[key] = model[key]
    service: dict[str, Any] = {"image": image}
    for key in ("environment", "networks", "secrets"):
        if model.get(key):
            service[key] = model[key]
    service["deploy"] = deploy
    return deep_merge(service, model.get("overrides", {}))


def _below_reservation(model: Mapping[str, Any]) -> str | None:
    limits = model.get("limits", {})
    if limits.get("cpus", model["cpus"]) < model["cpus"]:
        return f"limits.cpus {compose_cpus(limits['cpus'])} is below the reserved cpus {compose_cpus(model['cpus'])}"
    if limits.get("memory", model["memory"]) < model["memory"]:
        return (
            f"limits.memory {compose_memory(limits['memory'])} is below the reserved memory "
            f"{compose_memory(model['memory'])}"
        )
    return None


@dataclass(frozen=True)
class Expansion:
    source: str  # the catalogue file
    services: dict[str, dict[str, Any]]  # model name -> Compose service entry, in catalogue order
    index: dict[str, int]  # model name -> its position under `models`, for error paths
    problems: list[Problem]
    positions: Positions | None = None  # the catalogue's, for problems pointed at a model


def expand_catalogue(
    catalogue: Any, *, source: str, taken: Mapping[str, str] | None = None, positions: Positions | None = None
) -> Expansion:
    """The services of a parsed catalogue document. `taken` maps the names of hand-written
    services to the file declaring them: a model may not reuse one. A model with a problem
    generates no service (its problems are enough; the loader would only repeat them).
    `positions` (the document's, from read_stack_file) place each problem at its line."""
    taken = taken or {}
    problems = Collector(source, positions=positions)
    document = _mapping(catalogue, (), problems) or {}
    for key in document.keys() - {"defaults", "models"}:
        if not key.startswith("x-"):  # x- keys hold YAML anchors shared by models
            problems.problem(
                (key,), "unknown key; expected defaults, models or x-<anything> (for YAML anchors)", key=True
            )
    defaults = _fields(document.get("defaults", {}), ("defaults",), problems, allowed=FIELDS.keys() - {"name"})
    models = document.get("models")
    if not isinstance(models, list):
        problems.problem(("models",), f"must be a list of models (name, image, cpus, memory, ...), not {models!r}")
        models = []

    services: dict[str, dict[str, Any]] = {}
    index: dict[str, int] = {}
    seen: dict[str, int] = {}  # every model's name, also of models with other problems
    for position, entry in enumerate(models):
        path = ("models", position)
        fields = _fields(entry, path, problems, allowed=FIELDS.keys())
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            if not NAME.match(name):
                clash = "names are letters, digits, '.', '_' and '-' only"
            elif name in seen:
                clash = f"{name!r} is already the name of models[{seen[name]}]: names must be unique"
            elif name in taken:
                clash = f"{name!r} is already a service in {taken[name]}: rename the model or the service"
            else:
                clash = None
            if clash:
                problems.problem((*path, "name"), clash)
                fields = None
            seen.setdefault(name, position)
        if fields is None or defaults is None:
            continue
        model = deep_merge(defaults, fields)
        if missing := [key for key in REQUIRED if key not in model]:
            # One problem per key, at the key's own path (models[0].memory), at the model's line.
            label = f"model {name}" if isinstance(name, str) and name else "this model"
            for key in missing:
                where = "here" if key == "name" else "here or under `defaults:` for every model"
                problems.problem((*path, key), f"{label} has no `{key}`: set it {where}{_EXAMPLES.get(key, '')}")
        elif reason := _below_reservation(model):
            problems.problem(path, f"{reason}: a limit must be at least the reservation")
        else:
            services[name] = model_service(model)
            index[name] = position
    return Expansion(source, services, index, problems.problems, positions)


# ---- problems in generated services, pointed at their models -----------------------------------------------------------


def read_catalogue(
    stack: YamlDocument, stack_file: Path, hand_written: Collection[Any]
) -> tuple[Expansion | None, list[Problem]]:
    """The expansion of the catalogue the stack file (`stack`, read from `stack_file`) names."""
    reference = stack.value[CATALOGUE_KEY]

    def problem(message: str) -> tuple[None, list[Problem]]:
        return None, [stack.positions.place(Problem(display_path(stack_file), (CATALOGUE_KEY,), message))]

    if not isinstance(reference, str) or not reference:
        return problem(f"must be the path of a model catalogue relative to this file, not {reference!r}")
    path = stack_file.parent / reference
    if not path.is_file():
        return problem(f"no model catalogue at {display_path(path)}: create it or fix the path (relative to this file)")
    try:
        catalogue = read_stack_file(path)
    except StackFileError as error:
        return None, error.problems
    expansion = expand_catalogue(
        catalogue.value,
        source=display_path(path),
        taken=dict.fromkeys(hand_written, display_path(stack_file)),
        positions=catalogue.positions,
    )
    return expansion, expansion.problems


def _locate(problem: Problem, expansion: Expansion) -> tuple[int, tuple[PathElement, ...]] | None:
    """(model position, path inside its service) for a loader problem inside a generated service."""
    if problem.service not in expansion.index or problem.path[:2] != ("services", problem.service):
        return None
    return expansion.index[problem.service], problem.path[2:]


def _grouped(found: list[tuple[Problem, int, tuple[PathElement, ...]]]) -> list[Problem]:
    """One problem per distinct loader problem, at the first model it occurs in, naming the
    others: a bad default is reported once, not once per model."""
    models: dict[tuple, list[int]] = defaultdict(list)
    for problem, position, inner in found:
        models[(inner, problem.message, problem.severity)].append(position)
    grouped = []
    for (inner, message, severity), positions in models.items():
        where = f"in the generated service, {format_path(inner)}: " if inner else "in the generated service: "
        also = positions[1:]
        suffix = ""
        if also:
            listed = ", ".join(f"models[{p}]" for p in also[:3])
            suffix = f" (also {listed}{f' and {len(also) - 3} more' if len(also) > 3 else ''})"
        grouped.append((("models", positions[0]), where + message + suffix, severity))
    return grouped


def attribute(problems: list[Problem], expansion: Expansion | None) -> list[Problem]:
    """The loader's problems (or warnings), those inside generated services pointed at their models."""
    if expansion is None:
        return problems
    kept, found = [], []
    for problem in problems:
        located = _locate(problem, expansion)
        if located is None:
            kept.append(problem)
        else:
            found.append((problem, *located))
    pointed = [Problem(expansion.source, path, message, severity) for path, message, severity in _grouped(found)]
    return kept + [expansion.positions.place(p) if expansion.positions else p for p in pointed]
