"""Did you mean ...?": the one helper every lookup by name uses (config keys, size slugs, roles,
Compose keys, secret/network/config names, label values in constraints)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], limit: int = 3, cutoff: float = 0.6) -> list[str]:
    """Known names that look like `word` (a typo), best first; matched case-insensitively."""
    choices = list(dict.fromkeys(str(choice) for choice in choices))
    folded = {choice.casefold(): choice for choice in choices}
    found = difflib.get_close_matches(str(word).casefold(), folded, n=limit, cutoff=cutoff)
    return [folded[match] for match in found]


def did_you_mean(word: str, choices: Iterable[str], limit: int = 3, cutoff: float = 0.6) -> str:
    """'; did you mean X?' (or 'X, Y?') when `word` looks like a known name, else ''."""
    matches = close_matches(word, choices, limit, cutoff)
    return f"; did you mean {', '.join(matches)}?" if matches else ""
