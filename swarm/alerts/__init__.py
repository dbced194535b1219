"""Alerting: what `swarm:alerts` watches and where it reports (`plan_alerts`): DigitalOcean's droplet
alert policies (CPU, memory, disk, on the stack's tag) and uptime checks of the routed hosts, with
their names, thresholds, messages and monthly cost, for the program (components/alerts.py) and the plan.
"""

from swarm.alerts.policies import (
    DOWN_PERIOD,
    SSL_EXPIRY_DAYS,
    AlertsPlan,
    DropletAlert,
    UptimeAlert,
    UptimeTarget,
    plan_alerts,
    uptime_regions,
)

__all__ = [
    "DOWN_PERIOD",
    "SSL_EXPIRY_DAYS",
    "AlertsPlan",
    "DropletAlert",
    "UptimeAlert",
    "UptimeTarget",
    "plan_alerts",
    "uptime_regions",
]
