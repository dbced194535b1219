"""The stack configuration: every `swarm:*` key read and validated once (every problem collected,
each with its fix) into frozen values. Offers `parse_config`/`load_stack_config_file` and the types.

One reader per concern, the key's docs next to its validation: `cluster` (the whole, and the
network keys), `pools`, `workloads` (what runs on the swarm), `ingress`, `backups`, `alerts`, `renames`;
`keys` is the table of known keys; `sizes` the DigitalOcean sizes and prices.
"""

from swarm.config.alerts import Alerts
from swarm.config.backups import Backups
from swarm.config.cluster import (
    ClusterConfig,
    Node,
    PublicPort,
    config_from_pulumi,
    from_pulumi,
    load_stack_config_file,
    parse_config,
    secret_values_from_pulumi,
)
from swarm.config.ingress import INGRESS_LABEL, Ingress
from swarm.config.keys import reference_table
from swarm.config.pools import Pool
from swarm.config.sizes import (
    GIB,
    MONITORING_MONTHLY_USD,
    SPACES_EXTRA_GB_USD,
    SPACES_INCLUDED_GB,
    SPACES_MONTHLY_USD,
    UPTIME_CHECK_MONTHLY_USD,
    VOLUME_GB_MONTHLY_USD,
)
from swarm.config.workloads import DEFAULT_CONVERGE_TIMEOUT_SECONDS, Registry
from swarm.diagnostics import ConfigError

__all__ = [
    "ConfigError",
    "Alerts",
    "Backups",
    "ClusterConfig",
    "DEFAULT_CONVERGE_TIMEOUT_SECONDS",
    "GIB",
    "INGRESS_LABEL",
    "MONITORING_MONTHLY_USD",
    "Ingress",
    "Node",
    "Pool",
    "PublicPort",
    "Registry",
    "SPACES_EXTRA_GB_USD",
    "SPACES_INCLUDED_GB",
    "SPACES_MONTHLY_USD",
    "UPTIME_CHECK_MONTHLY_USD",
    "VOLUME_GB_MONTHLY_USD",
    "config_from_pulumi",
    "from_pulumi",
    "load_stack_config_file",
    "parse_config",
    "reference_table",
    "secret_values_from_pulumi",
]
