"""What swarm:alerts watches (swarm/alerts/policies.py), without Pulumi: the droplet policies on
the stack's tag with the configured thresholds and messages, one HTTPS uptime check per routed
host with its three alerts, and the monthly cost."""

from __future__ import annotations

import dataclasses

from swarm.alerts import DOWN_PERIOD, SSL_EXPIRY_DAYS, plan_alerts, uptime_regions
from swarm.config import load_stack_config_file
from swarm.ingress import HEALTH_PATH
from tests.pulumi_program import PROJECT_ROOT


def prod(**alerts):
    config = load_stack_config_file(PROJECT_ROOT, "prod")
    return dataclasses.replace(config, alerts=dataclasses.replace(config.alerts, **alerts))


def test_no_alerts_key_means_no_plan():
    config = load_stack_config_file(PROJECT_ROOT, "staging")
    assert plan_alerts(config, ["api.example.com"]) is None


def test_cpu_memory_and_disk_are_watched_on_the_stacks_tag_with_the_configured_thresholds():
    plan = plan_alerts(prod(cpu_percent=75.0, window="30m"))
    assert plan.tag == "swarm-prod"
    assert [(a.key, a.metric, a.threshold, a.window) for a in plan.droplet_alerts] == [
        ("cpu", "v1/insights/droplet/cpu", 75.0, "30m"),
        ("memory", "v1/insights/droplet/memory_utilization_percent", 90.0, "30m"),
        ("disk", "v1/insights/droplet/disk_utilization_percent", 85.0, "30m"),
    ]


def test_each_message_names_the_stack_the_threshold_and_what_to_do():
    cpu, memory, disk = plan_alerts(prod()).droplet_alerts
    assert cpu.description.startswith("[prod] CPU above 90% for 10m on a droplet of stack prod (tag swarm-prod).")
    assert "docker node ps" in cpu.description and "docker stats" in memory.description
    assert "docker system df" in disk.description
    assert all(a.description.endswith("(docs/alerts.md)") for a in (cpu, memory, disk))


def test_each_routed_host_gets_one_https_check_on_the_proxys_health_path_with_three_alerts():
    plan = plan_alerts(prod(latency_ms=1500), ["api.example.com", "admin.example.com", "api.example.com"])
    assert [(t.host, t.key, t.url) for t in plan.uptime] == [
        ("admin.example.com", "admin-example-com", f"https://admin.example.com{HEALTH_PATH}"),
        ("api.example.com", "api-example-com", f"https://api.example.com{HEALTH_PATH}"),
    ]
    api = plan.uptime[1]
    assert api.regions == ("eu_west", "us_east")  # a fra1 stack: Europe first
    assert [(a.type, a.comparison, a.threshold, a.period) for a in api.alerts] == [
        ("down", "less_than", 1, DOWN_PERIOD),
        ("latency", "greater_than", 1500, "10m"),
        ("ssl_expiry", "less_than", SSL_EXPIRY_DAYS, "1h"),
    ]
    assert SSL_EXPIRY_DAYS == 14
    assert api.alerts[0].name.startswith("[prod] api.example.com not answering over HTTPS")
    assert "docker service ps prod_ingress-proxy" in api.alerts[0].name


def test_uptime_regions_start_nearest_the_stack():
    assert uptime_regions("nyc3") == ("us_east", "eu_west")
    assert uptime_regions("sfo3") == ("us_west", "us_east")
    assert uptime_regions("sgp1") == ("se_asia", "us_west")


def test_the_policies_are_free_and_each_uptime_check_costs_a_dollar_a_month():
    assert plan_alerts(prod()).monthly_cost == 0.0
    assert plan_alerts(prod(), ["a.example.com", "b.example.com", "c.example.com"]).monthly_cost == 3.0


def test_the_summary_says_where_alerts_go_and_never_carries_the_webhook():
    summary = plan_alerts(prod(webhook=True), ["api.example.com"]).summary()
    assert summary == {
        "emails": ["ops@example.com", "oncall@example.com"],
        "webhook": "set",
        "droplets": {"tag": "swarm-prod", "window": "10m", "cpu": 90.0, "memory": 90.0, "disk": 85.0},
        "uptime_checks": [f"https://api.example.com{HEALTH_PATH}"],
        "latency_ms": 5000,
        "ssl_expiry_days": 14,
        "replicas_grace_seconds": 300,
        "backup_grace_seconds": 7200,
        "pool": "manager",
        "monthly_cost": 1.0,
    }
