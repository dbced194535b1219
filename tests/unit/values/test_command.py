"""Command strings split as Docker splits them."""

from __future__ import annotations

import pytest

from swarm.compose import (
    split_command,
)


def test_commands_split_like_google_shlex():
    assert split_command("echo \"hello world\" 'x y'") == ["echo", "hello world", "x y"]
    assert split_command("sh -c 'echo $X'") == ["sh", "-c", "echo $X"]
    assert split_command(r'a "b\"c" d\ e') == ["a", 'b"c', "d e"]
    assert split_command(r'"a\b"') == ["ab"]  # any character may be escaped inside double quotes
    assert split_command("run # a comment") == ["run"]
    assert split_command("a#b ''") == ["a#b", ""]
    for bad in ("'open", '"open', "trailing\\"):
        with pytest.raises(ValueError):
            split_command(bad)
