"""`python -m swarm plan --base main.json` says what a pull request changes, as a reviewer needs
it: what is added, removed and changed, which droplets are replaced (rolling, or an outage) and
which are resized in place, and the cost difference last."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from swarm import __main__ as cli
from tests.pulumi_program import PROJECT_ROOT
from tests.unit.plan.test_report import run_plan, write_project


def main_plan() -> dict:
    return json.loads(json.dumps(cli.plan_of("prod")))


def pools_changed(root: Path, change) -> None:
    """A project like the shipped one whose prod pools are edited by `change(pools)`."""
    write_project(root)
    path = root / "Pulumi.prod.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["config"]["swarm:nodePools"])
    path.write_text(yaml.safe_dump(document))


def changes(monkeypatch, capsys, root: Path, base: dict, fmt: str = "text") -> tuple[int, str]:
    (root / "base.json").write_text(json.dumps(base))
    code, out, _ = run_plan(monkeypatch, capsys, root, "--format", fmt, "--base", str(root / "base.json"))
    return code, out


def bullets(out: str) -> list[str]:
    """The text plan's "Changes against main" items, each on one line."""
    section = out.split("Changes against main", 1)[1].split("\n\n", 1)[0]
    return [" ".join(item.split()) for item in section.split("\n  - ")[1:]]


def test_an_unchanged_stack_says_so_and_costs_nothing_more(tmp_path, monkeypatch, capsys):
    write_project(tmp_path)
    code, out = changes(monkeypatch, capsys, tmp_path, main_plan())
    assert code == 0
    assert bullets(out) == ["no change to pools, nodes, services or routes",
                            "cost change: +$0.00/month, $614.00 -> $614.00"]


def test_a_worker_image_change_replaces_its_droplets_one_at_a_time(tmp_path, monkeypatch, capsys):
    pools_changed(tmp_path, lambda pools: pools["ml"].update(image="ubuntu-22-04-x64"))
    _, out = changes(monkeypatch, capsys, tmp_path, main_plan())
    found = bullets(out)
    assert found[0] == (
        "REPLACED prod-ml-1 (image ubuntu-24-04-x64 -> ubuntu-22-04-x64): rolling: the successor joins first, "
        "then the old node retires once its tasks (api, spacy-en-sm, spacy-en-md, spacy-en-trf, spacy-de-lg) run "
        "elsewhere (1 of pool ml at a time)")
    assert [line.split(" (")[0] for line in found[:3]] == ["REPLACED prod-ml-1", "REPLACED prod-ml-2", "REPLACED prod-ml-3"]
    assert "pool ml: image ubuntu-24-04-x64 -> ubuntu-22-04-x64" in found
    assert found[-1] == "cost change: +$0.00/month, $614.00 -> $614.00"


def test_replacing_the_lone_manager_that_holds_the_database_volume_is_an_outage(tmp_path, monkeypatch, capsys):
    pools_changed(tmp_path, lambda pools: pools["manager"].update(image="ubuntu-22-04-x64"))
    _, out = changes(monkeypatch, capsys, tmp_path, main_plan(), "json")
    (replaced,) = json.loads(out)["changes"]["nodes"]["replaced"]
    assert replaced["name"] == "prod-manager-1" and replaced["outage"] is True
    assert replaced["how"] == (
        "outage: the old droplet goes first and its volume (/mnt/postgresql) moves to the successor; its tasks "
        "(database) down until the successor runs it (the lone manager hands the swarm to a worker standing in "
        "meanwhile)")


def test_a_manager_of_a_new_size_is_resized_in_place_and_a_worker_replaced(tmp_path, monkeypatch, capsys):
    def bigger(pools):
        pools["manager"]["size"] = "s-8vcpu-16gb"
        pools["backoffice"]["size"] = "s-4vcpu-8gb"

    pools_changed(tmp_path, bigger)
    _, out = changes(monkeypatch, capsys, tmp_path, main_plan())
    found = bullets(out)
    assert ("REPLACED prod-backoffice-1 (size s-2vcpu-4gb -> s-4vcpu-8gb): rolling: the successor joins first, then "
            "the old node retires once its tasks (backoffice) run elsewhere (1 of pool backoffice at a time)") in found
    assert ("resized prod-manager-1 s-4vcpu-8gb -> s-8vcpu-16gb, in place: the droplet is powered off while "
            "DigitalOcean resizes it, its tasks (database) down meanwhile; the swarm has no manager meanwhile "
            "(running tasks elsewhere keep running)") in found
    assert found[-1] == "cost change: +$72.00/month, $614.00 -> $686.00 (droplets +$72.00)"


