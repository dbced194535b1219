"""The node scripts: every one passes shellcheck and keeps secrets off its command line."""

from __future__ import annotations

import subprocess

import pytest

from swarm import scripts

ALL_SCRIPTS = {
    "wait_ready": scripts.wait_ready_script(),
    "init": scripts.init_script("10.110.0.2"),
    "join_tokens": scripts.join_tokens_script(),
    "join": scripts.join_script("10.110.0.5", "10.110.0.2"),
    "settings_labels": scripts.node_settings_script("n0d3", "worker", {"type": "machine-learning", "zone.a": "x:1"}),
    "settings_no_labels": scripts.node_settings_script("n0d3", "manager", {}),
    "retire": scripts.retire_script("n0d3"),
    "leave": scripts.leave_script(),
}


def shellcheck(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["shellcheck", "--shell=sh", "--severity=style", "-"], input=script, text=True, capture_output=True)


@pytest.mark.parametrize("name", sorted(ALL_SCRIPTS))
def test_script_passes_shellcheck(name):
    result = shellcheck(ALL_SCRIPTS[name])
    assert result.returncode == 0, result.stdout


def test_shellcheck_is_really_checking():
    assert shellcheck("#!/bin/sh\necho $1\n").returncode != 0


@pytest.mark.parametrize("name", sorted(ALL_SCRIPTS))
def test_scripts_fail_fast(name):
    assert ALL_SCRIPTS[name].startswith("#!/bin/sh\nset -eu\n")


def test_join_reads_the_token_from_stdin():
    script = scripts.join_script("10.110.0.5", "10.110.0.2")
    assert "IFS= read -r token" in script
    assert '--token "$token"' in script
    assert "--advertise-addr 10.110.0.5 --listen-addr 10.110.0.5:2377" in script
    assert "manager=10.110.0.2:2377" in script


def test_init_uses_an_address_pool_clear_of_the_vpc():
    script = scripts.init_script("10.110.0.2")
    assert "--advertise-addr 10.110.0.2" in script
    assert f"--default-addr-pool {scripts.SWARM_ADDRESS_POOL}" in script


def test_values_are_shell_quoted():
    script = scripts.node_settings_script("id; rm -rf /", "worker", {"type": "a b"})
    assert "node='id; rm -rf /'" in script
    assert "--label-add 'type=a b'" in script


def test_settings_keep_exactly_the_declared_labels():
    script = scripts.node_settings_script("n0d3", "worker", {"type": "cheap", "disk": "ssd"})
    assert "wanted=' disk type '" in script
    assert "--label-add disk=ssd --label-add type=cheap" in script
    assert "--label-rm" in script  # undeclared labels are removed
    assert "docker node demote" in script


def test_retire_drains_then_removes():
    script = scripts.retire_script("n0d3")
    drain = script.index("--availability drain")
    remove = script.index("docker node rm --force")
    assert drain < remove


def test_repository_shell_scripts_pass_shellcheck():
    from tests.pulumi_program import PROJECT_ROOT

    for path in [PROJECT_ROOT / ".ci" / "run", PROJECT_ROOT / "scripts" / "pulumi-local"]:
        result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
