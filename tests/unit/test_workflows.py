"""The GitHub workflows are valid against GitHub's schema and run the steps the README promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from swarm.config import load_stack_config_file
from swarm.plan.duration import deploy_bound
from tests.pulumi_program import PROJECT_ROOT


def stack_config_of(stack: str):
    return load_stack_config_file(PROJECT_ROOT, stack)

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.mark.tools("check-jsonschema")
def test_workflows_are_valid_against_the_github_schema():
    assert [w.name for w in WORKFLOWS] == ["deploy.yml", "pull-request.yml"]
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def load(name):
    return yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / name).read_text())


def pulumi_steps(job):
    return [step["with"] for step in job["steps"] if step.get("uses", "").startswith("pulumi/actions")]


def test_pull_requests_are_tested_and_previewed_for_both_stacks_with_a_comment():
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the `on` key as True
    jobs = workflow["jobs"]
    assert any("bash .ci/run" in step.get("run", "") for step in jobs["test"]["steps"])
    assert jobs["plan"]["needs"] == "test" and jobs["preview"]["needs"] == "plan"
    assert [entry["stack"] for entry in jobs["preview"]["strategy"]["matrix"]["include"]] == ["staging", "prod"]
    (preview,) = pulumi_steps(jobs["preview"])
    assert preview["command"] == "preview" and preview["comment-on-pr"] is True


def test_pushes_to_main_deploy_staging_then_prod():
    workflow = load("deploy.yml")
    assert workflow[True]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["staging"]["needs"] == "test" and jobs["prod"]["needs"] == ["test", "staging"]
    for stack in ("staging", "prod"):
        (up,) = pulumi_steps(jobs[stack])
        assert (up["command"], up["stack-name"]) == ("up", stack)
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_each_deploy_jobs_timeout_is_its_stacks_plan_bound_for_replacing_every_droplet():
    jobs = load("deploy.yml")["jobs"]
    step = next(step for step in jobs["test"]["steps"] if step.get("id") == "timeouts")
    # The step's own script, run here: it prints one `<stack>=<minutes>` line per stack.
    script = step["run"].replace(".venv/bin/python", sys.executable)
    output = PROJECT_ROOT / ".pytest-github-output"
    try:
        subprocess.run(["bash", "-c", script], cwd=PROJECT_ROOT, check=True, env={**os.environ, "GITHUB_OUTPUT": str(output)})
        printed = dict(line.split("=") for line in output.read_text().split())
    finally:
        output.unlink(missing_ok=True)
    assert printed == {stack: str(deploy_bound(stack_config_of(stack)).job_timeout_minutes) for stack in ("staging", "prod")}
    assert int(printed["prod"]) > 60  # the fixed hour it replaces was short of prod's bound
    for stack in ("staging", "prod"):
        assert jobs["test"]["outputs"][f"{stack}-timeout"] == f"${{{{ steps.timeouts.outputs.{stack} }}}}"
        assert jobs[stack]["timeout-minutes"] == f"${{{{ fromJSON(needs.test.outputs.{stack}-timeout) }}}}"


def test_a_release_sets_swarm_images_from_the_dispatch_input_on_both_stacks():
    workflow = load("deploy.yml")
    images = workflow[True]["workflow_dispatch"]["inputs"]["images"]
    assert images["required"] is False and images["default"] == "{}"
    release = '{"api": "registry.example.com/nlp/api:2.0.2"}'
    for stack in ("staging", "prod"):
        (up,) = pulumi_steps(workflow["jobs"][stack])
        # What GitHub passes the action once it has evaluated the expression (toJSON of the input).
        expression = "${{ toJSON(inputs.images || '{}') }}"
        assert expression in up["config-map"]
        config = yaml.safe_load(up["config-map"].replace(expression, json.dumps(release)))
        assert config == {"swarm:images": {"value": release, "secret": False}}


def test_the_plan_is_posted_before_the_preview_compared_with_mains_plan():
    jobs = load("pull-request.yml")["jobs"]
    assert jobs["plan"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    steps = jobs["plan"]["steps"]
    names = [step.get("name") or step.get("uses", "") for step in steps]
    base_checkout = next(s for s in steps if s.get("with", {}).get("path") == "base")
    assert base_checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    on_main = steps[names.index("plan on main")]
    assert on_main["working-directory"] == "base" and "--format json > ../base-plan.json" in on_main["run"]
    plan = steps[names.index("plan")]
    assert "--format markdown --base base-plan.json > plan.md" in plan["run"]
    post = steps[names.index("post the plan")]
    assert post["with"]["path"] == "plan.md" and post["if"].startswith("always()")
    assert steps.index(base_checkout) < names.index("plan on main") < names.index("plan") < names.index("post the plan")
    assert not pulumi_steps(jobs["plan"])  # the preview waits in its own job, behind a reviewer


# ---- secrets and environments (docs/security.md) ----------------------------------------------

SECRET_REFERENCE = re.compile(r"secrets\.([A-Z0-9_]+)")
DEPLOY_ENVIRONMENTS = {"staging", "production"}  # hold the DigitalOcean write token; main only


def secrets_used(job: dict) -> set[str]:
    """Names of the secrets a job reads, GITHUB_TOKEN (the run's own, scoped by `permissions`) aside."""
    return set(SECRET_REFERENCE.findall(yaml.safe_dump(job))) - {"GITHUB_TOKEN"}


def environments(job: dict) -> list[str]:
    """The environment each run of the job uses, with `matrix.*` expanded."""
    environment = job.get("environment")
    if environment is None:
        return []
    name = environment["name"] if isinstance(environment, dict) else environment
    expression = re.fullmatch(r"\$\{\{ *matrix\.([a-z_]+) *\}\}", name)
    if not expression:
        return [name]
    return [entry[expression[1]] for entry in job["strategy"]["matrix"]["include"]]


def step_index(job: dict, predicate) -> int:
    (index,) = [i for i, step in enumerate(job["steps"]) if predicate(step)]
    return index


def test_no_workflow_runs_a_pull_requests_code_with_the_base_repositorys_secrets():
    for workflow in WORKFLOWS:
        assert "pull_request_target" not in load(workflow.name)[True], workflow.name


def test_every_secret_is_read_only_by_a_job_behind_an_environment():
    # Repository secrets reach any workflow a collaborator's branch runs; environment secrets only
    # jobs the environment lets in (branch rules, required reviewers).
    for workflow in WORKFLOWS:
        for name, job in load(workflow.name)["jobs"].items():
            if secrets_used(job):
                assert environments(job), f"{workflow.name}: job {name} reads {secrets_used(job)} without an environment"
        assert "secrets." not in yaml.safe_dump({k: v for k, v in load(workflow.name).items() if k != "jobs"})


def test_pull_request_previews_get_no_digitalocean_token_and_prod_waits_for_a_reviewer():
    workflow = load("pull-request.yml")
    assert "DIGITALOCEAN_TOKEN" not in (PROJECT_ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    preview = workflow["jobs"]["preview"]
    by_stack = {entry["stack"]: entry["environment"] for entry in preview["strategy"]["matrix"]["include"]}
    assert by_stack == {"staging": "staging-preview", "prod": "production-preview"}
    assert environments(preview) == ["staging-preview", "production-preview"]
    # never the deploy environments: those hold the write token and are limited to main
    for job in workflow["jobs"].values():
        assert not set(environments(job)) & DEPLOY_ENVIRONMENTS
    # the state bucket read-only (preview writes nothing and takes no lock), and the passphrase
    assert secrets_used(preview) == {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE",
                                     "SPACES_READ_ACCESS_KEY_ID", "SPACES_READ_SECRET_ACCESS_KEY"}
    assert secrets_used(workflow["jobs"]["test"]) == set()


def test_a_pull_requests_code_runs_unreviewed_only_where_no_secret_is():
    # issue 20: unreviewed code gets no passphrase and no state access; what reads them waits for
    # a reviewer (both preview environments require one: docs/security.md's setup commands).
    jobs = load("pull-request.yml")["jobs"]
    for name, job in jobs.items():
        if not environments(job):
            assert secrets_used(job) == set(), f"{name} runs unreviewed and reads {secrets_used(job)}"
    assert environments(jobs["plan"]) == [] and environments(jobs["test"]) == []
    setup = (PROJECT_ROOT / "docs" / "security.md").read_text()
    for environment in ("staging-preview", "production-preview"):
        command = setup.split(f"gh api -X PUT repos/acme/swarm/environments/{environment}", 1)[1].split("\ngh ", 1)[0]
        assert "reviewers[][type]" in command, f"docs/security.md sets {environment} up without a reviewer"


def test_deploys_open_ssh_for_their_runner_and_always_close_it():
    workflow = load("deploy.yml")
    assert secrets_used(workflow["jobs"]["test"]) == set()
    for stack, environment in (("staging", "staging"), ("prod", "production")):
        job = workflow["jobs"][stack]
        assert environments(job) == [environment]
        assert "DIGITALOCEAN_TOKEN" in secrets_used(job)
        opened = step_index(job, lambda s: "ssh_access.py open" in s.get("run", ""))
        up = step_index(job, lambda s: s.get("uses", "").startswith("pulumi/actions"))
        closed = step_index(job, lambda s: "ssh_access.py close" in s.get("run", ""))
        assert opened < up < closed
        assert job["steps"][closed]["if"] in ("always()", "${{ always() }}")
        for index in (opened, closed):
            assert f"--stack {stack}" in job["steps"][index]["run"]
            assert '--label "$SSH_ACCESS_LABEL"' in job["steps"][index]["run"]
        # one label per run attempt: a re-run replaces its own opening, never another run's
        assert job["env"]["SSH_ACCESS_LABEL"] == "gha-${{ github.run_id }}-${{ github.run_attempt }}"


def test_a_deploy_killed_mid_up_releases_its_state_lock_for_the_next_one():
    """Issue 20, item 7: a cancelled or timed-out `pulumi up` leaves its lock file in the DIY
    backend; the job deletes it with `pulumi cancel` for its own stack, after the up, whatever
    became of it. Safe only because deploys never overlap."""
    workflow = load("deploy.yml")
    assert workflow["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    for stack in ("staging", "prod"):
        job = workflow["jobs"][stack]
        up = step_index(job, lambda s: s.get("uses", "").startswith("pulumi/actions"))
        assert job["steps"][up]["id"] == "up"
        release = step_index(job, lambda s: "pulumi cancel" in s.get("run", ""))
        assert release > up
        condition = job["steps"][release]["if"]
        assert "always()" in condition
        assert "steps.up.outcome == 'cancelled'" in condition and "steps.up.outcome == 'failure'" in condition
        assert f"pulumi cancel --yes --stack {stack}" in job["steps"][release]["run"]
