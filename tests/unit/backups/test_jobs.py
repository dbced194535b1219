"""swarm:backups: validated like every key, checked against the stack file; the bucket, its
lifecycle and cost; the scheduler's install script; the program's resources and outputs."""

from __future__ import annotations

import json
import subprocess

import pytest

from swarm.backups import bucket_cost, jobs_document
from swarm.backups.scripts import install_script, status_script
from swarm.config import Backups, ConfigError, parse_config
from swarm.node_scripts import inputs_of
from swarm.plan.preflight import preflight
from tests.pulumi_program import PROJECT_ROOT, fake_addresses, fake_droplet_id, is_secret, run_program, stack_config

BACKUPS = {"bucket": "acme-prod-backups", "keep": 14}


def config(backups, **changes):
    values = {**stack_config("prod"), "backups": backups, **changes}
    return parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")


def problems(backups, **changes):
    with pytest.raises(ConfigError) as raised:
        preflight(config(backups, **changes))
    return {problem.key: problem.message for problem in raised.value.problems}


def test_defaults_back_up_the_stacks_postgres_service_daily_at_three_in_the_clusters_region():
    checked = preflight(config({"bucket": "acme-prod-backups"}))
    backups = checked.config.backups
    assert (backups.region, backups.schedule, backups.keep, backups.swarm_state) == ("fra1", "0 3 * * *", 14, True)
    assert [(db.service, db.name) for db in checked.databases] == [("database", "backup-database")]
    assert checked.database_volume_gb == {"database": 100}


def test_every_mistake_in_swarm_backups_is_reported_at_once_with_the_fix():
    found = problems({"buckt": "x", "keep": 0, "schedule": "0 3 * *", "region": "fra2", "swarmState": "yes"})
    assert found["swarm:backups.buckt"] == "unknown key; did you mean bucket?"
    assert "is not a bucket name" in found["swarm:backups.bucket"]
    assert found["swarm:backups.region"] == "'fra2' has no Spaces; did you mean fra1?"
    assert "cron takes five" in found["swarm:backups.schedule"]
    assert "from 1 to 1000" in found["swarm:backups.keep"]
    assert "true or false" in found["swarm:backups.swarmState"]


def test_a_misspelled_database_names_the_services_that_exist():
    found = problems({**BACKUPS, "databases": ["databse"]})
    assert found == {"swarm:backups.databases[0]": "prod.yaml has no service 'databse'; did you mean database?"}


def test_a_listed_service_that_is_not_postgres_is_told_it_is_not_a_database():
    found = problems({**BACKUPS, "databases": ["api"]})
    message = found["swarm:backups.databases[0]"]
    assert message.startswith("api is not a database: its image registry.example.com/nlp/api:")
    assert "backups dump PostgreSQL only" in message and "remove 'api' from swarm:backups.databases" in message
    assert "node.role == manager" not in message  # no advice that would make it look like a database


def test_a_database_that_may_run_on_a_worker_is_refused_because_its_backup_runs_on_the_manager(tmp_path):
    stack = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text().replace("x-model-catalogue: models/prod.yaml\n", "")
    stack += "  replica-db:\n    image: postgres:13\n    deploy: {replicas: 2}\n"
    (tmp_path / "prod.yaml").write_text(stack)
    found = problems({**BACKUPS, "databases": ["replica-db"]}, stackFile=str(tmp_path / "prod.yaml"))
    assert "add the placement constraint `node.role == manager`" in found["swarm:backups.databases[0]"]
    assert "must run one task" in found["swarm:backups.databases[0]"]


def test_one_manager_is_warned_that_the_swarm_state_backup_stops_docker_there():
    checked = preflight(config(BACKUPS))
    assert any("stops Docker on it for a few seconds" in warning for warning in map(str, checked.warnings))
    assert not any("stops Docker" in w for w in map(str, preflight(config({**BACKUPS, "swarmState": False})).warnings))


def test_the_lifecycle_rule_outlives_the_kept_count_of_runs():
    assert Backups("b-b-b", "fra1", "0 3 * * *", 14, None).lifecycle_days == 14 + 7
    assert Backups("b-b-b", "fra1", "0 */6 * * *", 14, None).lifecycle_days == 4 + 7
    assert Backups("b-b-b", "fra1", "@weekly", 4, None).lifecycle_days == 28 + 7


def test_the_bucket_costs_the_subscription_until_250_gib_then_per_gib():
    backups = Backups("b-b-b", "fra1", "0 3 * * *", 14, None)
    assert bucket_cost(backups, 10) == 5.0
    assert bucket_cost(backups, 1400) == 5.0 + 1150 * 0.02


def test_the_jobs_document_holds_no_secret_and_one_job_per_database_and_the_swarm_state():
    checked = preflight(config(BACKUPS))
    document = jobs_document(checked.config.backups, "prod", list(checked.databases))
    assert [(job["name"], job["kind"], job["prefix"]) for job in document["jobs"]] == [
        ("backup-database", "postgres", "prod/postgres/database/"),
        ("backup-swarm-state", "swarm-state", "prod/swarm-state/"),
    ]
    assert document["endpoint"] == "https://fra1.digitaloceanspaces.com"
    assert not {"accessKeyId", "secretAccessKey", "encryptionKey"} & set(json.dumps(document).split('"'))


