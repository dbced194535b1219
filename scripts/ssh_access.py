#!/usr/bin/env python3
"""Open SSH to a stack's nodes for one address, for a while, and close it again.

The stack's own firewall (Pulumi's) opens port 22 only to swarm:adminCidrs, which the shipped
configs leave empty. A deploy job, or an operator, opens it for its own address with a second
DigitalOcean firewall on the stack's tag (firewalls on one droplet add up), and deletes it when
done. Pulumi never sees that firewall, so `pulumi up` neither fights it nor removes it half-way.

  open   delete this stack's access firewalls older than --max-age (left by a job that died
         before closing), then create `swarm-<stack>-ssh-<label>`: 22/tcp from ADDRESS only, on
         every droplet tagged `swarm-<stack>` (droplets created during the job included), and
         wait until DigitalOcean reports it applied.
  close  delete `swarm-<stack>-ssh-<label>`; nothing to do when it is gone already.

The API token comes from DIGITALOCEAN_TOKEN (never from the command line); it needs write
access to firewalls. DIGITALOCEAN_API_URL overrides the API's address (tests).

  scripts/ssh_access.py open --stack prod --label "$USER" --address "$(curl -fsS https://checkip.amazonaws.com)"
  ssh -o UserKnownHostsFile=known_hosts root@<node>   # see docs/security.md, "The operator's way in"
  scripts/ssh_access.py close --stack prod --label "$USER"
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

API = "https://api.digitalocean.com"
LABEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
STACK = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class AccessError(Exception):
    """Something the caller must fix or know; the message says what."""


def firewall_prefix(stack: str) -> str:
    return f"swarm-{stack}-ssh-"


def cluster_tag(stack: str) -> str:
    """The tag every droplet of the stack carries (ClusterConfig.cluster_tag)."""
    return f"swarm-{stack}"


def source_cidr(address: str) -> str:
    """`address` as a one-address CIDR; only a public address makes sense here."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise AccessError(f"--address {address!r} is not an IP address") from None
    if not ip.is_global:
        raise AccessError(f"--address {ip} is not a public address; give the address the nodes will see you from")
    return f"{ip}/{ip.max_prefixlen}"


class DigitalOcean:
    def __init__(self, token: str, api: str = API):
        self._token = token
        self._api = api.rstrip("/")

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._api + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise AccessError(f"DigitalOcean API: {method} {path} answered {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise AccessError(f"DigitalOcean API unreachable: {error.reason}") from None
        return json.loads(text) if text.strip() else {}

    def firewalls(self, prefix: str) -> list[dict]:
        found, page = [], 1
        while True:
            answer = self.request("GET", f"/v2/firewalls?per_page=200&page={page}")
            found += [f for f in answer.get("firewalls", []) if f.get("name", "").startswith(prefix)]
            if not answer.get("links", {}).get("pages", {}).get("next"):
                return found
            page += 1


def open_access(do: DigitalOcean, stack: str, label: str, address: str, *, max_age_hours: float,
                timeout: float, poll_seconds: float) -> str:
    cidr = source_cidr(address)
    name = firewall_prefix(stack) + label
    now = datetime.datetime.now(datetime.UTC)
    for firewall in do.firewalls(firewall_prefix(stack)):
        created = datetime.datetime.fromisoformat(firewall["created_at"].replace("Z", "+00:00"))
        if firewall["name"] == name or now - created > datetime.timedelta(hours=max_age_hours):
            do.request("DELETE", f"/v2/firewalls/{firewall['id']}")
            print(f"ssh_access: removed {firewall['name']} (created {firewall['created_at']})")
    created = do.request("POST", "/v2/firewalls", {
        "name": name,
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": [cidr]}}],
        "outbound_rules": [],  # the stack's own firewall allows the nodes' outbound traffic
        "tags": [cluster_tag(stack)],
    })["firewall"]
    deadline = time.monotonic() + timeout
    status = created.get("status")
    while status != "succeeded":
        if status == "failed":
            raise AccessError(f"DigitalOcean could not apply {name}: {created.get('pending_changes')}")
        if time.monotonic() > deadline:
            raise AccessError(f"{name} not applied after {timeout:.0f}s (status {status}); close it and retry")
        time.sleep(poll_seconds)
        created = do.request("GET", f"/v2/firewalls/{created['id']}")["firewall"]
        status = created.get("status")
    print(f"ssh_access: {name} allows SSH from {cidr} to the droplets tagged {cluster_tag(stack)}")
    return created["id"]


def close_access(do: DigitalOcean, stack: str, label: str) -> int:
    name = firewall_prefix(stack) + label
    closed = 0
    for firewall in do.firewalls(name):
        if firewall["name"] == name:
            do.request("DELETE", f"/v2/firewalls/{firewall['id']}")
            closed += 1
    print(f"ssh_access: {name} " + ("removed" if closed else "was not there (nothing to close)"))
    return closed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["open", "close"])
    parser.add_argument("--stack", required=True, help="the Pulumi stack, e.g. prod")
    parser.add_argument("--label", required=True, help="who holds it: gha-<run id>, or an operator's name")
    parser.add_argument("--address", help="open: the public IP address allowed in")
    parser.add_argument("--max-age", type=float, default=6.0, metavar="HOURS",
                        help="open: remove this stack's access firewalls older than this (default 6)")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="open: how long to wait for DigitalOcean to apply the firewall (default 120)")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if not STACK.match(args.stack):
            raise AccessError(f"--stack {args.stack!r} is not a stack name")
        if not LABEL.match(args.label):
            raise AccessError(f"--label {args.label!r}: use up to 40 lowercase letters, digits and '-'")
        if args.action == "open" and args.address is None:
            raise AccessError("open needs --address")
        if args.action == "open":
            source_cidr(args.address)  # refused before any request
        token = os.environ.get("DIGITALOCEAN_TOKEN")
        if not token:
            raise AccessError("set DIGITALOCEAN_TOKEN (a token with write access to firewalls)")
        do = DigitalOcean(token, os.environ.get("DIGITALOCEAN_API_URL", API))
        if args.action == "open":
            open_access(do, args.stack, args.label, args.address, max_age_hours=args.max_age,
                        timeout=args.timeout, poll_seconds=args.poll_seconds)
        else:
            close_access(do, args.stack, args.label)
    except AccessError as error:
        print(f"ssh_access: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
