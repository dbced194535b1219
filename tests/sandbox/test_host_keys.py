"""Pinned SSH host keys on real sshd (issue 12): the program's key is what each node presents, every
connection of the program is checked against it, and a host presenting another key at a node's
address is refused before anything is sent, the join token included. The node's sshd settings,
as the user data writes them, refuse passwords.

Two sandbox hosts of their own (prefix hkey): a manager and a worker. The sandbox cloud installs
each droplet's host key from its user data (`ssh_keys`) and runs every command with a strict
known_hosts check of `connection.hostKey` (see executing_cloud.py).
"""

from __future__ import annotations

import re
import time

import pytest
import yaml

from swarm.node_scripts.cloudinit import SSHD_CONFIG
from tests.pulumi_program import fake_key_pair, run_program, unwrap
from tests.sandbox.executing_cloud import SandboxCloud
from tests.sandbox.harness import DEFAULT_IMAGE, Sandbox, host_public_key, install_host_key

PREFIX, SUBNET = "hkey", "10.233.112.0/24"
HOSTS = ("hk-manager-1", "hk-app-1")
CONFIG = {
    "region": "fra1",
    "adminCidrs": [SUBNET],
    "nodePools": {
        "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"},
        "app": {"role": "worker", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "app"}},
    },
    "secrets": {"api_key": "value-of-the-api-key"},
    "convergeTimeout": "60s",
}
STACK_FILE = {
    "version": "3.8",
    "services": {"web": {"image": DEFAULT_IMAGE, "command": ["sleep", "86400"], "stop_grace_period": "1s",
                         "secrets": ["api_key"], "deploy": {"replicas": 1}}},
    "secrets": {"api_key": {"external": True}},
}


def program_key(node: str) -> tuple[str, str]:
    """(private, public) host key the program generated for `node` (FakeCloud's tls.PrivateKey)."""
    private, public = fake_key_pair(f"{node}-host-key")
    return private, public.strip()


class Cluster:
    def __init__(self, sandbox: Sandbox, stack_file):
        self.sandbox = sandbox
        self.cloud = SandboxCloud(sandbox)  # one cloud: every run is `pulumi up` again
        self.stack_file = stack_file

    def up(self):
        return run_program("hk", {**CONFIG, "stackFile": str(self.stack_file)}, mocks=self.cloud)

    def sshd_log(self, host: str) -> str:
        return (self.sandbox.hosts[host].dir / "init.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(sandbox_workdir, tmp_path_factory, timings):
    started = time.monotonic()
    with Sandbox(sandbox_workdir / "host-keys", subnet=SUBNET, prefix=PREFIX) as sandbox:
        sandbox.add_hosts(HOSTS)
        sandbox.load_image()
        stack_file = tmp_path_factory.mktemp("host-keys") / "hk.yaml"
        stack_file.write_text(yaml.safe_dump(STACK_FILE))
        cluster = Cluster(sandbox, stack_file)
        run = cluster.up()
        assert run.error is None, run.error
        cluster.first_run = run
        timings["host keys: 2 hosts up, swarm formed and a service deployed over pinned SSH"] = time.monotonic() - started
        yield cluster


def test_each_node_presents_the_host_key_the_program_generated_and_pinned(cluster):
    for name in HOSTS:
        assert host_public_key(cluster.sandbox.hosts[name]) == program_key(name)[1]
    # Every command connected with that key pinned (the sandbox cloud refuses any other), and the
    # swarm formed and the service ran over those connections and the provider's known_hosts.
    commands = [r for r in cluster.first_run.registrations if r.type == "command:remote:Command"]
    assert {r.plain("connection")["hostKey"] for r in commands} == {program_key(name)[1] for name in HOSTS}
    manager = cluster.sandbox.hosts["hk-manager-1"]
    assert manager.docker("node", "ls", "-q").stdout.split().__len__() == 2
    assert manager.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}").stdout.split() == ["hk_web", "1/1"]


def test_a_host_presenting_another_key_is_refused_before_anything_is_sent(cluster):
    impostor = cluster.sandbox.hosts["hk-app-1"]
    # Someone else answers at the worker's address: another key, same address.
    impostor.exec("rm -f /run/impostor_key* && ssh-keygen -q -t ed25519 -N '' -f /run/impostor_key")
    other_key = impostor.exec("cat /run/impostor_key").stdout
    install_host_key(impostor, other_key)
    join = next(r for r in cluster.first_run.registrations if r.name == "hk-app-1-join")
    token = unwrap(join.inputs["stdin"]).strip()
    assert token.startswith("SWMTKN-1-")
    try:
        log_mark = len(cluster.sshd_log("hk-app-1"))

        # The join command itself, with its real token on stdin, over its pinned connection.
        result = cluster.cloud.ssh_pinned(join.name, join.plain("connection"), join.plain("create"), token + "\n")
        assert result.returncode == 255
        assert "Host key verification failed" in result.stderr
        assert token not in result.stdout + result.stderr

        # `pulumi up` again: the worker's first command (ready) fails on the key, so its join,
        # which waits for it, is never even attempted.
        executed_before = len(cluster.cloud.executed)
        run = cluster.up()
        assert run.error is not None
        assert "hk-app-1-ready failed" in str(run.error) and "Host key verification failed" in str(run.error)
        assert token not in str(run.error)
        attempted = [name for name, host, _ in cluster.cloud.executed[executed_before:] if host == "hk-app-1"]
        assert attempted == ["hk-app-1-ready"]

        # The impostor's sshd saw clients leave before authentication: no login, so no command and
        # no stdin ever reached it.
        log = cluster.sshd_log("hk-app-1")[log_mark:]
        assert re.search(r"Connection closed by .* \[preauth\]", log), log
        assert "Accepted publickey" not in log
    finally:
        install_host_key(impostor, program_key("hk-app-1")[0])
    # With the pinned key back, the same `up` goes through.
    again = cluster.up()
    assert again.error is None, again.error


def test_the_nodes_sshd_settings_allow_keys_only(cluster):
    """The sshd drop-in of the user data, loaded by a real sshd (on a sandbox host, which has the
    privilege-separation directory sshd wants) after an image config that says the opposite."""
    host = cluster.sandbox.hosts["hk-manager-1"]
    host.exec("mkdir -p /run/sshd-test/d && cat >/run/sshd-test/d/00-swarm.conf", stdin=SSHD_CONFIG.replace(
        "/etc/ssh/ssh_host_ed25519_key", "/run/ssh_host_ed25519_key"))
    host.exec("printf 'PasswordAuthentication yes\\n' >/run/sshd-test/d/50-cloud-init.conf && "
              "printf 'Include /run/sshd-test/d/*.conf\\nPermitRootLogin yes\\nPasswordAuthentication yes\\n"
              "KbdInteractiveAuthentication yes\\n' >/run/sshd-test/main")
    lines = host.exec("sshd -T -f /run/sshd-test/main").stdout.splitlines()
    effective = dict(line.split(" ", 1) for line in lines)
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "without-password"  # prohibit-password, as sshd -T prints it
    assert effective["authenticationmethods"] == "publickey"
    assert [line for line in lines if line.startswith("hostkey ")] == ["hostkey /run/ssh_host_ed25519_key"]
