"""What DigitalOcean watches for a stack with `swarm:alerts` (docs/alerts.md), as plain values.

- Droplet alert policies (DigitalOcean Monitoring, fed by the agent every droplet runs:
  `monitoring=True` in components/node_pool.py): CPU, memory and disk utilisation above the
  thresholds for the window. They target the stack's tag (`swarm-<stack>`), which every droplet
  of the stack carries, so a droplet added or replaced later is covered without changing them.
- Uptime checks: one per routed host (swarm:ingress and the stack file's x-ingress routes), over
  HTTPS, on the proxy's health path. It answers on every host once DNS, the certificate, the load
  balancer and the proxy work, whatever the routed services answer to a GET (a model's POST-only
  endpoint would read as down). Each check has three alerts: down (from any checking region, for
  DOWN_PERIOD), slower than latencyMs for the window, and its certificate expiring within
  SSL_EXPIRY_DAYS.

Each message names the stack, what crossed which threshold, and what to do first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from swarm.config import MONITORING_MONTHLY_USD, UPTIME_CHECK_MONTHLY_USD, Alerts, ClusterConfig
from swarm.ingress import HEALTH_PATH, PROXY_SERVICE

# A certificate expiring within this many days alerts (DigitalOcean renews its managed Let's
# Encrypt certificates about 30 days before expiry: 14 days left means the renewal failed).
SSL_EXPIRY_DAYS = 14
# How long a host must fail before "down" alerts: DigitalOcean's shortest uptime alert period.
DOWN_PERIOD = "2m"
DOCS = "docs/alerts.md"

# DigitalOcean's uptime checking regions, nearest first for each droplet region's prefix. Two
# regions: a host unreachable from one of them is down for some of its users.
_UPTIME_REGIONS = {
    "ams": ("eu_west", "us_east"), "fra": ("eu_west", "us_east"), "lon": ("eu_west", "us_east"),
    "nyc": ("us_east", "eu_west"), "tor": ("us_east", "us_west"), "atl": ("us_east", "us_west"),
    "sfo": ("us_west", "us_east"),
    "sgp": ("se_asia", "us_west"), "blr": ("se_asia", "eu_west"), "syd": ("se_asia", "us_west"),
}


@dataclass(frozen=True)
class DropletAlert:
    """One DigitalOcean alert policy over the stack's droplets."""

    key: str  # cpu | memory | disk: the resource's name suffix
    metric: str  # MonitorAlert `type`
    what: str  # "CPU", "memory", "disk"
    threshold: float  # percent
    window: str
    description: str  # the alert's text, as DigitalOcean sends it


@dataclass(frozen=True)
class UptimeAlert:
    key: str  # down | latency | ssl-expiry
    type: str  # UptimeAlert `type`
    comparison: str
    threshold: int  # down: 1 (failed); latency: milliseconds; ssl_expiry: days
    period: str
    name: str  # the alert's name, as DigitalOcean shows and sends it


@dataclass(frozen=True)
class UptimeTarget:
    """One routed host, checked over HTTPS."""

    host: str
    key: str  # the host as a resource name part: api.example.com -> api-example-com
    url: str
    name: str  # the check's name
    regions: tuple[str, ...]
    alerts: tuple[UptimeAlert, ...]


@dataclass(frozen=True)
class AlertsPlan:
    stack: str
    alerts: Alerts
    tag: str  # every droplet of the stack carries it: the policies target it
    droplet_alerts: tuple[DropletAlert, ...]
    uptime: tuple[UptimeTarget, ...]

    @property
    def monthly_cost(self) -> float:
        """Droplet alert policies cost nothing; each uptime check is billed (swarm/config/sizes.py)."""
        return round(MONITORING_MONTHLY_USD + UPTIME_CHECK_MONTHLY_USD * len(self.uptime), 2)

    def summary(self) -> dict[str, Any]:
        """What the plan shows: what is watched, the thresholds, where alerts go (the webhook as
        set or missing, never its value) and the cost."""
        alerts = self.alerts
        return {
            "emails": list(alerts.emails),
            "webhook": alerts.webhook_state,
            "droplets": {"tag": self.tag, "window": alerts.window,
                         **{alert.key: alert.threshold for alert in self.droplet_alerts}},
            "uptime_checks": [target.url for target in self.uptime],
            "latency_ms": alerts.latency_ms,
            "ssl_expiry_days": SSL_EXPIRY_DAYS,
            # Read by the Prometheus part (docs/alerts.md, "Not yet"); shown so a reviewer sees them.
            "replicas_grace_seconds": alerts.replicas_grace_seconds,
            "backup_grace_seconds": alerts.backup_grace_seconds,
            "pool": alerts.pool,
            "monthly_cost": self.monthly_cost,
        }


def plan_alerts(config: ClusterConfig, hosts: tuple[str, ...] | list[str] = ()) -> AlertsPlan | None:
    """What `config.alerts` watches; `hosts`: the routed hosts (IngressPlan.hosts). None without
    swarm:alerts."""
    alerts = config.alerts
    if alerts is None:
        return None
    stack, tag = config.stack, config.cluster_tag
    droplet_alerts = tuple(
        DropletAlert(key, metric, what, threshold, alerts.window,
                     f"[{stack}] {what} above {threshold:g}% for {alerts.window} on a droplet of stack {stack} "
                     f"(tag {tag}). {advice} ({DOCS})")
        for key, metric, what, threshold, advice in (
            ("cpu", "v1/insights/droplet/cpu", "CPU", alerts.cpu_percent,
             "Find the busy tasks: `docker node ps` on a manager, `top` on the droplet; add a node or lower reservations."),
            ("memory", "v1/insights/droplet/memory_utilization_percent", "memory", alerts.memory_percent,
             "Tasks near their limits get killed: check `docker stats` on the droplet; add a node or a larger size."),
            ("disk", "v1/insights/droplet/disk_utilization_percent", "disk", alerts.disk_percent,
             "Free space before Docker stops: `docker system df`, `docker image prune` on the droplet; grow the volume."),
        )
    )
    region_pair = uptime_regions(config.region)
    uptime = tuple(_target(stack, host, alerts, region_pair) for host in sorted(set(hosts)))
    return AlertsPlan(stack, alerts, tag, droplet_alerts, uptime)


def uptime_regions(region: str) -> tuple[str, ...]:
    """The uptime regions that check a stack in `region`: the nearest, then another."""
    return _UPTIME_REGIONS.get(region[:3], ("us_east", "eu_west"))


def host_key(host: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")


def _target(stack: str, host: str, alerts: Alerts, regions: tuple[str, ...]) -> UptimeTarget:
    prefix = f"[{stack}] {host}"
    return UptimeTarget(
        host=host,
        key=host_key(host),
        url=f"https://{host}{HEALTH_PATH}",  # answered on every host (swarm/ingress/routes.py proxy_config)
        name=f"{stack} {host}",
        regions=regions,
        alerts=(
            UptimeAlert("down", "down", "less_than", 1, DOWN_PERIOD,
                        f"{prefix} not answering over HTTPS: check the load balancer's health and the proxy "
                        f"(`docker service ps {stack}_{PROXY_SERVICE}`) ({DOCS})"),
            UptimeAlert("latency", "latency", "greater_than", alerts.latency_ms, alerts.window,
                        f"{prefix} slower than {alerts.latency_ms} ms for {alerts.window} ({DOCS})"),
            UptimeAlert("ssl-expiry", "ssl_expiry", "less_than", SSL_EXPIRY_DAYS, "1h",
                        f"{prefix} certificate expires within {SSL_EXPIRY_DAYS} days: its renewal failed ({DOCS})"),
        ),
    )
