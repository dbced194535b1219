"""scripts/ssh_access.py against a stand-in DigitalOcean firewall API: SSH opened for one address
on the stack's tag for a while, always closable, stale openings swept, nothing sent on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swarm.config import load_stack_config_file
from tests.pulumi_program import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "ssh_access.py"
TOKEN = "dop_v1_test_token_value"
ADDRESS = "1.2.3.4"  # a public address (documentation ranges are not)


class FakeDigitalOcean:
    """Firewalls in memory; each new firewall reports `waiting` once, then `succeeded`."""

    def __init__(self):
        self.firewalls: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None, str]] = []  # method, path, body, auth header
        self.final_status = "succeeded"
        self._next = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code: int, body: dict | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict | None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((self.command, self.path, body, self.headers.get("Authorization", "")))
                return body

            def do_GET(self):
                self._record()
                if self.path.startswith("/v2/firewalls?"):
                    return self._answer(200, {"firewalls": list(fake.firewalls.values()), "links": {}})
                firewall = fake.firewalls[self.path.rsplit("/", 1)[1]]
                firewall["status"] = fake.final_status
                return self._answer(200, {"firewall": firewall})

            def do_POST(self):
                body = self._record()
                fake._next += 1
                firewall = {**body, "id": f"fw-{fake._next}", "status": "waiting",
                            "created_at": "2099-01-01T00:00:00Z", "pending_changes": []}
                fake.firewalls[firewall["id"]] = firewall
                return self._answer(202, {"firewall": firewall})

            def do_DELETE(self):
                self._record()
                fake.firewalls.pop(self.path.rsplit("/", 1)[1])
                return self._answer(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def add(self, name: str, created_at: str) -> None:
        self._next += 1
        self.firewalls[f"fw-{self._next}"] = {"id": f"fw-{self._next}", "name": name, "created_at": created_at,
                                              "status": "succeeded"}


@pytest.fixture
def api():
    fake = FakeDigitalOcean()
    yield fake
    fake.server.shutdown()


def run(api: FakeDigitalOcean | None, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIGITALOCEAN_")}
    if token:
        env["DIGITALOCEAN_TOKEN"] = token
    if api:
        env["DIGITALOCEAN_API_URL"] = api.url
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--poll-seconds", "0.01"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_open_allows_ssh_from_one_address_on_the_stacks_nodes_and_waits_until_applied(api):
    result = run(api, "open", "--stack", "prod", "--label", "gha-42-1", "--address", ADDRESS)
    assert result.returncode == 0, result.stderr
    (firewall,) = api.firewalls.values()
    assert firewall["name"] == "swarm-prod-ssh-gha-42-1"
    assert firewall["tags"] == [load_stack_config_file(PROJECT_ROOT, "prod").cluster_tag]
    assert firewall["inbound_rules"] == [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["1.2.3.4/32"]}}]
    assert firewall["outbound_rules"] == []
    # it returned only once DigitalOcean reported the firewall applied
    assert api.requests[-1][:2] == ("GET", f"/v2/firewalls/{firewall['id']}") and firewall["status"] == "succeeded"
    assert all(auth == f"Bearer {TOKEN}" for *_, auth in api.requests)
    assert TOKEN not in result.stdout + result.stderr


def test_close_removes_it_and_closing_twice_is_fine(api):
    assert run(api, "open", "--stack", "prod", "--label", "gha-42-1", "--address", ADDRESS).returncode == 0
    api.add("swarm-staging-ssh-gha-42-1", "2099-01-01T00:00:00Z")  # another stack's: not ours to close
    closed = run(api, "close", "--stack", "prod", "--label", "gha-42-1")
    assert closed.returncode == 0, closed.stderr
    assert [f["name"] for f in api.firewalls.values()] == ["swarm-staging-ssh-gha-42-1"]
    again = run(api, "close", "--stack", "prod", "--label", "gha-42-1")
    assert again.returncode == 0 and "nothing to close" in again.stdout


def test_open_sweeps_this_stacks_stale_openings_and_keeps_the_rest(api):
    api.add("swarm-prod-ssh-gha-1-1", "2020-01-01T00:00:00Z")  # a job that died before closing
    api.add("swarm-prod-ssh-alice", "2099-01-01T00:00:00Z")  # an operator's current session
    api.add("swarm-staging-ssh-gha-1-1", "2020-01-01T00:00:00Z")  # another stack's
    api.add("swarm-prod", "2020-01-01T00:00:00Z")  # the stack's own firewall (Pulumi's)
    assert run(api, "open", "--stack", "prod", "--label", "gha-42-1", "--address", ADDRESS).returncode == 0
    assert sorted(f["name"] for f in api.firewalls.values()) == [
        "swarm-prod", "swarm-prod-ssh-alice", "swarm-prod-ssh-gha-42-1", "swarm-staging-ssh-gha-1-1"]


def test_a_firewall_digitalocean_cannot_apply_fails_the_job(api):
    api.final_status = "failed"
    result = run(api, "open", "--stack", "prod", "--label", "gha-42-1", "--address", ADDRESS)
    assert result.returncode == 1 and "could not apply swarm-prod-ssh-gha-42-1" in result.stderr


@pytest.mark.parametrize("address", ["10.0.0.7", "203.0.113.7", "not-an-address"])
def test_open_refuses_an_address_that_is_not_public_before_any_request(api, address):
    result = run(api, "open", "--stack", "prod", "--label", "gha-42-1", "--address", address)
    assert result.returncode == 1 and "--address" in result.stderr
    assert api.requests == []


def test_without_a_token_nothing_is_sent(api):
    result = run(api, "open", "--stack", "prod", "--label", "x", "--address", ADDRESS, token=None)
    assert result.returncode == 1 and "DIGITALOCEAN_TOKEN" in result.stderr
    assert api.requests == []


def test_help_has_no_side_effects(api):
    result = run(api, "--help")
    assert result.returncode == 0 and "open" in result.stdout and "close" in result.stdout
    assert api.requests == []
