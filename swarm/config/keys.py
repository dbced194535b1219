"""The table of known `swarm:*` keys: each key's type, default and doc, declared next to the
function that validates it (`@known_key(...)` on that function, in swarm/config/cluster.py,
swarm/config/pools.py or swarm/config/workloads.py), Kamal-style.

Also home of what the validators share: `check_subkeys` (a mapping's unknown keys, with a did-you-mean);
`Problem`, `ConfigError` and the `Collector` come from swarm/diagnostics.py.

The table is the single source for three things: which top-level keys exist (anything else is
refused, with a did-you-mean), the configuration reference in docs/configuration.md (a test
checks it against `reference_table()`), and the program's reading of its config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from swarm.diagnostics import Collector, ConfigError, Problem, config_problem
from swarm.suggest import close_matches, did_you_mean

__all__ = ["Collector", "ConfigError", "Problem", "config_problem", "check_subkeys", "known_key", "unknown_keys"]

NAMESPACE = "swarm"
F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class KnownKey:
    name: str  # without the namespace: "nodePools"
    type: str  # as the reference shows it: "string", "list of CIDR", ...
    default: str  # "required", a value, or what happens when it is absent
    doc: str  # one line of Markdown: what it means, how to set it
    validator: str  # module.function that validates it (for readers, and checked by a test)


KNOWN_KEYS: dict[str, KnownKey] = {}


def known_key(name: str, *, type: str, default: str, doc: str) -> Callable[[F], F]:
    """Register `swarm:<name>` as a known key, validated by the decorated function. Several
    keys may share one validator (a key pair, a registry and its password); stacked decorators
    register bottom-up, so list the first key lowest."""

    def register(function: F) -> F:
        if name in KNOWN_KEYS:
            raise ValueError(f"swarm:{name} is declared twice")
        KNOWN_KEYS[name] = KnownKey(name, type, default, doc, f"{function.__module__}.{function.__name__}")
        return function

    return register


def unknown_keys(names: Iterable[str]) -> list[tuple[str, str]]:
    """(key, message) for every name (without the namespace) that is not a known key."""
    found = []
    for name in names:
        if name in KNOWN_KEYS:
            continue
        matches = close_matches(name, KNOWN_KEYS)
        if matches:
            hint = "did you mean " + ", ".join(f"{NAMESPACE}:{match}" for match in matches) + "?"
        else:
            hint = "the known keys are listed in docs/configuration.md"
        found.append((name, f"unknown key (a typo is otherwise ignored silently); {hint}"))
    return found


def reference_table() -> str:
    """The Markdown table of every known key, as docs/configuration.md carries it. Complete
    whenever this module is: importing it runs swarm/config/__init__.py, which imports every
    reader (and so registers every key) first."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    # Required keys first, then the others alphabetically (registration order follows imports).
    ordered = sorted(KNOWN_KEYS.values(), key=lambda key: (key.default != "required", key.name.lower()))
    rows += [f"| `{NAMESPACE}:{key.name}` | {key.type} | {key.default} | {key.doc} |" for key in ordered]
    return "\n".join(rows)


def check_subkeys(value: object, key: str, known: Sequence[str], found: Collector, *, not_mapping: str) -> bool:
    """`swarm:<key>` must be a mapping (else the problem `not_mapping`); each unknown key in it
    is a problem with a did-you-mean, or else the keys it takes (in `known`'s order). False when
    `value` is not a mapping."""
    if not isinstance(value, dict):
        found.problem(key, not_mapping)
        return False
    for unknown in sorted(set(value) - set(known), key=str):
        hint = did_you_mean(str(unknown), known) or f"; {NAMESPACE}:{key} takes {', '.join(known)}"
        found.problem((key, str(unknown)), f"unknown key{hint}")
    return True
