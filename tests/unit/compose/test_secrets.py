"""Top-level secrets and configs, and the ones a service uses."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compose.stackfiles import (
    load,
    problems,
)


def test_external_secrets_need_a_value_in_config(tmp_path: Path):
    text = "services:\n  db: {image: postgres:13, secrets: [db_password]}\nsecrets:\n  db_password: {external: true}\n"
    assert load(tmp_path, text).secrets["db_password"].content is None  # offline tools: no check
    assert load(tmp_path, text, external_secret_names={"db_password"}).secrets["db_password"].external
    found = problems(tmp_path, text, external_secret_names=set())
    assert "pulumi config set --secret --path 'swarm:secrets.db_password' VALUE" in found["secrets.db_password"]


def test_secret_files_are_read_relative_to_the_stack_file(tmp_path: Path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "token").write_bytes(b"s3cret\n")
    spec = load(tmp_path, "services:\n  a: {image: x, secrets: [token]}\nsecrets:\n  token: {file: files/token}\n")
    assert spec.secrets["token"].content == b"s3cret\n"
    assert spec.services["a"].secrets[0].target == "token"
