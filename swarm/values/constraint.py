"""Placement constraints, checked as swarm checks them."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from swarm.suggest import did_you_mean


class Constraint(NamedTuple):
    field: str  # node.role, node.hostname, node.id, node.platform.os/arch, node.labels.K, engine.labels.K
    operator: str  # == or !=
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{self.value}"


# Swarmkit's own pattern for a constraint's value.
_CONSTRAINT_VALUE = re.compile(r"^[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+$", re.IGNORECASE)


_CONSTRAINT_FIELDS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")


_LABEL_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


# A stack repeats a few values in every service (a catalogue in a thousand): each is read once.
@functools.lru_cache(maxsize=4096, typed=True)
def parse_constraint(text: str) -> Constraint:
    """A placement constraint, checked as swarm checks it, plus what swarm only finds out by
    never scheduling the task: an unknown field or role, or an unusable label key."""
    for operator in ("==", "!="):  # swarm tries == first: "a!=b==c" has the key "a!=b"
        if operator in text:
            key, value = (part.strip() for part in text.split(operator, 1))
            break
    else:
        raise ValueError(
            f"invalid constraint {text!r}: expected FIELD==VALUE or FIELD!=VALUE, like node.labels.type==cheap"
        )
    field = key.lower()
    for prefix in ("node.labels.", "engine.labels."):
        if field.startswith(prefix):
            label = key[len(prefix) :]
            if not _LABEL_KEY.match(label):
                raise ValueError(
                    f"invalid constraint {text!r}: label key {label!r} must be letters, digits, '-', '_' or '.'"
                )
            field = prefix + label
            break
    else:
        if field not in _CONSTRAINT_FIELDS:
            hint = did_you_mean(field, [*_CONSTRAINT_FIELDS, "node.labels.", "engine.labels."], limit=1)
            raise ValueError(
                f"invalid constraint {text!r}: unknown field {key!r}{hint or '; expected one of '}"
                f"{'' if hint else ', '.join(_CONSTRAINT_FIELDS) + ', node.labels.<key> or engine.labels.<key>'}"
            )
    if not _CONSTRAINT_VALUE.match(value):
        raise ValueError(f"invalid constraint {text!r}: value {value!r} is empty or has characters swarm refuses")
    if field == "node.role" and value.lower() not in ("manager", "worker"):
        hint = did_you_mean(value, ("manager", "worker"))
        raise ValueError(f"invalid constraint {text!r}: node.role is manager or worker{hint}")
    return Constraint(field, operator, value)
