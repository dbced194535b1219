"""`swarm:alerts`: who is told when something fails, and at which thresholds (docs/alerts.md).

Read and validated like every other key (registered in the known-keys table) into a frozen
`Alerts`. What follows from it (the DigitalOcean alert policies and uptime checks, their
messages and cost) is in swarm/alerts/. The webhook URL is a secret: it is set with
`pulumi config set --secret --path 'swarm:alerts.webhookUrl' URL`, so offline (the plan
command reading Pulumi.<stack>.yaml) only its presence is known; when its value is readable
(the program, or a value left in plain text) it must be an https URL. It is never put in a message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from swarm.config.keys import Collector, check_subkeys, known_key
from swarm.config.workloads import is_encrypted
from swarm.suggest import did_you_mean
from swarm.values import parse_duration

ALERT_KEYS = ("emails", "webhookUrl", "slackChannel", "cpuPercent", "memoryPercent", "diskPercent",
              "window", "latencyMs", "replicasGrace", "backupGrace", "pool")
# The windows DigitalOcean's droplet alert policies take (MonitorAlert `window`); the uptime
# alerts' periods take these too.
WINDOWS = ("5m", "10m", "30m", "1h")
DEFAULTS = {"cpuPercent": 90, "memoryPercent": 90, "diskPercent": 85, "window": "10m", "latencyMs": 5000,
            "replicasGrace": "5m", "backupGrace": "2h", "slackChannel": "#alerts"}
MAX_LATENCY_MS = 60_000
MAX_REPLICAS_GRACE_SECONDS = 24 * 3600
MAX_BACKUP_GRACE_SECONDS = 7 * 24 * 3600
# An address DigitalOcean can send to: one '@', a dot in the domain, no spaces or commas.
EMAIL = re.compile(r"^[^@\s,;<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
SLACK_CHANNEL = re.compile(r"^[#@]?[a-z0-9][a-z0-9._ -]{0,79}$", re.I)


@dataclass(frozen=True)
class Alerts:
    """`swarm:alerts`: destinations and thresholds; the webhook's value stays a Pulumi secret."""

    emails: tuple[str, ...]
    webhook: bool  # swarm:alerts.webhookUrl is set (its value: SecretValues.alerts_webhook_url)
    pool: str  # where the Prometheus part of alerting will run (docs/alerts.md, "Not yet")
    slack_channel: str = DEFAULTS["slackChannel"]
    cpu_percent: float = DEFAULTS["cpuPercent"]
    memory_percent: float = DEFAULTS["memoryPercent"]
    disk_percent: float = DEFAULTS["diskPercent"]
    window: str = DEFAULTS["window"]  # how long a threshold must be crossed before an alert fires
    latency_ms: int = DEFAULTS["latencyMs"]  # a routed host slower than this alerts
    replicas_grace_seconds: int = 300  # how long a service may run short of its replicas
    backup_grace_seconds: int = 7200  # how late a backup may be, past its schedule

    @property
    def webhook_state(self) -> str:
        """What the plan shows of the webhook: never its value."""
        return "set" if self.webhook else "missing"


@known_key("alerts", type="object", default="no alerts",
           doc="who is told when a droplet's CPU, memory or disk runs high or a routed host fails: "
               "`{emails: [ops@example.com], cpuPercent: 90}`; "
               "the Slack-compatible webhook with `pulumi config set --secret --path 'swarm:alerts.webhookUrl' URL` "
               "(see [docs/alerts.md](alerts.md))")
def parse_alerts(value: Any, pools: Sequence[Any], found: Collector, *, pools_reported: bool,
                 from_file: bool = False) -> Alerts | None:
    """`swarm:alerts` against the parsed `pools`; `pools_reported`: a pool already has a problem
    (a missing pool is then not reported again); `from_file`: read from Pulumi.<stack>.yaml on
    disk, where a webhook set with --secret is `{secure: ...}` and a plain one is a leak."""
    if value is None:
        return None
    example = "{emails: [ops@example.com], pool: manager}"
    before = len(found.problems)
    if not check_subkeys(value, "alerts", ALERT_KEYS, found, not_mapping=f"must be a mapping, e.g. {example}"):
        return None

    emails = _emails(value.get("emails"), found)
    webhook = _webhook(value.get("webhookUrl"), found, from_file=from_file)
    if not emails and not webhook and "emails" not in value and "webhookUrl" not in value:
        found.problem("alerts", "alerts would reach nobody: list addresses in swarm:alerts.emails, or set the webhook with "
                      "`pulumi config set --secret --path 'swarm:alerts.webhookUrl' https://hooks.slack.com/...`")
    channel = value.get("slackChannel", DEFAULTS["slackChannel"])
    if not isinstance(channel, str) or not SLACK_CHANNEL.match(channel):
        found.problem(("alerts", "slackChannel"), f"{channel!r} is not a channel name; e.g. '#alerts' "
                      "(DigitalOcean's Slack target needs one; an incoming webhook posts to its own channel)")

    percents = {key: _percent(value, key, found) for key in ("cpuPercent", "memoryPercent", "diskPercent")}
    window = value.get("window", DEFAULTS["window"])
    if window not in WINDOWS:
        found.problem(("alerts", "window"), f"{window!r} is not a window DigitalOcean's alerts take; "
                      f"use one of {', '.join(WINDOWS)}")
    latency = value.get("latencyMs", DEFAULTS["latencyMs"])
    if not _is_number(latency) or not 100 <= latency <= MAX_LATENCY_MS or not float(latency).is_integer():
        found.problem(("alerts", "latencyMs"), f"{latency!r} is not a latency; use whole milliseconds from 100 to {MAX_LATENCY_MS}, e.g. 5000")
    replicas_grace = _grace(value, "replicasGrace", MAX_REPLICAS_GRACE_SECONDS, found)
    backup_grace = _grace(value, "backupGrace", MAX_BACKUP_GRACE_SECONDS, found)
    pool = _pool(value.get("pool"), pools, found, pools_reported=pools_reported)

    if len(found.problems) > before:
        return None
    return Alerts(
        emails=emails, webhook=webhook, pool=pool, slack_channel=channel,
        cpu_percent=percents["cpuPercent"], memory_percent=percents["memoryPercent"], disk_percent=percents["diskPercent"],
        window=window, latency_ms=int(latency), replicas_grace_seconds=replicas_grace, backup_grace_seconds=backup_grace,
    )