@pytest.mark.tools("shellcheck")
def test_install_and_status_scripts_pass_shellcheck_and_keep_keys_out_of_the_script():
    checked = preflight(config(BACKUPS))
    script = install_script(jobs_document(checked.config.backups, "prod", list(checked.databases)))
    for text in (script, status_script("/var/lib/swarm-jobs", "2026-12-03T03:00:00Z")):
        result = subprocess.run(["shellcheck", "--shell=sh", "-"], input=text, text=True, capture_output=True)
        assert result.returncode == 0, result.stdout
    assert "json.load(sys.stdin)" in script and "/etc/cron.d/swarm-jobs" in script
    assert "tick" in script.splitlines()[-4] or "tick" in script


def test_the_program_creates_a_private_bucket_a_scoped_key_and_reports_the_last_backup():
    run = run_program("prod", {**stack_config("prod"), "backups": BACKUPS})
    assert run.error is None, run.error
    (bucket,) = run.of_type("digitalocean:index/spacesBucket:SpacesBucket")
    assert bucket.plain("acl") == "private" and bucket.plain("name") == "acme-prod-backups"
    (rule,) = bucket.plain("lifecycleRules")
    assert rule["expiration"]["days"] == 21 and rule["abortIncompleteMultipartUploadDays"] == 1
    (key,) = run.of_type("digitalocean:index/spacesKey:SpacesKey")
    assert key.plain("grants")[0]["permission"] == "readwrite"
    (install,) = [r for r in run.of_type("command:remote:Command") if r.name.endswith("-install")]
    assert install.name == "prod-scheduler-manager-1-install"
    assert is_secret(install.inputs["stdin"]), "the keys reach the manager as a secret, on stdin"
    assert "backupEncryptionKey" in run.secret_exports
    assert run.exports["backups"]["estimatedMonthlyCostUsd"] == 28.0
    assert "lastSuccessfulBackup" in run.exports["backups"]


def test_the_scheduler_is_installed_on_every_manager_at_its_own_address_and_follows_its_droplet():
    """Issue 20: one install per manager, at the droplet's own address, its script carrying the
    droplet's ID (a successor's new ID runs the install there: an update, no uninstall on the old
    droplet); the first manager's install answers to the name earlier versions gave the only one,
    so an existing stack updates it in place instead of uninstalling it; the status waits for all."""
    three = {**stack_config("prod"), "backups": BACKUPS,
             "nodePools": {**stack_config("prod")["nodePools"],
                           "control": {"role": "manager", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "control"}}}}
    run = run_program("prod", three)
    assert run.error is None, run.error
    installs = {r.name: r for r in run.of_type("command:remote:Command") if r.name.endswith("-install")}
    assert sorted(installs) == ["prod-scheduler-control-1-install", "prod-scheduler-control-2-install",
                                "prod-scheduler-manager-1-install"]
    droplets = {d.plain("name"): d for d in run.of_type("digitalocean:index/droplet:Droplet")}
    for name, install in installs.items():
        node = "prod-" + name.removeprefix("prod-scheduler-").removesuffix("-install")
        assert run.depends_on(install, droplets[node])
        assert install.plain("connection")["host"] == fake_addresses(node)[0], "its droplet's own address"
        assert inputs_of(install.plain("create"))["DROPLET"] == fake_droplet_id(node)
        assert "triggers" not in install.inputs or not install.plain("triggers"), "no trigger: a replacement would uninstall"
    assert installs["prod-scheduler-manager-1-install"].options["aliasNames"] == ["prod-scheduler-install"]
    assert installs["prod-scheduler-control-1-install"].options["aliasNames"] == []
    status = run.named("prod-scheduler-status")
    assert all(run.depends_on(status, install) for install in installs.values())


def test_the_shipped_prod_stack_backs_its_database_up_daily_without_stopping_its_lone_manager():
    # Pulumi.prod.yaml is the recommended production setup: backups on, and no warning caused
    # by the shipped file itself (the swarm-state job would stop the lone manager's Docker).
    backups = config(stack_config("prod")["backups"]).backups
    assert backups.bucket == "acme-prod-backups" and backups.schedule == "0 3 * * *" and backups.keep == 14
    assert backups.swarm_state is False
    checked = preflight(config(stack_config("prod")["backups"]))
    assert [d.service for d in checked.databases] == ["database"]
    assert checked.backup_warnings == ()


def test_without_backups_or_scheduled_services_nothing_is_installed():
    without = {key: value for key, value in stack_config("prod").items() if key != "backups"}
    run = run_program("prod", without)
    assert run.error is None
    assert not [r for r in run.of_type("command:remote:Command") if "scheduler" in r.name]
    assert "backups" not in run.exports
