"""HTTPS into the swarm: a DigitalOcean load balancer in the stack's VPC, its certificate, DNS
records for the routed hosts, and a firewall that lets web traffic reach the proxy's nodes only
from that load balancer.

The proxy itself is a swarm service in the stack (swarm.ingress.with_ingress); the load balancer
targets the droplets carrying this component's tag (the ingress pool's), terminates TLS, sends
plain HTTP to the proxy's nodePort, redirects HTTP to HTTPS and health-checks each node's proxy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from swarm.config import Ingress as IngressConfig
from swarm.ingress import HEALTH_PATH

PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
DNS_TTL_SECONDS = 300


@dataclass
class IngressArgs:
    stack: str
    region: str
    vpc_id: pulumi.Input[str]
    ingress: IngressConfig
    hosts: Sequence[str]  # every routed host: the Let's Encrypt certificate covers them
    dns_records: Sequence[tuple[str, str]]  # (DigitalOcean DNS zone, record name)
    # certificate: uploaded: the PEM chain (leaf first) and its private key, both secret Outputs.
    certificate_chain: pulumi.Input[str] | None = None
    private_key: pulumi.Input[str] | None = None


class Ingress(pulumi.ComponentResource):
    tag: pulumi.Output[str]  # give it to the ingress pool's droplets
    address: pulumi.Output[str]  # the load balancer's public IPv4
    load_balancer_id: pulumi.Output[str]

    def __init__(self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Ingress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ingress = args.ingress

        tag = do.Tag(f"{name}-tag", name=f"swarm-{args.stack}-ingress", opts=child)
        certificate = self._certificate(name, args, child)
        port = ingress.node_port
        balancer = do.LoadBalancer(
            f"{name}-lb",
            name=f"{args.stack}-ingress",
            region=args.region,
            vpc_uuid=args.vpc_id,
            size_unit=ingress.load_balancer_size,
            droplet_tag=tag.name,
            forwarding_rules=[
                do.LoadBalancerForwardingRuleArgs(
                    entry_port=443, entry_protocol="https", target_port=port, target_protocol="http",
                    # By name: a new certificate (new name) is created before the old one is deleted.
                    certificate_name=certificate.name,
                ),
                # Only there to be redirected to HTTPS.
                do.LoadBalancerForwardingRuleArgs(entry_port=80, entry_protocol="http", target_port=port, target_protocol="http"),
            ],
            redirect_http_to_https=True,
            healthcheck=do.LoadBalancerHealthcheckArgs(
                protocol="http", port=port, path=HEALTH_PATH,
                check_interval_seconds=3, response_timeout_seconds=3, unhealthy_threshold=2, healthy_threshold=2,
            ),
            # The records below are the program's: DigitalOcean must not add its own for the certificate.
            disable_lets_encrypt_dns_records=True,
            opts=child,
        )
        # Web traffic to the proxy's nodes from the load balancer only; the cluster firewall
        # (components/network.py) opens nothing else for it. Firewalls add up on a droplet.
        do.Firewall(
            f"{name}-firewall",
            name=f"{args.stack}-ingress",
            tags=[tag.name],
            inbound_rules=[
                do.FirewallInboundRuleArgs(protocol="tcp", port_range=str(port), source_load_balancer_uids=[balancer.id])
            ],
            opts=child,
        )
        for zone, record in args.dns_records:
            do.DnsRecord(
                f"{name}-dns-{record}.{zone}",
                domain=zone,
                type="A",
                name=record,
                value=balancer.ip,
                ttl=DNS_TTL_SECONDS,
                opts=child,
            )

        self.tag = tag.name
        self.address = balancer.ip
        self.load_balancer_id = balancer.id
        self.register_outputs({"address": self.address, "loadBalancerId": self.load_balancer_id})

    @staticmethod
    def _certificate(name: str, args: IngressArgs, opts: pulumi.ResourceOptions) -> do.Certificate:
        """Certificate names are unique in an account, so the name carries a digest of what it
        certifies: a change creates the new certificate, moves the load balancer to it, then
        deletes the old one (the provider's advice for certificates in use)."""
        if args.ingress.certificate == "letsEncrypt":
            hosts = sorted(args.hosts)
            return do.Certificate(
                f"{name}-certificate",
                name=f"{args.stack}-ingress-{_digest(' '.join(hosts))}",
                type="lets_encrypt",
                domains=hosts,
                opts=opts,
            )
        chain = pulumi.Output.from_input(args.certificate_chain)
        blocks = chain.apply(lambda text: PEM_CERTIFICATE.findall(text or ""))
        return do.Certificate(
            f"{name}-certificate",
            # A digest of the public certificate only, never of the key.
            name=pulumi.Output.unsecret(chain.apply(lambda text: f"{args.stack}-ingress-{_digest(text or '')}")),
            type="custom",
            leaf_certificate=blocks.apply(lambda b: b[0] if b else ""),
            certificate_chain=blocks.apply(lambda b: "\n".join(b[1:]) or None),
            private_key=pulumi.Output.secret(args.private_key),
            opts=opts,
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]
