"""swarm:alerts (swarm/config/alerts.py): destinations and thresholds with defaults, every mistake
reported at once at its key, and the webhook URL never quoted, readable or not."""

from __future__ import annotations

import shutil

import pytest

from swarm.config import ConfigError, load_stack_config_file, parse_config
from tests.pulumi_program import PROJECT_ROOT
from tests.unit.ingress_values import config_values

WEBHOOK = "https://hooks.slack.com/services/T000/B000/alerts-webhook-token"


def parse(tmp_path, alerts, **values):
    (tmp_path / "stacks").mkdir(exist_ok=True)
    (tmp_path / "stacks" / "t.yaml").write_text("version: '3.8'\nservices: {}\n")
    return parse_config(config_values(alerts=alerts, **values), stack="t", project_root=tmp_path, source="Pulumi.t.yaml")


def problems_of(tmp_path, alerts, **values) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(tmp_path, alerts, **values)
    return [str(problem) for problem in raised.value.problems]


def test_without_the_key_nothing_is_watched(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "t.yaml").write_text("version: '3.8'\nservices: {}\n")
    config = parse_config(config_values(), stack="t", project_root=tmp_path, source="Pulumi.t.yaml")
    assert config.alerts is None


def test_emails_alone_take_every_default_and_the_first_manager_pool(tmp_path):
    alerts = parse(tmp_path, {"emails": ["ops@example.com"]}).alerts
    assert alerts.emails == ("ops@example.com",)
    assert (alerts.cpu_percent, alerts.memory_percent, alerts.disk_percent, alerts.window) == (90, 90, 85, "10m")
    assert (alerts.latency_ms, alerts.replicas_grace_seconds, alerts.backup_grace_seconds) == (5000, 300, 7200)
    assert alerts.pool == "manager" and alerts.slack_channel == "#alerts"
    assert alerts.webhook is False and alerts.webhook_state == "missing"


def test_every_threshold_can_be_set(tmp_path):
    alerts = parse(tmp_path, {
        "emails": ["ops@example.com"], "webhookUrl": WEBHOOK, "slackChannel": "#ops", "cpuPercent": 75,
        "memoryPercent": 80.5, "diskPercent": 70, "window": "30m", "latencyMs": 1500,
        "replicasGrace": "10m", "backupGrace": "1h30m", "pool": "edge",
    }).alerts
    assert (alerts.cpu_percent, alerts.memory_percent, alerts.disk_percent, alerts.window) == (75, 80.5, 70, "30m")
    assert (alerts.latency_ms, alerts.replicas_grace_seconds, alerts.backup_grace_seconds) == (1500, 600, 5400)
    assert alerts.pool == "edge" and alerts.slack_channel == "#ops"
    assert alerts.webhook is True and alerts.webhook_state == "set"


def test_every_alerts_mistake_is_reported_at_once_with_its_fix(tmp_path):
    assert problems_of(tmp_path, {
        "emails": ["ops@example.com", "not-an-address", "OPS@example.com"], "cpuPercent": 100, "memoryPercent": "90",
        "diskPercent": 0, "window": "15m", "latencyMs": 5, "replicasGrace": "soon", "backupGrace": "30s",
        "pool": "egde", "slackChanel": "#x",
    }) == [
        "swarm:alerts.slackChanel: unknown key; did you mean slackChannel?",
        "swarm:alerts.emails[1]: 'not-an-address' is not an email address; e.g. ops@example.com",
        "swarm:alerts.emails[2]: 'OPS@example.com' is listed twice",
        "swarm:alerts.cpuPercent: 100 is not a threshold; use a percentage from 1 to 99, e.g. 90",
        "swarm:alerts.memoryPercent: '90' is not a threshold; use a percentage from 1 to 99, e.g. 90",
        "swarm:alerts.diskPercent: 0 is not a threshold; use a percentage from 1 to 99, e.g. 85",
        "swarm:alerts.window: '15m' is not a window DigitalOcean's alerts take; use one of 5m, 10m, 30m, 1h",
        "swarm:alerts.latencyMs: 5 is not a latency; use whole milliseconds from 100 to 60000, e.g. 5000",
        "swarm:alerts.replicasGrace: 'soon' is not a grace period; use a duration from 1m to 24h, e.g. 5m",
        "swarm:alerts.backupGrace: '30s' is not a grace period; use a duration from 1m to 168h, e.g. 2h",
        "swarm:alerts.pool: 'egde' is not a pool of swarm:nodePools; did you mean edge?; pools are manager, edge",
    ]


