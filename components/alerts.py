"""DigitalOcean's own alerting for the stack (docs/alerts.md): droplet alert policies on the stack's
tag, and an uptime check with its alerts per routed host. What to watch, the thresholds and the
messages come from swarm.alerts.plan_alerts; this component only wires them into resources.

The webhook URL (swarm:alerts.webhookUrl) arrives as a secret Output and stays one: each alert's
`alerts`/`notifications` output is marked secret too, so the URL is encrypted in state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from swarm.alerts import AlertsPlan


@dataclass
class AlertsArgs:
    plan: AlertsPlan
    tag: pulumi.Input[str]  # the stack's tag (Network.tags[...]): the policies wait for it to exist
    webhook_url: pulumi.Input[str] | None = None  # secret; None when swarm:alerts.webhookUrl is not set


class Alerts(pulumi.ComponentResource):
    policy_ids: list[pulumi.Output[str]]
    check_ids: dict[str, pulumi.Output[str]]  # routed host -> its uptime check

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Alerts", name, None, opts)
        plan = args.plan
        emails = list(plan.alerts.emails) or None
        webhook = pulumi.Output.secret(args.webhook_url) if plan.alerts.webhook and args.webhook_url is not None else None

        self.policy_ids = []
        for alert in plan.droplet_alerts:
            policy = do.MonitorAlert(
                f"{name}-{alert.key}",
                type=alert.metric,
                compare="GreaterThan",
                value=alert.threshold,
                window=alert.window,
                description=alert.description,
                enabled=True,
                tags=[args.tag],
                alerts=do.MonitorAlertAlertsArgs(
                    emails=emails,
                    slacks=[do.MonitorAlertAlertsSlackArgs(channel=plan.alerts.slack_channel, url=webhook)] if webhook else None,
                ),
                # The provider reads the webhook back into this output: secret in state too.
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["alerts"] if webhook else []),
            )
            self.policy_ids.append(policy.id)

        self.check_ids = {}
        for target in plan.uptime:
            check = do.UptimeCheck(
                f"{name}-{target.key}",
                name=target.name,
                target=target.url,
                type="https",
                regions=list(target.regions),
                enabled=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.check_ids[target.host] = check.id
            for alert in target.alerts:
                do.UptimeAlert(
                    f"{name}-{target.key}-{alert.key}",
                    check_id=check.id,
                    name=alert.name,
                    type=alert.type,
                    comparison=alert.comparison,
                    threshold=alert.threshold,
                    period=alert.period,
                    notifications=[do.UptimeAlertNotificationArgs(
                        emails=emails,
                        slacks=[do.UptimeAlertNotificationSlackArgs(channel=plan.alerts.slack_channel, url=webhook)]
                        if webhook else None,
                    )],
                    opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["notifications"] if webhook else []),
                )
        self.register_outputs({"policies": self.policy_ids, "uptimeChecks": self.check_ids})
