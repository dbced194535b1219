"""Volumes and mounts."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compose.stackfiles import (
    problems,
)


def test_relative_bind_mounts_are_refused(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: x, volumes: ['./data:/data', '~/x:/x']}\n")
    assert set(found) == {"services.a.volumes[0].source", "services.a.volumes[1].source"}
    assert "absolute path on the node" in found["services.a.volumes[0].source"]
