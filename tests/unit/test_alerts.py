"""components/alerts.py under mocks: what the program registers for swarm:alerts (DigitalOcean
alert policies on the stack's tag, an uptime check and its alerts per routed host), to whom they
go, and that the webhook URL travels only as a secret, in inputs and in state. The decisions
themselves are tested in alerts/test_policies.py; the key in config/test_alerts.py."""

from __future__ import annotations

import json

import pytest

from swarm.ingress import HEALTH_PATH
from tests.lifecycle.engine import Engine
from tests.pulumi_program import cluster_config, is_secret, run_program
from tests.unit.ingress.test_routes import INGRESS, FakeCloudProvider, routed_stack
from tests.unit.test_security import plain_leaves

POLICY = "digitalocean:index/monitorAlert:MonitorAlert"
CHECK = "digitalocean:index/uptimeCheck:UptimeCheck"
UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
TAG = "digitalocean:index/tag:Tag"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/alerts-webhook-token"
EMAILS = ["ops@example.com", "oncall@example.com"]


@pytest.fixture(scope="module")
def routed_config(tmp_path_factory):
    stack_file = routed_stack(tmp_path_factory.mktemp("alerts"))
    config = cluster_config("prod")
    config.update(stackFile=str(stack_file), ingress=INGRESS)
    config["alerts"] = {**config["alerts"], "webhookUrl": WEBHOOK, "latencyMs": 2000}
    return config


@pytest.fixture(scope="module")
def routed(routed_config):
    run = run_program("prod", routed_config)
    assert run.error is None, run.error
    return run


def test_the_shipped_prod_stack_registers_cpu_memory_and_disk_policies_on_its_tag_by_email():
    run = run_program("prod", cluster_config("prod"))
    assert run.error is None, run.error
    policies = {p.name: p for p in run.of_type(POLICY)}
    assert sorted(policies) == ["prod-alerts-cpu", "prod-alerts-disk", "prod-alerts-memory"]
    assert {name: (p.plain("type"), p.plain("value"), p.plain("window"), p.plain("compare"))
            for name, p in policies.items()} == {
        "prod-alerts-cpu": ("v1/insights/droplet/cpu", 90, "10m", "GreaterThan"),
        "prod-alerts-memory": ("v1/insights/droplet/memory_utilization_percent", 90, "10m", "GreaterThan"),
        "prod-alerts-disk": ("v1/insights/droplet/disk_utilization_percent", 85, "10m", "GreaterThan"),
    }
    for policy in policies.values():
        # By tag, not by droplet ID: a droplet added or replaced later is watched too.
        assert policy.plain("tags") == ["swarm-prod"] and not policy.plain("entities")
        assert policy.plain("alerts") == {"emails": EMAILS}
        assert policy.plain("enabled") is True
        assert policy.plain("description").startswith("[prod] ")
        assert policy.options["additionalSecretOutputs"] == []  # no webhook: nothing to hide
        # The policy waits for the tag: DigitalOcean refuses a policy on a tag that does not exist.
        assert run.depends_on(policy, run.named("prod-tag"))
    assert run.of_type(CHECK) == []  # no routed host in the shipped prod stack
    assert run.exports["alerts"]["webhook"] == "missing"


def test_no_alerts_key_registers_no_alert():
    config = cluster_config("prod")
    config.pop("alerts")
    run = run_program("prod", config)
    assert run.error is None, run.error
    assert run.of_type(POLICY) == [] and run.of_type(CHECK) == [] and "alerts" not in run.exports