def test_alerts_that_would_reach_nobody_are_refused(tmp_path):
    assert problems_of(tmp_path, {"cpuPercent": 80}) == [
        "swarm:alerts: alerts would reach nobody: list addresses in swarm:alerts.emails, or set the webhook with "
        "`pulumi config set --secret --path 'swarm:alerts.webhookUrl' https://hooks.slack.com/...`"]
    assert problems_of(tmp_path, {"emails": []})[0].startswith("swarm:alerts.emails: must be a list of addresses")
    assert problems_of(tmp_path, "ops@example.com") == [
        "swarm:alerts: must be a mapping, e.g. {emails: [ops@example.com], pool: manager}"]


def test_the_webhook_alone_is_a_destination(tmp_path):
    alerts = parse(tmp_path, {"webhookUrl": WEBHOOK}).alerts
    assert alerts.emails == () and alerts.webhook


@pytest.mark.parametrize("url", [
    "http://hooks.slack.com/services/T000/B000/alerts-webhook-token",
    "hooks.slack.com/services/T000/B000/alerts-webhook-token",
    "https:///services/T000/B000/alerts-webhook-token",
])
def test_a_webhook_that_is_not_https_is_refused_without_quoting_it(tmp_path, url):
    problems = problems_of(tmp_path, {"emails": ["ops@example.com"], "webhookUrl": url})
    assert len(problems) == 1 and problems[0].startswith("swarm:alerts.webhookUrl: must be an https:// URL")
    assert "alerts-webhook-token" not in problems[0] and "T000/B000" not in problems[0]


def test_an_encrypted_webhook_counts_as_set_offline(tmp_path):
    # Pulumi.<stack>.yaml after `pulumi config set --secret --path 'swarm:alerts.webhookUrl' ...`.
    alerts = parse(tmp_path, {"webhookUrl": {"secure": "v1:AAAABBBBCCCC"}}).alerts
    assert alerts.webhook and alerts.webhook_state == "set"


def test_the_alerts_pool_must_have_nodes_and_a_broken_pool_is_reported_once(tmp_path):
    pools = config_values()["nodePools"]
    empty = {**pools, "spare": {"role": "worker", "count": 0, "size": "s-1vcpu-2gb"}}
    assert problems_of(tmp_path, {"emails": ["ops@example.com"], "pool": "spare"}, nodePools=empty) == [
        "swarm:alerts.pool: pool 'spare' has no node (count 0): the monitoring stack would have nowhere to run; "
        "raise its count or pick another pool"]
    broken = {**pools, "edge": {**pools["edge"], "size": "s-nope"}}
    problems = problems_of(tmp_path, {"emails": ["ops@example.com"], "pool": "edge"}, nodePools=broken)
    assert not any(problem.startswith("swarm:alerts") for problem in problems)


def test_the_shipped_prod_stack_alerts_two_addresses_and_staging_none(tmp_path):
    prod = load_stack_config_file(PROJECT_ROOT, "prod").alerts
    assert prod.emails == ("ops@example.com", "oncall@example.com") and not prod.webhook
    assert all(email.endswith("@example.com") for email in prod.emails)
    assert load_stack_config_file(PROJECT_ROOT, "staging").alerts is None


def test_a_mistake_in_the_stack_file_is_placed_at_its_line(tmp_path):
    shutil.copytree(PROJECT_ROOT / "stacks", tmp_path / "stacks")
    text = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text().replace("    window: 10m\n", "    window: 15m\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_stack_config_file(tmp_path, "prod")
    line = text.splitlines().index("    window: 15m") + 1
    assert [str(p) for p in raised.value.problems] == [
        f"Pulumi.prod.yaml:{line}:13: swarm:alerts.window: '15m' is not a window DigitalOcean's alerts take; "
        "use one of 5m, 10m, 30m, 1h"]


def test_a_webhook_left_in_plain_text_in_the_stack_file_is_refused_without_quoting_it(tmp_path):
    shutil.copytree(PROJECT_ROOT / "stacks", tmp_path / "stacks")
    text = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text().replace("    window: 10m\n", f"    window: 10m\n    webhookUrl: {WEBHOOK}\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_stack_config_file(tmp_path, "prod")
    (problem,) = [str(p) for p in raised.value.problems]
    assert "swarm:alerts.webhookUrl: is in plain text in the stack's file" in problem and "--secret" in problem
    assert "alerts-webhook-token" not in problem
    encrypted = text.replace(f"webhookUrl: {WEBHOOK}", "webhookUrl: {secure: v1:AAAABBBBCCCC}")
    (tmp_path / "Pulumi.prod.yaml").write_text(encrypted)
    assert load_stack_config_file(tmp_path, "prod").alerts.webhook_state == "set"
