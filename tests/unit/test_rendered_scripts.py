"""What the program sends to the nodes keeps its exact text across refactors: every remote
command's scripts and every droplet's user data, hashed, for stacks that between them use every
node script (prod with backups, GPU workers and operators' keys; staging; an ingress pool).

A changed text is a change to production: on the next `up` of an existing cluster it re-runs
that command on every node (user data: it replaces the droplet). When a change is meant, say so
in the upgrade notes (CHANGELOG.md, "Upgrade notes") and rewrite the fixture:

    python -m tests.unit.test_rendered_scripts --write
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from tests.pulumi_program import run_program, stack_config
from tests.unit import ingress_values

FIXTURE = Path(__file__).parent / "fixtures" / "rendered_scripts.json"
OPERATOR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden0perat0rKeyF0rTheRenderedScriptsTest alice@example.com"
# The text a node receives: a remote command's scripts, a droplet's first-boot user data.
# The mocks' host keys: OpenSSH's private key format carries random check bytes, so the same key
# serialises differently in every run. The key is the mocks' output, not the program's text.
PRIVATE_KEY = re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----.*?-----END OPENSSH PRIVATE KEY-----", re.DOTALL)
# The scheduler's status command carries the time of the `up`, so it runs on every `up` by design.
RUN_AT = re.compile(r"^RUN_AT=\S+$", re.MULTILINE)
FIELDS = {"command:remote:Command": ("create", "update", "delete"), "digitalocean:index/droplet:Droplet": ("userData",)}


def _cases() -> dict[str, tuple[str, dict]]:
    prod, staging, edge = stack_config("prod"), stack_config("staging"), ingress_values.config_values()
    del edge["nodePools"]["manager"]
    pools = {**prod["nodePools"], "gpu": {"role": "worker", "count": 1, "size": "gpu-l40sx1-48gb", "gpu": True,
                                          "labels": {"type": "gpu"}}}
    return {
        # A GPU pool needs a region that sells GPUs; the bucket stays in prod's region.
        "prod": ("prod", {**prod, "region": "tor1", "nodePools": pools,
                          "backups": {"bucket": "acme-prod-backups", "region": "fra1"},
                          "sshAuthorizedKeys": [OPERATOR_KEY]}),
        "staging": ("staging", staging),
        "ingress": ("staging", {**staging, "nodePools": {**staging["nodePools"], **edge["nodePools"]},
                                "ingress": edge["ingress"]}),
    }


def rendered(case: str) -> dict[str, dict[str, str]]:
    """Resource name -> field -> sha256 of the text the node receives."""
    stack, config = _cases()[case]
    run = run_program(stack, config)
    assert run.error is None, run.error
    texts: dict[str, dict[str, str]] = {}
    for registration in run.registrations:
        for field in FIELDS.get(registration.type, ()):
            value = registration.plain(field)
            if isinstance(value, str):
                texts.setdefault(registration.name, {})[field] = _digest(value)
    return texts


def _digest(text: str) -> str:
    text = RUN_AT.sub("RUN_AT=<time of the up>", PRIVATE_KEY.sub("<private key>", text))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("case", sorted(_cases()))
def test_every_script_and_user_data_sent_to_the_nodes_keeps_its_exact_text(case):
    expected = json.loads(FIXTURE.read_text())[case]
    actual = rendered(case)
    assert sorted(actual) == sorted(expected), "the set of node commands and droplets changed"
    changed = sorted(f"{name}.{field}" for name, fields in expected.items() for field, digest in fields.items()
                     if actual[name].get(field) != digest)
    assert not changed, f"these texts changed (each re-runs on every existing node): {changed}"


def test_the_cases_cover_the_scheduler_gpu_and_ingress_nodes_a_volume_and_every_node_command():
    names = {name for case in json.loads(FIXTURE.read_text()).values() for name in case}
    assert {"prod-scheduler-manager-1-install", "prod-scheduler-status", "prod-gpu-1-join", "staging-edge-1-join",
            "prod-manager-1-volume", "prod-manager-1-swarm-state", "prod-converge"} <= names
    for suffix in ("access", "daemon", "daemon-drain", "daemon-return", "ready", "settings", "folders"):
        assert f"prod-manager-1-{suffix}" in names


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"rewrite {FIXTURE.name} from the current code")
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return 0
    FIXTURE.write_text(json.dumps({case: rendered(case) for case in sorted(_cases())}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