def test_each_routed_host_gets_an_https_uptime_check_with_down_latency_and_certificate_alerts(routed):
    checks = {c.plain("target"): c for c in routed.of_type(CHECK)}
    assert sorted(checks) == [f"https://admin.example.com{HEALTH_PATH}", f"https://api.example.com{HEALTH_PATH}"]
    api = checks[f"https://api.example.com{HEALTH_PATH}"]
    assert (api.name, api.plain("type"), api.plain("regions"), api.plain("enabled")) == (
        "prod-alerts-api-example-com", "https", ["eu_west", "us_east"], True)
    alerts = {a.name: a for a in routed.of_type(UPTIME_ALERT) if a.name.startswith("prod-alerts-api-example-com-")}
    assert {name: (a.plain("type"), a.plain("comparison"), a.plain("threshold"), a.plain("period"))
            for name, a in alerts.items()} == {
        "prod-alerts-api-example-com-down": ("down", "less_than", 1, "2m"),
        "prod-alerts-api-example-com-latency": ("latency", "greater_than", 2000, "10m"),
        "prod-alerts-api-example-com-ssl-expiry": ("ssl_expiry", "less_than", 14, "1h"),
    }
    for alert in alerts.values():
        assert alert.plain("checkId") == "prod-alerts-api-example-com-id"  # the check's ID, from the mock
        assert routed.depends_on(alert, api)
        (notification,) = alert.plain("notifications")
        assert notification["emails"] == EMAILS
        assert notification["slacks"] == [{"channel": "#alerts", "url": WEBHOOK}]
    assert len(routed.of_type(UPTIME_ALERT)) == 6


def test_the_webhook_reaches_every_alert_only_as_a_secret_and_is_secret_in_state(routed):
    alerting = [*routed.of_type(POLICY), *routed.of_type(UPTIME_ALERT)]
    assert len(alerting) == 9
    for resource in alerting:
        target = "alerts" if resource.type == POLICY else "notifications"
        assert WEBHOOK in json.dumps(resource.plain(target)), resource.name  # it is delivered...
        assert is_secret(resource.inputs[target]) or _secret_inside(resource.inputs[target]), resource.name
        # ...and the provider's read-back of the same field is encrypted in state too.
        assert resource.options["additionalSecretOutputs"] == [target], resource.name
    plain = [(r.name, path) for r in routed.registrations for path, text in plain_leaves(r.inputs) if "alerts-webhook-token" in text]
    assert plain == []
    assert "alerts-webhook-token" not in json.dumps(routed.exports)
    assert routed.exports["alerts"]["webhook"] == "set"


def test_the_alerts_output_says_what_is_watched_and_the_cost(routed):
    summary = routed.exports["alerts"]
    assert summary["emails"] == EMAILS and summary["droplets"]["tag"] == "swarm-prod"
    assert summary["uptime_checks"] == [f"https://admin.example.com{HEALTH_PATH}", f"https://api.example.com{HEALTH_PATH}"]
    assert summary["monthly_cost"] == 2.0


def test_a_renamed_stack_keeps_its_alerts(routed_config):
    run = run_program("prod", {**cluster_config("prod"), "previousStackNames": ["production"]})
    assert run.error is None, run.error
    component = run.named("prod-alerts")
    assert component.options["aliasNames"] == ["production-alerts"]


def test_turning_alerts_on_changing_and_removing_them_touches_nothing_else(routed_config):
    # A second `up` on a running cluster, as the lifecycle engine plays it against a kept state.
    engine = Engine(default=FakeCloudProvider())
    without = {key: value for key, value in routed_config.items() if key != "alerts"}

    def up(config):
        result = engine.up(lambda monitor: run_program("prod", config, monitor=monitor))
        assert result.error is None, result.error
        return {(step.op, step.type.rsplit(":", 1)[1], step.name) for step in result.steps if step.op != "same"}

    up(without)
    enabled = up(routed_config)
    assert {kind for _, kind, _ in enabled} == {"MonitorAlert", "UptimeCheck", "UptimeAlert"}
    assert {op for op, _, _ in enabled} == {"create"} and len(enabled) == 3 + 2 + 6
    stricter = up({**routed_config, "alerts": {**routed_config["alerts"], "cpuPercent": 80}})
    assert stricter == {("update", "MonitorAlert", "prod-alerts-cpu")}  # in place: no droplet, no other alert
    removed = up(without)
    assert {op for op, _, _ in removed} == {"delete"} and len(removed) == len(enabled)


def _secret_inside(value) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(_secret_inside(item) for item in value.values())
    if isinstance(value, list):
        return any(_secret_inside(item) for item in value)
    return False
