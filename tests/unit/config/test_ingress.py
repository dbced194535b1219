"""swarm:ingress and the uploaded certificate's keys (swarm/config/ingress.py): the ingress pool's
nodes get the proxy's label; every mistake is reported at once, and PEM values are never echoed."""

from __future__ import annotations

import pytest

from swarm.config import ConfigError, parse_config
from tests.unit.ingress_values import LEAF, PRIVATE_KEY, config_values


def parse(tmp_path, **values):
    (tmp_path / "stacks").mkdir(exist_ok=True)
    (tmp_path / "stacks" / "t.yaml").write_text("version: '3.8'\nservices: {}\n")
    return parse_config(config_values(**values), stack="t", project_root=tmp_path, source="Pulumi.t.yaml")


def problems_of(tmp_path, **values) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(tmp_path, **values)
    return [str(problem) for problem in raised.value.problems]


def test_the_ingress_pool_nodes_get_the_label_the_proxy_is_constrained_to(tmp_path):
    config = parse(tmp_path)
    pools = {pool.name: pool for pool in config.pools}
    assert pools["edge"].labels == {"type": "edge", "swarm.ingress": "true"}
    assert "swarm.ingress" not in pools["manager"].labels
    assert config.ingress.node_port == 8080 and config.ingress.certificate == "letsEncrypt"
    assert config.ingress.monthly_cost == 12.0


def test_every_ingress_mistake_is_reported_at_once(tmp_path):
    problems = problems_of(tmp_path, ingress={
        "pool": "egde", "domains": ["Example.com", "https://x.org"], "certificate": "letsencrypt",
        "nodePort": 22, "loadBalancerSize": 0, "image": "not an image", "tls": True,
    })
    assert problems == [
        "swarm:ingress.tls: unknown key; swarm:ingress takes certificate, domains, image, loadBalancerSize, nodePort, pool",
        "swarm:ingress.pool: 'egde' is not a pool of swarm:nodePools; did you mean edge?; pools are manager, edge",
        "swarm:ingress.domains[0]: 'Example.com' is not a domain name; use lowercase, without a trailing dot or a scheme, e.g. example.com",
        "swarm:ingress.domains[1]: 'https://x.org' is not a domain name; use lowercase, without a trailing dot or a scheme, e.g. example.com",
        "swarm:ingress.certificate: 'letsencrypt' is not a certificate kind; did you mean letsEncrypt?; use letsEncrypt "
        "(DigitalOcean-managed, the domains' DNS on DigitalOcean) or uploaded",
        "swarm:ingress.nodePort: 22 is not a usable port; use a free port such as 8080 (not 22, 2377, 7946, 4789)",
        "swarm:ingress.image: 'not an image' is not an image reference; e.g. caddy:2.11.7-alpine",
        "swarm:ingress.loadBalancerSize: 0 is not a load balancer size; use a whole number of nodes from 1 to 100",
    ]


def test_ingress_needs_a_pool_with_nodes_and_domains(tmp_path):
    pools = config_values()["nodePools"] | {"edge": {"role": "worker", "count": 0, "size": "s-1vcpu-2gb"}}
    assert problems_of(tmp_path, nodePools=pools, ingress={"pool": "edge"}) == [
        "swarm:ingress.pool: pool 'edge' has no node (count 0): the load balancer would have no target; raise its count or pick another pool",
        "swarm:ingress.domains: is required: the DNS zones on DigitalOcean that the routes' hosts belong to, e.g. [example.com]",
    ]
    assert problems_of(tmp_path, ingress={"domains": ["example.com", "example.com"]}) == [
        "swarm:ingress.pool: is required: the pool whose nodes run the proxy, one of manager, edge",
        "swarm:ingress.domains[1]: 'example.com' is listed twice",
    ]
    assert problems_of(tmp_path, ingress=["edge"]) == [
        "swarm:ingress: must be a mapping such as {pool: backoffice, domains: [example.com], certificate: letsEncrypt}"]


def test_the_proxy_port_may_not_be_opened_to_the_internet(tmp_path):
    assert problems_of(tmp_path, publicPorts=["8000-8100/tcp"]) == [
        "swarm:ingress.nodePort: 8080 is also in swarm:publicPorts, which opens it to the internet: the proxy must be "
        "reached only through the load balancer; remove it from publicPorts or pick another nodePort"]


def test_a_hand_set_ingress_label_is_refused(tmp_path):
    pools = config_values()["nodePools"]
    pools = {**pools, "manager": {**pools["manager"], "labels": {"swarm.ingress": "true"}}}
    assert problems_of(tmp_path, nodePools=pools) == [
        "swarm:nodePools.manager.labels.swarm.ingress: is set by the program on the ingress pool's nodes only "
        "(the proxy runs where it is); remove it"]


def test_an_uploaded_certificate_needs_both_pem_values_and_never_echoes_them(tmp_path):
    uploaded = {"pool": "edge", "domains": ["example.com"], "certificate": "uploaded"}
    assert problems_of(tmp_path, ingress=uploaded, ingressPrivateKey="secret-not-pem") == [
        "swarm:ingressCertificate: is required with swarm:ingress.certificate: uploaded: the certificate chain (PEM, the "
        "leaf first), set with `pulumi config set --secret swarm:ingressCertificate < file.pem`",
        "swarm:ingressPrivateKey: is not PEM text: expected a block containing 'PRIVATE KEY-----'",
    ]
    assert problems_of(tmp_path, ingress=uploaded, ingressCertificate=["not", "text"], ingressPrivateKey=PRIVATE_KEY) == [
        "swarm:ingressCertificate: must be PEM text, set with --secret"]
    config = parse(tmp_path, ingress=uploaded, ingressCertificate={"secure": "v1:abc"}, ingressPrivateKey={"secure": "v1:def"})
    assert config.ingress.certificate == "uploaded"  # encrypted offline: only presence is checked


def test_certificate_values_without_uploaded_or_without_ingress_are_refused(tmp_path):
    assert problems_of(tmp_path, ingressCertificate=LEAF) == [
        "swarm:ingressCertificate: is only used with swarm:ingress.certificate: uploaded; remove it or set certificate: uploaded"]
    values = config_values(ingressPrivateKey=PRIVATE_KEY)
    del values["ingress"]
    (tmp_path / "stacks").mkdir(exist_ok=True)
    (tmp_path / "stacks" / "t.yaml").write_text("services: {}\n")
    with pytest.raises(ConfigError) as raised:
        parse_config(values, stack="t", project_root=tmp_path, source="Pulumi.t.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "swarm:ingressPrivateKey: is set but swarm:ingress is not: set swarm:ingress (docs/ingress.md) or remove it"]
