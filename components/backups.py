"""Backups and scheduled jobs: the Spaces bucket, its key and the encryption key (`Backups`),
and the scheduler installed on every manager (`Scheduler`: swarm/backups/scripts.py,
swarm/backups/node/swarm_jobs.py), which also runs the stack file's `x-schedule` services.

- bucket:   private (ACL), a lifecycle rule that deletes backups older than `keep` runs plus a
            margin and abandoned multipart uploads after a day; protected from `pulumi destroy`.
- key:      a Spaces access key granted read/write on this bucket only, for the manager.
- cipher:   a random 48-character key, kept only as a Pulumi secret and in a root-only file on
            the manager; exported (secret) because a restore onto a new cluster needs it.
- install:  one per manager, at its droplet's own address: copies the scheduler and the jobs
            document there, with its cron entry; the keys go on stdin. The droplet's ID is part
            of the script, so a replaced manager's successor gets it again (an update in place:
            no uninstall runs against the old droplet). Every manager's cron ticks; each run
            happens once cluster-wide (a claim in the swarm, swarm/backups/node/claims.py).
- status:   runs on every `up` at the manager's reserved IP and reports each job's last runs,
            wherever they ran (from the claims), and the last successful one (an output).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_random as random
from pulumi_command import remote

from components.swarm_cluster import ManagerAccess
from swarm.backups import install_script, status_script, uninstall_script
from swarm.config import Backups


@dataclass
class BackupsArgs:
    backups: Backups
    stack: str


class BackupsComponent(pulumi.ComponentResource):
    bucket: digitalocean.SpacesBucket
    encryption_key: pulumi.Output[str]
    keys: pulumi.Output[str]  # secret JSON for the scheduler's stdin: the bucket key and the cipher key

    def __init__(self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Backups", name, None, opts)
        backups = args.backups
        self.bucket = digitalocean.SpacesBucket(
            f"{name}-bucket",
            name=backups.bucket,
            region=backups.region,
            acl="private",
            lifecycle_rules=[
                digitalocean.SpacesBucketLifecycleRuleArgs(
                    enabled=True,
                    abort_incomplete_multipart_upload_days=1,
                    expiration=digitalocean.SpacesBucketLifecycleRuleExpirationArgs(days=backups.lifecycle_days),
                )
            ],
            # The backups outlive the cluster: `pulumi destroy` stops here until unprotected.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        key = digitalocean.SpacesKey(
            f"{name}-key",
            name=f"{args.stack}-backups",
            grants=[digitalocean.SpacesKeyGrantArgs(bucket=self.bucket.name, permission="readwrite")],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_key"]),
        )
        cipher = random.RandomPassword(f"{name}-encryption-key", length=48, special=False,
                                       opts=pulumi.ResourceOptions(parent=self))
        self.encryption_key = pulumi.Output.secret(cipher.result)
        self.keys = pulumi.Output.secret(
            pulumi.Output.all(key.access_key, key.secret_key, cipher.result).apply(
                lambda values: json.dumps({"accessKeyId": values[0], "secretAccessKey": values[1], "encryptionKey": values[2]})
            )
        )
        self.register_outputs({"bucket": self.bucket.name})


@dataclass
class SchedulerArgs:
    jobs: dict  # swarm.backups.jobs_document(...): backups, or none for x-schedule services only
    managers: Sequence[ManagerAccess]  # where it is installed: every manager, the first one first
    manager_connection: remote.ConnectionArgs  # the reserved IP: where the status is read
    keys: pulumi.Input[str] | None = None  # BackupsComponent.keys
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class Scheduler(pulumi.ComponentResource):
    """The scheduler on every manager: x-schedule services and backup jobs."""

    status: pulumi.Output[dict]  # job -> {lastSuccess, lastRun, missed, running}
    last_successful: pulumi.Output[dict]  # job -> time of its last successful run, or None

    def __init__(self, name: str, args: SchedulerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("swarm:index:Scheduler", name, None, opts)
        installs = [
            remote.Command(
                f"{name}-{manager.name}-install",
                connection=manager.connection,
                create=manager.droplet_id.apply(lambda droplet: install_script(args.jobs, droplet=str(droplet))),
                delete=uninstall_script(args.jobs["dir"]),
                stdin=args.keys if args.keys is not None else "{}",
                add_previous_output_in_env=False,
                # Earlier versions installed on the first manager alone, as `<name>-install`: that
                # install becomes the first manager's (updated in place, never uninstalled).
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                            aliases=[pulumi.Alias(name=f"{name}-install")] if index == 0 else None),
            )
            for index, manager in enumerate(args.managers)
        ]
        run_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = remote.Command(
            f"{name}-status",
            connection=args.manager_connection,
            create=status_script(args.jobs["dir"], run_at),
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=installs),
        )
        self.status = status.stdout.apply(_decode_status)
        self.last_successful = self.status.apply(lambda jobs: {job: value.get("lastSuccess") for job, value in jobs.items()})
        self.register_outputs({"lastSuccessful": self.last_successful})


def _decode_status(stdout: str) -> dict:
    try:
        value = json.loads(stdout)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