def _emails(value: Any, found: Collector) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        found.problem(("alerts", "emails"), "must be a list of addresses, e.g. [ops@example.com]; each must be verified "
                      "on the DigitalOcean account (Team settings) for its alerts to be sent")
        return ()
    emails: list[str] = []
    for index, email in enumerate(value):
        if not isinstance(email, str) or not EMAIL.match(email.strip()):
            found.problem(("alerts", "emails", index), f"{email!r} is not an email address; e.g. ops@example.com")
        elif email.strip().lower() in (known.lower() for known in emails):
            found.problem(("alerts", "emails", index), f"{email!r} is listed twice")
        else:
            emails.append(email.strip())
    return tuple(emails)


def _webhook(value: Any, found: Collector, *, from_file: bool) -> bool:
    """Whether the webhook is set; its value is checked when readable and never quoted."""
    if value is None:
        return False
    if is_encrypted(value):
        return True  # offline: `{secure: ...}`, its value unreadable here
    how = "set it with `pulumi config set --secret --path 'swarm:alerts.webhookUrl' https://hooks.slack.com/services/...`"
    if not isinstance(value, str):
        found.problem(("alerts", "webhookUrl"), f"must be a URL; {how}")
        return False
    if from_file:
        # The program cannot tell (Pulumi hands it the decrypted value either way); the file can.
        found.problem(("alerts", "webhookUrl"), f"is in plain text in the stack's file: whoever reads it (the repository) "
                      f"can post to the channel; remove it and {how}")
        return False
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        # The value itself is a secret: the message says what is wrong, not what it is.
        found.problem(("alerts", "webhookUrl"), f"must be an https:// URL (the webhook carries alert text and a token in its "
                      f"path; plain http would expose both); {how}")
        return False
    return True


def _percent(value: Any, key: str, found: Collector) -> float:
    percent = value.get(key, DEFAULTS[key])
    if not _is_number(percent) or not 1 <= percent <= 99:
        found.problem(("alerts", key), f"{percent!r} is not a threshold; use a percentage from 1 to 99, e.g. {DEFAULTS[key]}")
        return float(DEFAULTS[key])
    return float(percent)


def _grace(value: Any, key: str, maximum: int, found: Collector) -> int:
    text = value.get(key, DEFAULTS[key])
    try:
        seconds = parse_duration(text) // 1_000_000_000 if isinstance(text, str) else -1
    except ValueError:
        seconds = -1
    if not 60 <= seconds <= maximum:
        found.problem(("alerts", key), f"{text!r} is not a grace period; use a duration from 1m to {maximum // 3600}h, "
                      f"e.g. {DEFAULTS[key]}")
        return 0
    return seconds


def _pool(pool: Any, pools: Sequence[Any], found: Collector, *, pools_reported: bool) -> str:
    """Where Prometheus will run: by default the first manager pool (its service discovery reads
    the swarm from a manager's Docker API)."""
    names = [p.name for p in pools]
    if pool is None:
        first = next((p for p in pools if p.role == "manager" and p.count > 0), None)
        return first.name if first is not None else ""
    if not isinstance(pool, str) or not pool:
        found.problem(("alerts", "pool"), f"must be a pool name, one of {', '.join(names) or 'swarm:nodePools'}")
    elif pool not in names:
        if not pools_reported:  # a broken pool is reported where it is declared
            found.problem(("alerts", "pool"), f"{pool!r} is not a pool of swarm:nodePools{did_you_mean(pool, names)}; "
                          f"pools are {', '.join(names)}")
    elif next(p for p in pools if p.name == pool).count < 1:
        found.problem(("alerts", "pool"), f"pool {pool!r} has no node (count 0): the monitoring stack would have nowhere "
                      "to run; raise its count or pick another pool")
    return pool if isinstance(pool, str) else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
