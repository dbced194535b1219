"""`python -m swarm plan` runs every check the program runs before registering, and says so in
text that fits a terminal, in Markdown for a pull request, and in JSON for tools."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pulumi
import pytest
import yaml

from swarm import __main__ as cli
from swarm.capacity import check_capacity
from swarm.compose import load_stack_file
from swarm.config import parse_config
from swarm.diagnostics import WARNING, Problem, config_warning
from swarm.plan import group_warnings
from tests.pulumi_program import PROJECT_ROOT, run_program, stack_config


def write_project(root: Path, stack: str = "prod", config_changes: dict | None = None, stack_text: str | None = None):
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    for key, value in (config_changes or {}).items():
        document["config"][f"swarm:{key}"] = value
    (root / "Pulumi.yaml").write_text("name: swarm\n")
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    (root / "stacks").mkdir(exist_ok=True)
    (root / "stacks" / f"{stack}.yaml").write_text(stack_text or (PROJECT_ROOT / "stacks" / "prod.yaml").read_text())
    if stack_text is None:
        (root / "stacks" / "models").mkdir(exist_ok=True)
        (root / "stacks" / "models" / "prod.yaml").write_text((PROJECT_ROOT / "stacks/models/prod.yaml").read_text())


def run_plan(monkeypatch, capsys, root: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "PROJECT_ROOT", root)
    code = cli.main(["plan", "--stack", "prod", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_says_what_up_refuses_when_an_external_secret_has_no_value(capsys):
    assert cli.main(["plan", "--stack", "prod"]) == 0  # the preview still runs
    out = capsys.readouterr().out
    assert "Needs a value before up (3):" in out
    assert "swarm:secrets.db_password: `pulumi config set --secret --path 'swarm:secrets.db_password' VALUE`" in out
    assert out.splitlines()[-1] == "The stack fits; `pulumi preview` runs, `up` refuses it until 3 values are set."


def test_plan_runs_the_rollout_checks_of_the_program(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"images": {"apii": "registry.example.com/nlp/api:2"}})
    code, out, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1 and out == ""
    assert "swarm:images.apii: prod.yaml has no service 'apii'" in err
    assert "Traceback" not in err


def test_plan_refuses_an_unknown_key_like_the_program(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"convergeTimout": "5m"})
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert "swarm:convergeTimout: unknown key (a typo is otherwise ignored silently); did you mean swarm:convergeTimeout?" in err


def test_plan_reports_yaml_mistakes_with_file_line_and_column_and_no_traceback(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, stack_text="version: '3.8'\nservices:\n  api:\n    image: x\n   deploy: {}\n")
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert "stacks/prod.yaml: is not valid YAML: line 5, column 4: " in err
    assert "Traceback" not in err and "<unicode string>" not in err and str(tmp_path) not in err


def test_every_table_line_fits_a_100_column_terminal(capsys):
    for stack in ("prod", "staging"):
        assert cli.main(["plan", "--stack", stack, "--width", "100"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(map(len, lines)) <= 100, max(lines, key=len)


def test_warnings_that_differ_only_in_the_service_are_printed_once():
    grouped = group_warnings([
        Problem("stacks/s.yaml", ("services", "a", "depends_on"), "ignored: x", WARNING, "a"),
        Problem("stacks/s.yaml", ("services", "b", "depends_on"), "ignored: x", WARNING, "b"),
        Problem("", ("a",), "would run 0 of 1 replicas if n-1 failed: only node", WARNING, "a"),
        Problem("", ("b",), "would run 0 of 1 replicas if n-1 failed: only node", WARNING, "b"),
        Problem("", ("c",), "would run 1 of 2 replicas if n-1 failed: only node", WARNING, "c"),
        config_warning("swarm:nodePools", "2 managers"),
    ])
    assert grouped == [
        "stacks/s.yaml: services.a.depends_on, services.b.depends_on: ignored: x",
        "a, b: would run 0 of 1 replicas if n-1 failed: only node",
        "c: would run 1 of 2 replicas if n-1 failed: only node",
        "swarm:nodePools: 2 managers",
    ]


def test_json_plan_has_the_figures_ci_compares(capsys):
    assert cli.main(["plan", "--stack", "prod", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["fits"], plan["ready_for_up"], plan["monthly_cost"], plan["droplets"]) == (True, False, 576.0, 5)
    assert [(p["name"], p["count"], p["monthly_cost"]) for p in plan["pools"]] == [
        ("manager", 1, 48.0), ("backoffice", 1, 24.0), ("ml", 3, 504.0)]
    assert {s["name"]: s["nodes"] for s in plan["services"]}["api"] == {"prod-ml-1": 1, "prod-ml-2": 1, "prod-ml-3": 1}


def test_markdown_plan_shows_the_cost_change_against_main(tmp_path, capsys):
    base = json.loads(json.dumps(cli.plan_of("prod")))
    base["monthly_cost"] -= 168.0
    base["pools"][2]["count"] = 2
    (tmp_path / "base.json").write_text(json.dumps(base))
    assert cli.main(["plan", "--stack", "prod", "--format", "markdown", "--base", str(tmp_path / "base.json")]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("### Plan for stack prod: 5 nodes in fra1")
    assert "**Cost change against main: +$168.00/month, $408.00 -> $576.00 (ml: 2 x m-4vcpu-32gb -> 3 x m-4vcpu-32gb)**" in markdown
    assert "| api | replicated | 3/3 | ok | prod-ml-1, prod-ml-2, prod-ml-3 |" in markdown


def test_markdown_plan_of_an_invalid_stack_is_a_document_saying_so(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"region": "Frankfurt"})
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "markdown")
    assert code == 1
    assert out.startswith("### Plan for stack `prod`: invalid, `pulumi preview` and `up` will refuse it")
    assert "swarm:region: 'Frankfurt' is not a DigitalOcean region slug" in out


# ---- the program agrees -------------------------------------------------------------------------


def without_secret_values():
    config = copy.deepcopy(stack_config("prod"))
    del config["secrets"]
    return config


def test_up_refuses_an_external_secret_without_a_value_and_registers_nothing():
    run = run_program("prod", without_secret_values())
    assert isinstance(run.error, pulumi.RunError)
    assert "swarm:secrets.db_password needs a value before up" in str(run.error)
    assert run.registrations == []


def test_a_secret_set_under_a_misspelled_name_is_pointed_out():
    config = without_secret_values()
    config["secrets"] = {"db_name": "n", "db_user": "u", "db_pasword": "p"}
    run = run_program("prod", config)
    assert "swarm:secrets.db_password needs a value before up" in str(run.error)
    assert "swarm:secrets.db_pasword is set: did you mean swarm:secrets.db_password?" in str(run.error)


def test_preview_runs_with_a_placeholder_for_a_secret_without_a_value():
    run = run_program("prod", without_secret_values(), preview=True)
    assert run.error is None
    secrets = [r for r in run.registrations if r.type == "docker:index/secret:Secret"]
    assert len(secrets) == 3


# ---- advice -------------------------------------------------------------------------------------


def test_a_database_on_a_volume_is_not_told_to_add_a_node():
    config = parse_config(stack_config("prod"), stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")
    report = check_capacity(config, load_stack_file(PROJECT_ROOT / "stacks" / "prod.yaml", stack="prod"))
    (database,) = [w for w in map(str, report.warnings) if w.startswith("database:")]
    assert "add a node" not in database
    assert "keeps its data on /mnt/postgresql/data, on the block-storage volume of pool manager" in database


@pytest.mark.parametrize("gpu_labels, warned", [({"type": "machine-learning"}, True), ({"type": "gpu"}, False)])
def test_a_gpu_pool_shared_with_services_that_reserve_no_gpu_gets_a_cost_warning(gpu_labels, warned):
    values = copy.deepcopy(stack_config("prod"))
    values["nodePools"]["gpu"] = {"role": "worker", "count": 2, "size": "gpu-h100x1-80gb", "gpu": True,
                                  "labels": gpu_labels}
    config = parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")
    report = check_capacity(config, load_stack_file(PROJECT_ROOT / "stacks" / "prod.yaml", stack="prod"))
    cost = [w for w in map(str, report.warnings) if w.startswith("pool gpu ")]
    if not warned:
        assert cost == []
        return
    (warning,) = cost
    assert warning.startswith("pool gpu (gpu-h100x1-80gb, $2,278.08/month per node) may run 1 service that reserve")
    assert "(api)" in warning and "node.labels.gpu != true" in warning


def test_warnings_about_services_with_dotted_names_are_grouped_by_the_whole_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("services:\n  api.v1: {image: a, depends_on: [db]}\n  api.v2: {image: a, depends_on: [db]}\n"
                    "  db: {image: d, links: [api.v1]}\n")
    spec = load_stack_file(path, stack="t")
    assert group_warnings(spec.warnings) == [
        f"{path}: services.api.v1.depends_on, services.api.v2.depends_on: ignored: swarm starts services in no "
        "particular order: make each service retry its dependencies",
        f"{path}: services.db.links: ignored: services on a shared network reach each other by service name",
    ]
