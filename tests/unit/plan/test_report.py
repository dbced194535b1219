"""`python -m swarm plan` runs every check the program runs before registering, and says so in
text that fits a terminal, in Markdown for a pull request, and in JSON for tools."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pulumi
import yaml

from swarm import __main__ as cli
from swarm.compose import load_stack_file
from swarm.config import load_stack_config_file
from swarm.diagnostics import WARNING, Problem, config_warning
from swarm.plan import check, group_warnings
from tests.pulumi_program import PROJECT_ROOT, run_program, stack_config
from tests.unit.capacity.capacity_stacks import FOUR_API_REPLICAS_ONE_PER_NODE


def write_project(root: Path, stack: str = "prod", config_changes: dict | None = None, stack_text: str | None = None):
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    for key, value in (config_changes or {}).items():
        document["config"][f"swarm:{key}"] = value
    (root / "Pulumi.yaml").write_text("name: swarm\n")
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    (root / "stacks").mkdir(exist_ok=True)
    (root / "stacks" / f"{stack}.yaml").write_text(stack_text or (PROJECT_ROOT / "stacks" / "prod.yaml").read_text())
    if stack_text is None or "x-model-catalogue" in stack_text:
        (root / "stacks" / "models").mkdir(exist_ok=True)
        (root / "stacks" / "models" / "prod.yaml").write_text((PROJECT_ROOT / "stacks/models/prod.yaml").read_text())


def run_plan(monkeypatch, capsys, root: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "PROJECT_ROOT", root)
    code = cli.main(["plan", "--stack", "prod", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_prints_pools_nodes_services_warnings_and_cost(capsys):
    assert cli.main(["plan", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Plan for stack prod: 5 nodes in fra1 (Pulumi.prod.yaml), 9 services (stacks/prod.yaml)"
    assert next(line for line in lines if line.startswith("ml ")).split() == [
        "ml", "worker", "3", "m-4vcpu-32gb", "-", "504.00", "type=machine-learning"]
    assert next(line for line in lines if line.startswith("manager ")).split() == [
        "manager", "manager", "1", "s-4vcpu-8gb", "100", "GiB", "58.00", "type=database"]  # volume included
    at = next(i for i, line in enumerate(lines) if line.startswith("prod-ml-3 "))
    assert (lines[at] + lines[at + 1]).split() == [
        "prod-ml-3", "m-4vcpu-32gb", "168.00", "2/3.9", "10.5/29.9", "GiB",
        "api,", "spacy-en-md,", "spacy-en-lg,", "spacy-de-lg,", "spacy-xx-ner"]
    assert any(line.split()[:4] == ["api", "replicated", "3/3", "ok"] for line in lines)
    assert any(line.split()[:4] == ["spacy-en-trf", "replicated", "2/2", "ok"] for line in lines)
    # the database on its volume is backed up (swarm:backups): only the lone backoffice node is left to act on
    assert "Warnings (1):" in out and "if prod-backoffice-1 failed" in out and "if prod-manager-1 failed" not in out
    assert ("Total: $614.00/month: 5 droplets $576.00, volumes $10.00, backups bucket $28.00 (list prices; traffic "
            "not included)") in " ".join(out.split())
    assert lines[-1] == "The stack fits; `pulumi preview` runs, plain `pulumi up` refuses it until 3 values are set."


def test_the_shipped_stacks_warn_about_nothing_their_own_files_cause():
    # Prod's one is for its user to act on (a second backoffice node); its database, on the
    # manager's volume, is backed up (swarm:backups), so nothing is left to say about it. Staging
    # runs on single nodes on purpose (swarm:nodeLossWarnings: false).
    prod = check(lambda: load_stack_config_file(PROJECT_ROOT, "prod"))
    assert [(w.where, w.message.split(":")[0]) for w in prod.warnings] == [
        ("backoffice", "would run 0 of 1 replicas if prod-backoffice-1 failed"),
    ]
    assert check(lambda: load_stack_config_file(PROJECT_ROOT, "staging")).warnings == ()


def test_plan_exits_non_zero_and_explains_an_unschedulable_stack(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, stack_text=FOUR_API_REPLICAS_ONE_PER_NODE)
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert any(line.split()[:4] == ["api", "replicated", "3/4", "FAILS"] for line in out.splitlines())
    assert "Cannot be scheduled (1):\n  - api: 3 of 4 replicas fit:" in out
    assert out.splitlines()[-1] == "The stack does NOT fit: `pulumi preview` and `up` will refuse it."


def test_plan_reports_config_and_stack_file_errors(tmp_path, monkeypatch, capsys):
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1 and "Pulumi.prod.yaml does not exist" in err
    write_project(tmp_path, stack_text="version: '3.8'\nservices:\n  api: {image: x, deploy: {replicas: -1}}\n")
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1 and "services.api.deploy.replicas" in err


def test_plan_says_what_up_refuses_when_an_external_secret_has_no_value(capsys):
    assert cli.main(["plan", "--stack", "prod"]) == 0  # the preview still runs
    out = capsys.readouterr().out
    assert "Needs a value before up (3):" in out
    assert "swarm:secrets.db_password: `pulumi config set --secret --path 'swarm:secrets.db_password' VALUE`" in out
    assert out.splitlines()[-1] == "The stack fits; `pulumi preview` runs, plain `pulumi up` refuses it until 3 values are set."


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
    assert "stacks/prod.yaml:5:4: is not valid YAML: did not find expected key" in err
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


def test_json_plan_has_the_figures_ci_compares_as_numbers(capsys):
    assert cli.main(["plan", "--stack", "prod", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["fits"], plan["ready_for_up"], plan["monthly_cost"], plan["droplets"]) == (True, False, 614.0, 5)
    assert plan["costs"] == {"droplets": 576.0, "volumes": 10.0, "load_balancer": 0.0, "backups_bucket": 28.0,
                             "alerting": 0.0}
    assert [(p["name"], p["count"], p["volume_gb"], p["monthly_cost"]) for p in plan["pools"]] == [
        ("manager", 1, 100, 58.0), ("backoffice", 1, None, 24.0), ("ml", 3, None, 504.0)]
    assert {s["name"]: s["nodes"] for s in plan["services"]}["api"] == {"prod-ml-1": 1, "prod-ml-2": 1, "prod-ml-3": 1}
    ml = next(node for node in plan["nodes"] if node["name"] == "prod-ml-3")
    assert ml["cpus"] == {"reserved": 2.0, "available": 3.9}
    assert ml["memory_bytes"]["reserved"] == 10.5 * 2**30 and isinstance(ml["memory_bytes"]["available"], int)


def test_json_plan_lists_every_warning_with_file_line_path_severity_and_fix(tmp_path, monkeypatch, capsys):
    stack = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text().replace("image: postgres:13", "image: postgres")
    write_project(tmp_path, stack_text=stack)
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "json")
    problems = json.loads(out)["problems"]
    image = next(p for p in problems if p["path"] == "services.database.image")
    line = next(n for n, text in enumerate(stack.splitlines(), 1) if "image: postgres" in text)
    assert image == {"file": "stacks/prod.yaml", "line": line, "column": 12, "path": "services.database.image",
                     "severity": "warning", "message": image["message"],
                     "fix": "pin a version tag or a digest (name@sha256:...) and change it to release"}
    capacity = next(p for p in problems if p["path"] == "services.backoffice")
    assert capacity["file"] == "stacks/prod.yaml" and capacity["fix"] == "add a node to pool backoffice"


def test_json_plan_of_an_invalid_stack_lists_its_problems_structured(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"region": "Frankfurt"})
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "json")
    plan = json.loads(out)
    assert code == 1 and plan["fits"] is False
    (problem,) = plan["problems"]  # once: not again for the backups that inherit the region
    assert (problem["file"], problem["path"], problem["severity"]) == ("Pulumi.prod.yaml", "swarm:region", "error")
    assert problem["line"] > 1 and problem["fix"] == "use one like 'fra1', 'ams3' or 'nyc3'"


def test_json_plan_carries_the_schedule_of_scheduled_jobs_and_backups(tmp_path, monkeypatch, capsys):
    stack = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text() + (
        "  report:\n    image: registry.example.com/nlp/report:1.0.0\n    x-schedule: '30 4 * * mon'\n"
        "    deploy:\n      placement:\n        constraints: [node.labels.type == cheap]\n")
    write_project(tmp_path, stack_text=stack, config_changes={"backups": {"bucket": "acme-prod-backups"}})
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "json")
    plan = json.loads(out)
    assert plan["schedule"] == [
        {"job": "prod_report", "kind": "service", "schedule": "30 4 * * mon", "timezone": "UTC"},
        {"job": "backup-database", "kind": "backup", "schedule": "0 3 * * *", "timezone": "UTC"},
        {"job": "backup-swarm-state", "kind": "backup", "schedule": "0 3 * * *", "timezone": "UTC"},
    ]
    assert plan["costs"]["backups_bucket"] == 28.0 and plan["monthly_cost"] == 614.0  # 14 x 100 GiB at most
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path)
    assert "Scheduled jobs (UTC): prod_report at '30 4 * * mon'; backup-database, backup-swarm-state at '0 3 * * *'" in " ".join(out.split())
    assert "backups bucket $28.00" in out


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


# ---- grouping -----------------------------------------------------------------------------------


def test_warnings_about_services_with_dotted_names_are_grouped_by_the_whole_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("services:\n  api.v1: {image: a:1, depends_on: [db]}\n  api.v2: {image: a:1, depends_on: [db]}\n"
                    "  db: {image: d:1, links: [api.v1]}\n")
    spec = load_stack_file(path, stack="t")
    assert group_warnings(spec.warnings) == [  # a group at its first member's key
        f"{path}:2:24: services.api.v1.depends_on, services.api.v2.depends_on: ignored: swarm starts services in "
        "no particular order: make each service retry its dependencies",
        f"{path}:4:20: services.db.links: ignored: services on a shared network reach each other by service name",
    ]


# ---- one pass -----------------------------------------------------------------------------------


def test_config_stack_file_and_cross_check_mistakes_all_show_in_one_run(tmp_path, monkeypatch, capsys):
    stack = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text().replace("image: postgres:13", "image: postgres:13\n    deplyo: {}")
    write_project(tmp_path, stack_text=stack, config_changes={
        "region": "Frankfurt",                                  # a config problem
        "images": {"apii": "registry.example.com/nlp/api:2"},   # a cross-check of config and stack file
    })
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert err.startswith("3 problems in Pulumi.prod.yaml and stacks/prod.yaml; nothing was deployed:")
    assert "swarm:backups" not in err  # prod's backups inherit the region: its problem is said once
    assert "swarm:region: 'Frankfurt' is not a DigitalOcean region slug" in err
    assert "services.database.deplyo: unknown key" in err
    assert "swarm:images.apii: prod.yaml has no service 'apii'" in err


def test_a_config_problem_does_not_rerun_the_checks_of_its_own_key(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"nodePools": {"manager": {"role": "manager", "count": 1, "size": "s-9vcpu"}}})
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1 and "swarm:nodePools.manager.size" in err
    assert "cannot be scheduled" not in err and "replicas fit" not in err  # no capacity check on a broken pool


def test_what_does_not_fit_shows_beside_the_other_mistakes(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, stack_text=FOUR_API_REPLICAS_ONE_PER_NODE, config_changes={"convergeTimout": "5m"})
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert "swarm:convergeTimout: unknown key" in err and "services.api: 3 of 4 replicas fit" in err


def test_the_program_refuses_every_mistake_of_one_pass_and_registers_nothing(tmp_path):
    stack = (PROJECT_ROOT / "stacks" / "prod.yaml").read_text().replace("x-model-catalogue: models/prod.yaml\n", "")
    (tmp_path / "prod.yaml").write_text(stack.replace("image: postgres:13", "image: postgres:13\n    deplyo: {}"))
    config = {**stack_config("prod"), "stackFile": str(tmp_path / "prod.yaml"), "region": "Frankfurt"}
    run = run_program("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert "swarm:region: 'Frankfurt'" in str(run.error) and "services.database.deplyo" in str(run.error)
    assert run.registrations == []


# ---- Pulumi.<stack>.yaml read as Pulumi reads it ------------------------------------------------


def test_a_duplicate_key_in_the_stack_config_is_an_error_at_its_line(tmp_path, monkeypatch, capsys):
    write_project(tmp_path)
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(path.read_text() + "  swarm:region: ams3\n")
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    line = len(path.read_text().splitlines())
    assert code == 1
    assert f"Pulumi.prod.yaml:{line}:3: is not valid YAML: mapping key 'swarm:region' is already defined at line" in err


def test_config_problems_name_the_line_of_their_key(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"region": "Frankfurt"})
    code, _, err = run_plan(monkeypatch, capsys, tmp_path)
    lines = (tmp_path / "Pulumi.prod.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.startswith("  swarm:region:"))
    assert code == 1 and f"Pulumi.prod.yaml:{line}:17: swarm:region: 'Frankfurt' is not" in err


def test_a_misspelt_stack_gets_did_you_mean_and_an_unknown_one_the_stacks_there_are(capsys):
    assert cli.main(["plan", "--stack", "devv"]) == 1
    err = capsys.readouterr().err
    assert "Pulumi.devv.yaml does not exist; create it with `pulumi stack init devv` (stacks here: prod, staging)" in err
    assert cli.main(["plan", "--stack", "prd"]) == 1
    assert "Pulumi.prd.yaml does not exist; did you mean --stack prod? (stacks here: prod, staging)" in capsys.readouterr().err


def test_dev_misspelt_as_devv_gets_did_you_mean_dev(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, stack="prod")
    (tmp_path / "Pulumi.dev.yaml").write_text((tmp_path / "Pulumi.prod.yaml").read_text())
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["plan", "--stack", "devv"]) == 1
    assert "Pulumi.devv.yaml does not exist; did you mean --stack dev? (stacks here: dev, prod)" in capsys.readouterr().err


def test_the_total_counts_the_load_balancer_of_swarm_ingress(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"ingress": {"pool": "backoffice", "domains": ["example.com"]}})
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "json")
    plan = json.loads(out)
    assert plan["costs"]["load_balancer"] == plan["ingress"]["monthly_cost"] == 12.0
    assert plan["monthly_cost"] == 576.0 + 10.0 + 12.0 + 28.0  # droplets, volume, load balancer, backups bucket
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path)
    assert ("Total: $626.00/month: 5 droplets $576.00, volumes $10.00, load balancer $12.00, backups bucket $28.00 "
            "(list prices;") in " ".join(out.split())


def test_the_plan_shows_what_alerts_watch_where_they_go_and_their_cost(tmp_path, monkeypatch, capsys):
    from tests.unit.ingress.test_routes import INGRESS, routed_stack

    routed = routed_stack(tmp_path).read_text()
    alerts = {"emails": ["ops@example.com"], "webhookUrl": {"secure": "v1:ENCRYPTED-WEBHOOK"}, "window": "5m"}
    write_project(tmp_path, config_changes={"ingress": INGRESS, "alerts": alerts}, stack_text=routed)
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "json")
    plan = json.loads(out)
    assert plan["alerts"]["emails"] == ["ops@example.com"] and plan["alerts"]["webhook"] == "set"
    assert len(plan["alerts"]["uptime_checks"]) == 2  # api.example.com, admin.example.com
    assert plan["costs"]["alerting"] == plan["alerts"]["monthly_cost"] == 2.0  # $1 per uptime check
    assert plan["monthly_cost"] == 576.0 + 10.0 + 12.0 + 28.0 + 2.0
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path)
    text = " ".join(out.split())
    assert ("Alerts: droplets tagged swarm-prod (CPU > 90%, memory > 90%, disk > 85% for 5m); 2 routed hosts over "
            "HTTPS (down, slower than 5000 ms, certificate within 14 days); to ops@example.com, webhook set: "
            "$2.00/month") in text
    assert "alerting $2.00" in text
    code, markdown, _ = run_plan(monkeypatch, capsys, tmp_path, "--format", "markdown")
    assert "webhook set" in markdown
    assert "ENCRYPTED-WEBHOOK" not in out + markdown + json.dumps(plan)


def test_a_stack_without_alerts_says_nobody_is_told(capsys):
    assert cli.main(["plan", "--stack", "staging"]) == 0
    assert "Alerts: none (swarm:alerts is not set: nobody is told when a node, a disk or a routed host fails)" in (
        " ".join(capsys.readouterr().out.split()))
