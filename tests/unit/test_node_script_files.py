"""swarm/node_scripts: the shell files themselves pass shellcheck, and rendering assigns exactly
their declared inputs, quoted."""

from __future__ import annotations

import re
import subprocess

import pytest

from swarm import node_scripts


def test_there_are_node_script_files_to_check():
    assert "retire" in node_scripts.names()


@pytest.mark.tools("shellcheck")
@pytest.mark.parametrize("name", node_scripts.names())
def test_each_script_file_passes_shellcheck_as_it_is(name):
    result = subprocess.run(["shellcheck", "--shell=sh", str(node_scripts.path(name))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", node_scripts.names())
def test_each_script_file_declares_its_inputs(name):
    text, inputs = node_scripts.source(name)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("# inputs:"))
    for variable in inputs:  # "$NAME", "${NAME…}" or, in arithmetic, the bare NAME
        assert re.search(rf"\b{variable}\b", body), f"{name}.sh declares {variable} but never uses it"


def test_rendering_quotes_values_and_puts_strict_mode_first():
    text = node_scripts.render("authorized-keys", NODE="n'1; rm -rf /", KEYS="ssh-ed25519 AAAA with space", DIR="/r")
    assert text.startswith("#!/bin/sh\nset -eu\nNODE='n'\"'\"'1; rm -rf /'\n")
    assert "KEYS='ssh-ed25519 AAAA with space'\n" in text
    assert text.count("set -eu") == 1


def test_rendering_refuses_a_missing_or_unknown_input():
    with pytest.raises(TypeError, match=r"missing \['KEYS'\], unknown \['KEY'\]"):
        node_scripts.render("authorized-keys", NODE="n", KEY="ssh-ed25519 AAAA", DIR="/r")
