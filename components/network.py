"""The stack's network layer: VPC, tags, cloud firewall and the SSH key the nodes trust."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_digitalocean as do
import pulumi_tls as tls

from swarm.config import PublicPort

ANYWHERE = ["0.0.0.0/0", "::/0"]
# Swarm's own traffic: cluster management, node gossip, overlay data plane.
SWARM_PORTS = [("tcp", "2377"), ("tcp", "7946"), ("udp", "7946"), ("udp", "4789")]


@dataclass
class NetworkArgs:
    region: str
    cluster_tag: str  # carried by every node; the firewall applies to it
    role_tags: list[str]
    admin_cidrs: list[str]  # SSH sources always allowed; may be empty
    public_ports: list[PublicPort] = field(default_factory=list)
    vpc_ip_range: str | None = None
    # An operator-supplied key pair; when absent one is generated and kept in state as a secret.
    ssh_public_key: str | None = None
    ssh_private_key: pulumi.Input[str] | None = None


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    tags: dict[str, pulumi.Output[str]]  # tag name -> the Tag's name output (orders droplets after tags)
    ssh_key_id: pulumi.Output[str]
    ssh_public_key: pulumi.Output[str]  # the program's key, "ssh-ed25519 AAAA...", as the nodes trust it
    ssh_private_key: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        vpc = do.Vpc(
            f"{name}-vpc",
            name=f"{name}-vpc",
            region=args.region,
            ip_range=args.vpc_ip_range,
            description=f"Private network of the {name} swarm",
            opts=child,
        )
        cluster_tag = do.Tag(f"{name}-tag", name=args.cluster_tag, opts=child)
        role_tags = [do.Tag(f"{name}-tag-{tag}", name=tag, opts=child) for tag in args.role_tags]

        if args.ssh_public_key is not None:
            public_key: pulumi.Input[str] = args.ssh_public_key
            private_key = pulumi.Output.secret(args.ssh_private_key)
        else:
            generated = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=child)
            public_key = generated.public_key_openssh
            private_key = pulumi.Output.secret(generated.private_key_openssh)
        ssh_key = do.SshKey(f"{name}-ssh", name=f"{name}-swarm", public_key=public_key, opts=child)

        # SSH only from swarm:adminCidrs; none at all when it is empty (a deploy or an operator
        # then opens it for a while with a firewall of their own: scripts/ssh_access.py).
        ssh = [do.FirewallInboundRuleArgs(protocol="tcp", port_range="22", source_addresses=args.admin_cidrs)]
        inbound = [
            *(ssh if args.admin_cidrs else []),
            do.FirewallInboundRuleArgs(protocol="icmp", source_tags=[cluster_tag.name]),
            *(
                do.FirewallInboundRuleArgs(protocol=protocol, port_range=port, source_tags=[cluster_tag.name])
                for protocol, port in SWARM_PORTS
            ),
            *(
                do.FirewallInboundRuleArgs(protocol=port.protocol, port_range=port.ports, source_addresses=ANYWHERE)
                for port in args.public_ports
            ),
        ]
        # Nodes pull images and packages from anywhere.
        outbound = [
            do.FirewallOutboundRuleArgs(protocol=protocol, port_range="1-65535", destination_addresses=ANYWHERE)
            for protocol in ("tcp", "udp")
        ] + [do.FirewallOutboundRuleArgs(protocol="icmp", destination_addresses=ANYWHERE)]
        do.Firewall(
            f"{name}-firewall",
            name=f"{name}-swarm",
            tags=[cluster_tag.name],
            inbound_rules=inbound,
            outbound_rules=outbound,
            opts=child,
        )

        self.vpc_id = vpc.id
        self.tags = {tag_name: tag.name for tag_name, tag in zip([args.cluster_tag, *args.role_tags], [cluster_tag, *role_tags])}
        self.ssh_key_id = ssh_key.id
        self.ssh_public_key = pulumi.Output.from_input(public_key).apply(str.strip)
        self.ssh_private_key = private_key
        self.register_outputs({"vpcId": self.vpc_id, "sshKeyId": self.ssh_key_id})
