"""Running a node script against a stand-in `docker` (fake_node_docker.py, fake_swarm_docker.py):
node_scripts/test_swarm_cluster.py and node_scripts/test_day2.py share it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def install_fake(tmp_path: Path, fake: str, state_file: str, state: dict) -> dict:
    """A PATH whose `docker` is `fake`, with `state` in $FAKE/state_file; returns the env."""
    directory = tmp_path / "fake"
    directory.mkdir(exist_ok=True)
    (directory / state_file).write_text(json.dumps(state))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(HERE / fake, bin_dir / "docker")
    (bin_dir / "docker").chmod(0o755)
    return {**os.environ, "FAKE": str(directory), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(script: str, env: dict, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
