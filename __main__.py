"""A Docker Swarm for serving machine-learning models on DigitalOcean.

Reads and validates the stack configuration, then builds: network -> node pools -> swarm.
"""

from pathlib import Path

import pulumi

from components.network import Network, NetworkArgs
from components.node_pool import NodePool, NodePoolArgs
from components.swarm_cluster import SwarmCluster, SwarmClusterArgs
from swarm.config import ConfigError, from_pulumi

PROJECT_ROOT = Path(__file__).parent

try:
    config = from_pulumi(PROJECT_ROOT)
except ConfigError as error:
    # RunError: the engine prints the message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from None
for warning in config.warnings:
    pulumi.log.warn(warning)

settings = pulumi.Config("swarm")
network = Network(
    config.stack,
    NetworkArgs(
        region=config.region,
        cluster_tag=config.cluster_tag,
        role_tags=[config.role_tag(role) for role in ("manager", "worker")],
        admin_cidrs=list(config.admin_cidrs),
        public_ports=list(config.public_ports),
        vpc_ip_range=config.vpc_ip_range,
        ssh_public_key=config.ssh_public_key,
        ssh_private_key=settings.get_secret("sshPrivateKey"),
    ),
)

machines = []
for pool in config.pools:
    node_pool = NodePool(
        f"{config.stack}-{pool.name}",
        NodePoolArgs(
            pool=pool,
            nodes=[node for node in config.nodes if node.pool is pool],
            region=config.region,
            vpc_id=network.vpc_id,
            ssh_key_id=network.ssh_key_id,
            tags=[network.tags[config.cluster_tag], network.tags[config.role_tag(pool.role)]],
        ),
    )
    machines.extend(node_pool.machines)

cluster = SwarmCluster(
    config.stack,
    SwarmClusterArgs(machines=machines, ssh_private_key=network.ssh_private_key),
)

pulumi.export("nodes", cluster.node_table)
pulumi.export("managerAddress", cluster.manager_public_ip)
pulumi.export("dockerHost", cluster.docker_host)
pulumi.export("sshPrivateKey", network.ssh_private_key)
pulumi.export("estimatedMonthlyCostUsd", config.monthly_cost)
