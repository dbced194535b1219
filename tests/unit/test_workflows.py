"""The GitHub workflows are valid against GitHub's schema and run the steps the README promises."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.pulumi_program import PROJECT_ROOT

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
    assert jobs["preview"]["needs"] == "test"
    assert jobs["preview"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    (preview,) = pulumi_steps(jobs["preview"])
    assert preview["command"] == "preview" and preview["comment-on-pr"] is True


def test_pushes_to_main_deploy_staging_then_prod():
    workflow = load("deploy.yml")
    assert workflow[True]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["staging"]["needs"] == "test" and jobs["prod"]["needs"] == "staging"
    for stack in ("staging", "prod"):
        (up,) = pulumi_steps(jobs[stack])
        assert (up["command"], up["stack-name"]) == ("up", stack)
    assert workflow["concurrency"]["cancel-in-progress"] is False


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


def test_the_plan_is_posted_next_to_the_preview_with_the_cost_change_against_main():
    steps = load("pull-request.yml")["jobs"]["preview"]["steps"]
    names = [step.get("name") or step.get("uses", "") for step in steps]
    base_checkout = next(s for s in steps if s.get("with", {}).get("path") == "base")
    assert base_checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    on_main = steps[names.index("plan on main")]
    assert on_main["working-directory"] == "base" and "--format json > ../base-plan.json" in on_main["run"]
    plan = steps[names.index("plan")]
    assert "--format markdown --base base-plan.json > plan.md" in plan["run"]
    post = steps[names.index("post the plan")]
    assert post["with"]["path"] == "plan.md" and post["if"].startswith("always()")
    preview = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("pulumi/actions"))
    assert steps.index(base_checkout) < names.index("plan on main") < names.index("plan") < names.index("post the plan") < preview
