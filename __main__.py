"""A Docker Swarm for serving machine-learning models on DigitalOcean.

Reads and validates the stack configuration and stack file, then builds:
network -> node pools -> swarm -> workloads.
"""

import gc
from pathlib import Path

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.backups import BackupsArgs, BackupsComponent, Scheduler, SchedulerArgs
from components.ingress import Ingress, IngressArgs
from components.network import Network, NetworkArgs
from components.node_config import NodeConfig, NodeConfigArgs
from components.node_pool import NodePool, NodePoolArgs
from components.registry import registry_auth
from components.swarm_cluster import SwarmCluster, SwarmClusterArgs
from components.workloads import Workloads, WorkloadsArgs
from swarm.alerts import plan_alerts
from swarm.backups import bucket_cost, jobs_document, stored_gb_upper_bound
from swarm.config import config_from_pulumi, secret_values_from_pulumi
from swarm.diagnostics import NothingDeployed
from swarm.plan import check

PROJECT_ROOT = Path(__file__).parent

# No full garbage collections while the program runs (the process ends with it). CPython starts
# one whenever the objects promoted to the oldest generation since the last reach a quarter of
# those that survived it. The SDK's Outputs and tasks for every resource are all created before
# any of them resolves, so they all get promoted, and each full collection rescans the whole heap
# to free almost nothing: 17 of them were 10 of the 20 s of a 1,000-model program, and their cost
# per model grew with the catalogue (docs/benchmarks.md). The young generations still collect
# the SDK's short-lived garbage (over a million objects at 1,000 models), as before.
_young, _middle, _ = gc.get_threshold()
gc.set_threshold(_young, _middle, 1_000_000)

# Everything is validated before the first resource is registered, by the same checks as
# `python -m swarm plan` (swarm/plan/preflight.py): config, stack file and catalogue, swarm:images and
# swarm:bindMounts, capacity, values of external secrets and configs.
# One pass: the configuration's problems, the stack file's and the cross-checks' come out together.
try:
    checked = check(lambda: config_from_pulumi(PROJECT_ROOT))
except NothingDeployed as error:
    # RunError: the engine prints the message alone, without a Python traceback.
    raise pulumi.RunError(str(error)) from None
config = checked.config
secret_values = secret_values_from_pulumi()
rollout = checked.rollout
ingress_plan = checked.ingress  # x-ingress routes with swarm:ingress; the proxy is in rollout.stack
# Placement and sizing mistakes fail the preview instead of leaving tasks pending after deploy.
if not checked.capacity.schedulable:
    raise pulumi.RunError(checked.capacity.failure_text(config.stack_file.name))
# A preview creates nothing: a missing value is a warning there, and `up` refuses it. The preview
# shows a placeholder, so that `pulumi-local preview` need not write secrets into the config.
if checked.missing_values and not pulumi.runtime.is_dry_run():
    raise pulumi.RunError(checked.missing_values_text())
for warning in [*map(str, checked.warnings), *map(str, checked.missing_values)]:
    pulumi.log.warn(warning)

# After `pulumi stack rename` (swarm:previousStackNames) or a pool rename (previousNames), the
# components answer to their earlier names too: their resources are updated or replaced in
# place, never created beside the old ones; Pulumi derives the children's aliases.
stack_renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old) for old in config.stack_aliases()])
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
        ssh_private_key=secret_values.ssh_private_key,
    ),
    opts=stack_renamed,
)

# HTTPS from a load balancer to the proxy on the ingress pool's nodes (docs/ingress.md).
ingress = None
if ingress_plan is not None:
    ingress = Ingress(
        f"{config.stack}-ingress",
        IngressArgs(
            stack=config.stack,
            region=config.region,
            vpc_id=network.vpc_id,
            ingress=ingress_plan.ingress,
            hosts=list(ingress_plan.hosts),
            dns_records=list(ingress_plan.dns_records),
            certificate_chain=secret_values.ingress_certificate,
            private_key=secret_values.ingress_private_key,
        ),
    )

machines = []
for pool in config.pools:
    ingress_tag = [ingress.tag] if ingress is not None and pool.name == ingress_plan.ingress.pool else []
    node_pool = NodePool(
        f"{config.stack}-{pool.name}",
        NodePoolArgs(
            pool=pool,
            nodes=[node for node in config.nodes if node.pool is pool],
            region=config.region,
            vpc_id=network.vpc_id,
            ssh_key_id=network.ssh_key_id,
            tags=[network.tags[config.cluster_tag], network.tags[config.role_tag(pool.role)], *ingress_tag],
            previous_names=config.pool_aliases(pool),
        ),
        opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old) for old in config.pool_aliases(pool)]),
    )
    machines.extend(node_pool.machines)

