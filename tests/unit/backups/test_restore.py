"""`python -m swarm restore` reaches the manager as the operator's way in does: the stack's
outputs read from the backend `scripts/pulumi-local` uses, and the manager's host key checked
strictly against the stack's pinned keys (never StrictHostKeyChecking=no)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import yaml

from swarm.backups import restore
from tests.pulumi_program import PROJECT_ROOT

KNOWN_HOSTS = "203.0.113.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIManagerKey\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A checkout whose prod stack backs up its database."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "stacks", root / "stacks")
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root)
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["swarm:backups"] = {"bucket": "acme-prod-backups", "databases": ["database"]}
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump(document))
    return root


@pytest.fixture()
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`pulumi` answering the stack's outputs and `ssh` answering the manager's job, both logging
    their arguments, environment and the files they were given."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    outputs = {"managerAddress": "203.0.113.10", "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n",
               "knownHosts": KNOWN_HOSTS}
    (bin_dir / "pulumi").write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >{log}/pulumi.args
printf '%s\\n' "$PULUMI_BACKEND_URL" >{log}/pulumi.backend
pwd >{log}/pulumi.cwd
cat <<'END'
{json.dumps(outputs)}
END
""")
    (bin_dir / "ssh").write_text(f"""#!/bin/sh
printf '%s\\n' "$@" >>{log}/ssh.args
for argument; do
    case "$argument" in UserKnownHostsFile=*) cp "${{argument#UserKnownHostsFile=}}" {log}/known_hosts ;; esac
done
echo "would restore prod/postgres/database/2026-12-03T0300Z.dump.enc"
""")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return log


def arguments(**options: object) -> argparse.Namespace:
    defaults = {"stack": "prod", "database": "database", "at": None, "dry_run": True, "yes": False,
                "host": None, "identity": None, "known_hosts": None, "jobs_dir": "/var/lib/swarm-jobs"}
    return argparse.Namespace(**{**defaults, **options})


def ssh_options(log: Path) -> list[str]:
    lines = (log / "ssh.args").read_text().splitlines()
    return [lines[i + 1] for i, line in enumerate(lines) if line == "-o"]


def test_restore_reads_the_outputs_from_the_backend_scripts_pulumi_local_uses(project, stand_ins):
    assert restore.restore(arguments(), project, say=lambda _: None) == 0
    assert (stand_ins / "pulumi.backend").read_text().strip() == f"file://{project.resolve()}/.pulumi-state"
    assert Path((stand_ins / "pulumi.cwd").read_text().strip()) == project.resolve()
    assert (stand_ins / "pulumi.args").read_text().split() == ["stack", "output", "--stack", "prod", "--json", "--show-secrets"]


def test_a_backend_set_in_the_environment_is_kept_as_scripts_pulumi_local_keeps_it(project, stand_ins, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://acme-state?endpoint=fra1.digitaloceanspaces.com")
    restore.restore(arguments(), project, say=lambda _: None)
    assert (stand_ins / "pulumi.backend").read_text().strip() == "s3://acme-state?endpoint=fra1.digitaloceanspaces.com"


def test_the_manager_host_key_is_checked_strictly_against_the_stacks_pinned_keys(project, stand_ins):
    restore.restore(arguments(), project, say=lambda _: None)
    options = ssh_options(stand_ins)
    assert "StrictHostKeyChecking=yes" in options and "GlobalKnownHostsFile=/dev/null" in options
    assert not any(option.startswith("StrictHostKeyChecking=no") or option == "UserKnownHostsFile=/dev/null"
                   for option in options)
    assert (stand_ins / "known_hosts").read_text() == KNOWN_HOSTS  # the knownHosts output, as given to ssh
    assert "root@203.0.113.10" in (stand_ins / "ssh.args").read_text().splitlines()


def test_the_stacks_key_and_known_hosts_files_are_private_and_removed_afterwards(project, stand_ins):
    restore.restore(arguments(), project, say=lambda _: None)
    lines = (stand_ins / "ssh.args").read_text().splitlines()
    identity = Path(lines[lines.index("-i") + 1])
    assert identity.name == "id_swarm" and not identity.exists()
    assert not identity.parent.exists()


def test_with_host_and_identity_the_operators_own_known_hosts_are_used_still_strictly(project, stand_ins, tmp_path):
    restore.restore(arguments(host="198.51.100.7", identity=str(tmp_path / "id")), project, say=lambda _: None)
    assert not (stand_ins / "pulumi.args").exists()  # no Pulumi CLI needed
    options = ssh_options(stand_ins)
    assert "StrictHostKeyChecking=yes" in options
    assert not any(option.startswith("UserKnownHostsFile") for option in options)


def test_known_hosts_given_on_the_command_line_are_the_only_ones_trusted(project, stand_ins, tmp_path):
    pinned = tmp_path / "pinned"
    pinned.write_text(KNOWN_HOSTS)
    restore.restore(arguments(host="203.0.113.10", identity=str(tmp_path / "id"), known_hosts=str(pinned)),
                    project, say=lambda _: None)
    assert f"UserKnownHostsFile={pinned}" in ssh_options(stand_ins)


def test_outputs_that_cannot_be_read_name_the_backend_and_the_flags_to_use_instead(project, stand_ins):
    Path(shutil.which("pulumi")).write_text("#!/bin/sh\necho 'error: no stack named prod' >&2\nexit 255\n")
    with pytest.raises(restore.RestoreError) as raised:
        restore.restore(arguments(), project, say=lambda _: None)
    message = str(raised.value)
    assert "no stack named prod" in message and f"file://{project.resolve()}/.pulumi-state" in message
    assert "--host, --identity and --known-hosts" in message
