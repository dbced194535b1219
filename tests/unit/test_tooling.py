"""What a newcomer runs first: every script answers --help at once and without side effects,
scripts/pulumi-local explains itself and writes no secret on a read-only command, and a missing
tool stops the unit suite with one message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pulumi_program import PROJECT_ROOT

SCRIPTS = sorted(path for path in (PROJECT_ROOT / "scripts").iterdir() if path.is_file())


def test_scripts_folder_has_the_benchmarks_and_the_wrapper():
    names = {path.name for path in SCRIPTS}
    assert {"bench_bootstrap.py", "bench_capacity.py", "bench_catalogue.py", "bench_compose.py", "bench_plan.py",
            "pulumi-local"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_answers_help_quickly_with_usage_and_starts_nothing(script, tmp_path):
    python = script.suffix == ".py" or "python" in script.read_text().split("\n", 1)[0]  # scripts/local-swarm
    command = [sys.executable, str(script)] if python else ["sh", str(script)]
    started = time.monotonic()
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.lower().startswith("usage:")
    assert elapsed < 10, f"{script.name} --help took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
    # A benchmark that ignored --help would still be running (bench_bootstrap takes minutes) or,
    # run as non-root, fail: the exit code, the time and the usage text catch both.


# ---- scripts/pulumi-local, with a stand-in `pulumi` ------------------------------------------------


def fake_project(tmp_path: Path, *, pulumi: bool = True) -> tuple[Path, Path]:
    """A copy of the wrapper in a project whose `pulumi` and venv python only log their calls."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "scripts" / "pulumi-local", root / "scripts" / "pulumi-local")
    (root / "Pulumi.prod.yaml").write_text("config: {}\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    python = root / ".venv" / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho \"python $*\" >>{log}\necho db_password\n")  # missing-secrets' answer
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if pulumi:
        (bin_dir / "pulumi").write_text(f"#!/bin/sh\ncat >/dev/null\necho \"pulumi $*\" >>{log}\n")
    for stub in [python, *bin_dir.iterdir()]:
        stub.chmod(0o755)
    return root, log


def run_wrapper(root: Path, tmp_path: Path, *args: str, passphrase: str | None = "pass") -> subprocess.CompletedProcess:
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
    return subprocess.run(["sh", str(root / "scripts" / "pulumi-local"), *args], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=30)


@pytest.mark.parametrize("command", [["preview"], ["stack", "output", "nodes"], ["refresh"]])
def test_read_only_commands_write_no_secret_into_the_stack_config(tmp_path, command):
    root, log = fake_project(tmp_path)
    result = run_wrapper(root, tmp_path, *command, "prod")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert not any(call.startswith("pulumi config set") for call in calls)
    assert calls[-1] == f"pulumi {' '.join(command)} --stack prod"
    assert "swarm:secrets.db_password has no value yet: `up` will generate one" in result.stderr


def test_up_generates_a_value_for_an_external_secret_without_one(tmp_path):
    root, log = fake_project(tmp_path)
    result = run_wrapper(root, tmp_path, "up", "prod")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert "pulumi config set --secret --path swarm:secrets.db_password --stack prod" in calls
    assert calls[-1] == "pulumi up --stack prod"


def test_without_a_passphrase_and_no_terminal_it_explains_what_to_set(tmp_path):
    root, log = fake_project(tmp_path)
    result = run_wrapper(root, tmp_path, "preview", "prod", passphrase=None)
    assert result.returncode == 2
    assert "encrypted with a passphrase" in result.stderr and "PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert not log.exists()  # nothing ran


def test_without_the_pulumi_cli_it_points_at_the_offline_plan(tmp_path):
    root, _ = fake_project(tmp_path, pulumi=False)
    result = run_wrapper(root, tmp_path, "preview", "prod")
    assert result.returncode == 1
    assert "The Pulumi CLI is not installed" in result.stderr
    assert "python -m swarm plan --stack prod" in result.stderr


# ---- the unit suite's own prerequisites -------------------------------------------------------------


def test_a_missing_tool_stops_the_suite_with_one_message_naming_the_prerequisites_script(tmp_path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/unit/compose/test_load.py::test_loader_rejects_what_docker_rejects"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env={**os.environ, "PATH": str(empty)}, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert output.count(".ci/sandbox-prereqs.sh") >= 1 and "docker (" in output
    assert "FileNotFoundError" not in output and "Traceback" not in output


@pytest.mark.tools("shellcheck")
def test_repository_shell_scripts_pass_shellcheck():
    for path in [PROJECT_ROOT / ".ci" / "run", PROJECT_ROOT / "scripts" / "pulumi-local"]:
        result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