cluster = SwarmCluster(
    config.stack,
    SwarmClusterArgs(
        machines=machines,
        ssh_private_key=network.ssh_private_key,
        region=config.region,
        folders=rollout.folders,
        retire_timeout_seconds=config.converge_timeout_seconds,
    ),
    opts=stack_renamed,
)

# Root's authorized keys and Docker's daemon settings on every node, kept in sync in place: a
# change to either replaces no droplet (swarm/node_scripts/node_config.py).
NodeConfig(
    config.stack,
    NodeConfigArgs(
        nodes=cluster.nodes,
        ssh_private_key=network.ssh_private_key,
        program_public_key=network.ssh_public_key,
        operator_keys=config.authorized_keys,
        manager_connection=cluster.manager_connection,
        drain_timeout_seconds=config.converge_timeout_seconds,
    ),
    opts=stack_renamed,
)

# Services whose image lives on the private registry pull with its credentials (--with-registry-auth).
registry = (
    registry_auth(config.stack, config.registry, secret_values.registry_password) if config.registry else None
)
workloads = Workloads(
    config.stack,
    WorkloadsArgs(
        stack=config.stack,
        spec=rollout.stack,
        docker_host=cluster.docker_host,
        ssh_private_key=network.ssh_private_key,
        known_hosts=cluster.manager_known_hosts,
        external_secrets=secret_values.secrets.apply(
            lambda values: {**checked.placeholders("secrets"), **values}
        ),
        manager_connection=cluster.manager_connection,
        convergence=rollout.convergence(config.stack),
        converge_timeout_seconds=config.converge_timeout_seconds,
        external_configs={**checked.placeholders("configs"), **config.configs},
        swarm_ready=cluster.ready,
        registry=registry,
        prerequisites={key: [cluster.folders[node] for node in rollout.folder_nodes(key)] for key in rollout.stack.services},
        nodes=cluster.node_table,
    ),
    opts=stack_renamed,
)

# DigitalOcean's alerting (docs/alerts.md): droplet alert policies on the stack's tag, uptime
# checks of the routed hosts; the webhook URL stays a secret.
alerts_plan = plan_alerts(config, ingress_plan.hosts if ingress_plan is not None else ())
if alerts_plan is not None:
    Alerts(
        f"{config.stack}-alerts",
        AlertsArgs(plan=alerts_plan, tag=network.tags[config.cluster_tag], webhook_url=secret_values.alerts_webhook_url),
        opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{old}-alerts") for old in config.stack_aliases()]),
    )
    pulumi.export("alerts", alerts_plan.summary())

pulumi.export("nodes", cluster.node_table)
pulumi.export("managerAddress", cluster.manager_public_ip)
pulumi.export("dockerHost", cluster.docker_host)
pulumi.export("sshPrivateKey", network.ssh_private_key)
pulumi.export("knownHosts", cluster.known_hosts)  # the nodes' pinned host keys, for an operator's ssh
pulumi.export("estimatedMonthlyCostUsd", config.monthly_cost)
pulumi.export("services", workloads.services_table)
if ingress is not None:
    pulumi.export("routes", ingress_plan.table(config.stack))
    pulumi.export("loadBalancerAddress", ingress.address)
    pulumi.export("loadBalancerMonthlyCostUsd", ingress_plan.ingress.monthly_cost)

# Scheduled jobs (x-schedule services) and backups: the scheduler on every manager.
scheduled = [key for key, spec in rollout.stack.services.items() if spec.schedule]
if config.backups or scheduled:
    backups = BackupsComponent(f"{config.stack}-backups", BackupsArgs(config.backups, config.stack)) if config.backups else None
    scheduler = Scheduler(
        f"{config.stack}-scheduler",
        SchedulerArgs(
            jobs=jobs_document(config.backups, config.stack, list(checked.databases)),
            managers=cluster.managers,
            manager_connection=cluster.manager_connection,
            keys=backups.keys if backups else None,
            depends_on=[workloads.converged, *([backups.bucket] if backups else [])],
        ),
    )
    pulumi.export("scheduledJobs", scheduler.status)
    if backups:
        pulumi.export("backups", {
            "bucket": backups.bucket.name,
            "endpoint": config.backups.endpoint,
            "estimatedMonthlyCostUsd": bucket_cost(config.backups, stored_gb_upper_bound(
                config.backups, list(checked.databases), checked.database_volume_gb)),
            "lastSuccessfulBackup": scheduler.last_successful,
        })
        # Keep a copy outside the cluster: restoring onto a new cluster needs it.
        pulumi.export("backupEncryptionKey", backups.encryption_key)