def test_user_data_ssh_key_and_vpc_changes_replace_droplets_too():
    from swarm.plan.diff import compare

    base, plan = main_plan(), main_plan()
    node = next(n for n in plan["nodes"] if n["name"] == "prod-backoffice-1")
    node["replaced_on_change"].update(user_data="0" * 16, ssh_key="AAAAnewkey", vpc="10.120.0.0/20")
    (replaced,) = compare(plan, base)["nodes"]["replaced"]
    assert replaced["because"] == ["user data", "SSH key generated -> AAAAnewkey", "VPC 10.110.0.0/20 -> 10.120.0.0/20"]


def test_added_and_removed_services_pools_nodes_and_routes_are_listed_then_the_cost(tmp_path, monkeypatch, capsys):
    base = main_plan()
    base["pools"].append({**copy.deepcopy(base["pools"][1]), "name": "old"})
    base["nodes"].append({**copy.deepcopy(base["nodes"][1]), "name": "prod-old-1", "pool": "old"})
    base["services"].append({**copy.deepcopy(base["services"][0]), "name": "legacy"})
    base["services"][1]["image"] = "registry.example.com/nlp/api:0.9.0"
    base["ingress"] = {"routes": [{"host": "api.example.com", "path": "/", "service": "api", "port": 8000}]}
    base["costs"]["droplets"] += 24.0
    base["monthly_cost"] += 24.0
    write_project(tmp_path)
    _, out = changes(monkeypatch, capsys, tmp_path, base)
    assert bullets(out) == [
        "pool removed: old",
        "node removed: prod-old-1",
        "service removed: legacy",
        "service api: image registry.example.com/nlp/api:0.9.0 -> registry.example.com/nlp/api:1.0.0",
        "route removed: api.example.com",
        "cost change: -$24.00/month, $638.00 -> $614.00 (droplets -$24.00)",
    ]


def test_markdown_changes_end_with_the_cost_in_bold(tmp_path, monkeypatch, capsys):
    pools_changed(tmp_path, lambda pools: pools["ml"].update(count=4))
    _, markdown = changes(monkeypatch, capsys, tmp_path, main_plan(), "markdown")
    assert "**Changes against main**\n\n- pool ml: count 3 -> 4\n- node added: prod-ml-4\n" in markdown
    assert "- **cost change: +$168.00/month, $614.00 -> $782.00 (droplets +$168.00)**" in markdown


def test_a_base_that_is_no_plan_is_said_and_the_plan_still_runs(tmp_path, monkeypatch, capsys):
    write_project(tmp_path)
    (tmp_path / "base.json").write_text("not json")
    code, out, _ = run_plan(monkeypatch, capsys, tmp_path, "--base", str(tmp_path / "base.json"))
    assert code == 0
    assert bullets(out) == [f"main's plan cannot be compared ({tmp_path / 'base.json'} holds no JSON plan)",
                            "cost change: unknown (main's plan has no figures)"]


def test_main_plan_from_before_the_comparison_still_gives_the_cost_change(tmp_path, monkeypatch, capsys):
    old = {key: value for key, value in main_plan().items() if key not in ("costs",)}
    old["monthly_cost"] = 576.0
    for node in old["nodes"]:
        del node["replaced_on_change"]
    write_project(tmp_path)
    _, out = changes(monkeypatch, capsys, tmp_path, old)
    assert bullets(out) == ["replacements unknown: main's plan predates the droplets' replacement inputs",
                            "cost change: +$38.00/month, $576.00 -> $614.00"]


def test_the_shipped_stacks_compare_with_themselves_as_unchanged():
    from swarm.plan.diff import change_lines, compare

    for stack in ("prod", "staging"):
        plan = cli.plan_of(stack, PROJECT_ROOT)
        assert change_lines(compare(plan, json.loads(json.dumps(plan))))[0] == "no change to pools, nodes, services or routes"


def test_an_invalid_stack_with_a_base_is_reported_invalid_in_every_format(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, config_changes={"region": "Frankfurt"})
    for fmt in ("text", "markdown", "json"):
        code, out = changes(monkeypatch, capsys, tmp_path, main_plan(), fmt)
        assert code == 1 and "changes" not in (json.loads(out) if fmt == "json" else {})
