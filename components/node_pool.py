"""A pool of identical droplets for one role, each with its cloud-init, SSH host key and optional
data volume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do
import pulumi_tls as tls

from swarm.config import Node, Pool
from swarm.node_scripts import HostKey, render_cloud_init, volume_name


@dataclass
class NodePoolArgs:
    pool: Pool
    nodes: list[Node]  # this pool's nodes, from the config
    region: str
    vpc_id: pulumi.Input[str]
    ssh_key_id: pulumi.Input[str]
    tags: list[pulumi.Input[str]]
    # Earlier names of this component (a renamed pool or stack): each droplet and volume answers
    # to the name it had under each, so it is kept or replaced in place, never created anew.
    previous_names: tuple[str, ...] = ()


@dataclass
class Machine:
    """A created droplet and the node it was declared as."""

    node: Node
    droplet_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    host_key: pulumi.Output[str]  # its SSH host public key, "ssh-ed25519 AAAA...": connections pin it
    # The attached data volume's DigitalOcean name, as created (it never changes afterwards).
    volume_name: pulumi.Output[str] | None = None


class NodePool(pulumi.ComponentResource):
    machines: list[Machine]

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:NodePool", name, None, opts)
        pool = args.pool
        self.machines = []
        for node in args.nodes:
            def aliases(suffix: str) -> list[pulumi.Alias]:
                return [pulumi.Alias(name=f"{old}-{node.index}{suffix}") for old in args.previous_names]

            # A worker of a new size is a new droplet, not the old one resized: DigitalOcean resizes
            # by powering the droplet off, and every droplet of the pool would go down at once
            # (Pulumi updates independent resources in parallel). Replaced instead, the successors
            # join first and the old nodes retire one at a time per pool, each waiting until its
            # tasks run elsewhere. A manager keeps the in-place resize: it keeps its address and
            # its swarm state.
            rolling = ["size"] if pool.role == "worker" else []
            droplet_options = pulumi.ResourceOptions(parent=self, aliases=aliases(""), replace_on_changes=rolling)
            volume_ids: list[pulumi.Input[str]] = []
            volume = None
            if pool.volume:
                volume = do.Volume(
                    f"{name}-{node.index}-data",
                    name=volume_name(node),
                    region=args.region,
                    size=pool.volume.size_gb,  # grows in place; shrinking is refused by the provider
                    initial_filesystem_type="ext4",
                    description=f"Data of {node.name}",
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        aliases=aliases("-data"),
                        # Data: `pulumi up` refuses to delete or replace it unless the pool says
                        # `volume.protect: false`.
                        protect=pool.volume.protect,
                        # Both are ForceNew on DigitalOcean: a renamed pool or stack (aliased) must
                        # not replace its volume, and an older description (which named the mount
                        # path) must not either. The volume keeps the name it was created with.
                        ignore_changes=["name", "description"],
                    ),
                )
                volume_ids.append(volume.id)
                # A volume attaches to one droplet at a time: the old droplet must go before its
                # replacement can take the volume (and the data on it) over.
                droplet_options = pulumi.ResourceOptions(
                    parent=self, aliases=aliases(""), delete_before_replace=True, replace_on_changes=rolling
                )
            # The node's SSH host key, installed by cloud-init. Kept in state and never rotated by
            # the program, so a second `up` leaves the user data (and so the droplet) alone; a
            # replaced droplet gets the same key under the same name.
            host_key = tls.PrivateKey(f"{name}-{node.index}-host-key", algorithm="ED25519",
                                      opts=pulumi.ResourceOptions(parent=self))
            user_data = pulumi.Output.all(host_key.private_key_openssh, host_key.public_key_openssh).apply(
                lambda pair, node=node: render_cloud_init(node, HostKey(*pair))
            )
            droplet = do.Droplet(
                f"{name}-{node.index}",
                name=node.name,
                image=pool.image,
                region=args.region,
                size=pool.size.slug,
                vpc_uuid=args.vpc_id,
                # The program's key (ForceNew: switching it replaces the droplet). Not ignored: Pulumi
                # creates a replacement with an ignored input's old value (pulumi/pulumi#2657), and a
                # droplet replaced after a switch would boot with a key the program no longer has.
                # Operators' keys are added in place instead (components/node_config.py).
                ssh_keys=[args.ssh_key_id],
                tags=args.tags,
                user_data=pulumi.Output.secret(user_data),  # it carries the host's private key
                volume_ids=volume_ids or None,
                monitoring=True,
                graceful_shutdown=True,
                opts=droplet_options,
            )
            self.machines.append(
                Machine(node, droplet.id, droplet.ipv4_address, droplet.ipv4_address_private,
                        host_key.public_key_openssh.apply(str.strip), volume.name if volume else None)
            )
        self.register_outputs({"dropletIds": [machine.droplet_id for machine in self.machines]})
