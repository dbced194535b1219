"""Earlier names of pools and of the stack (`previousNames`, `swarm:previousStackNames`),
validated for swarm.config. The program aliases its components to them, so that a rename updates
or replaces resources in place (volumes and their data kept) instead of creating new ones beside
the old. Problems are reported through the config's collector: the key's path, and the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from swarm.diagnostics import ProblemPath

Problem = Callable[[ProblemPath, str], None]  # (path, its first element without the swarm: prefix; message)


def parse_previous_names(
    value: Any, key: ProblemPath, current: str, what: str, pattern: re.Pattern[str], problem: Problem
) -> tuple[str, ...]:
    """Earlier names of a pool or of the stack, newest first: resources are aliased to them."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        problem(key, f"must be a non-empty list of the {what}'s earlier names, e.g. [old-name]")
        return ()
    names = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not pattern.match(name):
            problem((*key, index), f"{name!r} is not a {what} name: lowercase letters, digits and '-'")
        elif name == current:
            problem((*key, index), f"{name!r} is the {what}'s current name; list only the names it had before")
        elif name in names:
            problem((*key, index), f"{name!r} is listed twice")
        else:
            names.append(name)
    return tuple(names)


def check_previous_pool_names(raw_pools: Any, problem: Problem) -> None:
    """An earlier name belongs to one pool only, and to no pool of today: two resources cannot
    both take over the same old one. Checked on the raw pools, so that a pool with another
    problem is checked too."""
    if not isinstance(raw_pools, dict):
        return
    current = {str(name) for name in raw_pools}
    claimed: dict[str, str] = {}
    for pool, spec in raw_pools.items():
        names = spec.get("previousNames") if isinstance(spec, dict) else None
        for index, name in enumerate(names if isinstance(names, list) else []):
            key = ("nodePools", str(pool), "previousNames", index)
            if not isinstance(name, str) or name == pool:
                continue  # reported with the pool
            if name in current:
                problem(key, f"{name!r} is the name of a pool of this stack; an earlier name must be free")
            elif claimed.get(name, pool) != pool:
                problem(key, f"{name!r} is also an earlier name of pool {claimed[name]!r}; only one pool can take it over")
            else:
                claimed[name] = pool
