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


RETIRE_MODE = {"MODE": "retire", "LABEL_KEY": "", "LABEL": ""}


def test_rendering_refuses_a_missing_or_unknown_input():
    with pytest.raises(TypeError, match=r"missing \['LOCK_DIR'\], unknown \['LOCKDIR'\]"):
        node_scripts.render("retire", NODE="n", POOL="ml", MAX_UNAVAILABLE=1, TIMEOUT=5, UNPLACEABLE=1, LOCK_WAIT=2, LOCKDIR="/x",
                            **RETIRE_MODE)


def fragment_functions() -> dict[str, str]:
    """Each function a fragment defines -> the fragment."""
    return {match[1]: name for name in node_scripts.names() if name.startswith("_")
            for match in re.finditer(r"^([a-z_]+)\(\) \{", node_scripts.source(name)[0], re.MULTILINE)}


def test_a_script_that_calls_a_fragments_function_names_the_fragment_and_gets_it_once():
    functions = fragment_functions()
    assert "task_errors" in functions
    for name in (n for n in node_scripts.names() if not n.startswith("_")):
        text, _ = node_scripts.source(name)
        for function, fragment in functions.items():
            called = re.search(rf"^\s*[^#\n]*\b{function}\b", text.split("\nset -eu\n", 1)[1], re.MULTILINE)
            assert bool(called) == (fragment in node_scripts.uses(name)), f"{name}.sh and {fragment}.sh"


def test_rendering_puts_the_fragments_functions_before_the_scripts_first_command():
    text = node_scripts.render("retire", NODE="n", POOL="ml", MAX_UNAVAILABLE=1, TIMEOUT=5, UNPLACEABLE=1, LOCK_WAIT=2,
                               LOCK_DIR="/x", **RETIRE_MODE)
    assert text.count("task_errors() {") == 1
    assert text.index("task_errors() {") < text.index('if ! docker node inspect "$NODE"') < text.index('task_errors --filter')
    assert text.count("#!/bin/sh") == 1 and text.count("set -eu") == 1
    with pytest.raises(ValueError, match="is a fragment"):
        node_scripts.render("_task_errors")


def test_a_script_without_inputs_renders_as_its_file_reads():
    text, inputs = node_scripts.source("gpu_setup")
    assert inputs == () and text.startswith("#!/bin/sh\nset -eu\n")
    assert node_scripts.render("gpu_setup") == text


@pytest.mark.tools("shellcheck")
def test_a_value_with_dollars_or_backquotes_stays_literal_and_passes_shellcheck(tmp_path):
    value = "price: $5 `date` $(touch pwned)\n"
    text = node_scripts.render("keep_swarm_state", STATE_DIR=value, MOUNT_PATH="/x")
    assert "# shellcheck disable=SC2016" in text.split("STATE_DIR=")[0]
    result = subprocess.run(["shellcheck", "--shell=sh", "-"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assignments = text[: text.index("# The create")]  # the file's first comment follows them
    shown = subprocess.run(["sh", "-c", assignments + 'printf %s "$STATE_DIR"'], capture_output=True, text=True, cwd=tmp_path)
    assert shown.stdout == value and not (tmp_path / "pwned").exists()


def test_the_inputs_a_rendered_script_was_given_read_back_as_given():
    values = {"NODE": "n'1; rm -rf /", "POOL": "ml", "MAX_UNAVAILABLE": "1", "TIMEOUT": "5", "UNPLACEABLE": "1", "LOCK_WAIT": "",
              "LOCK_DIR": "/run/$x `y`\nz", **RETIRE_MODE}
    assert node_scripts.inputs_of(node_scripts.render("retire", **values)) == values


def test_rendering_refuses_a_misnamed_input_of_the_authorized_keys_script():
    with pytest.raises(TypeError, match=r"missing \['KEYS'\], unknown \['KEY'\]"):
        node_scripts.render("authorized-keys", NODE="n", KEY="ssh-ed25519 AAAA", DIR="/r")
