"""The capacity and placement check: each scheduling rule, the reference stacks, the plan command
and the preview that refuses an unschedulable stack."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from swarm import __main__ as cli
from swarm.capacity import (
    NodeCapacity,
    check_capacity,
    cluster_nodes,
    constraint_matches,
    schedule,
)
from swarm.compose import StackSpec, load_stack_file, parse_constraint
from swarm.config import ClusterConfig, load_stack_config_file, parse_config
from swarm.sizes import GIB, SIZES
from tests.pulumi_program import PROJECT_ROOT, reference_stack_text, run_program, stack_config

PROD_STACK = reference_stack_text()
ML_POOL = {"role": "worker", "count": 3, "size": "m-4vcpu-32gb", "labels": {"type": "machine-learning"}}
FOUR_API_REPLICAS_ONE_PER_NODE = PROD_STACK.replace(
    "      replicas: 3\n      placement:\n", "      replicas: 4\n      placement:\n        max_replicas_per_node: 1\n"
)
MANAGER_POOL = {"role": "manager", "count": 1, "size": "s-2vcpu-4gb", "labels": {"type": "database"}}


def prod_config() -> ClusterConfig:
    return load_stack_config_file(PROJECT_ROOT, "prod")


def cluster(pools: dict[str, Any]) -> ClusterConfig:
    values = {"region": "fra1", "adminCidrs": ["203.0.113.0/24"], "nodePools": pools,
              "stackFile": str(PROJECT_ROOT / "stacks" / "prod.yaml")}
    return parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")


def stack(tmp_path: Path, text: str) -> StackSpec:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return load_stack_file(path, stack="prod")


def services(tmp_path: Path, definitions: dict[str, Any]) -> StackSpec:
    return stack(tmp_path, yaml.safe_dump({"version": "3.8", "services": definitions}, sort_keys=False))


def service(replicas: int | None = 1, constraints: tuple[str, ...] = (), cpus: str | None = None,
            memory: str | None = None, gpus: int = 0, max_per_node: int | None = None, **deploy: Any) -> dict:
    """A Compose service definition with the placement and reservations given."""
    reservations: dict[str, Any] = {}
    if cpus:
        reservations["cpus"] = cpus
    if memory:
        reservations["memory"] = memory
    if gpus:
        reservations["generic_resources"] = [{"discrete_resource_spec": {"kind": "GPU", "value": gpus}}]
    placement: dict[str, Any] = {"constraints": list(constraints)} if constraints else {}
    if max_per_node:
        placement["max_replicas_per_node"] = max_per_node
    section: dict[str, Any] = {**deploy}
    if replicas is not None:
        section["replicas"] = replicas
    if placement:
        section["placement"] = placement
    if reservations:
        section["resources"] = {"reservations": reservations}
    return {"image": "registry.example.com/app:1", "deploy": section}


def node(name: str, cpus: float = 4, memory_gib: float = 8, pool: str = "pool", role: str = "worker",
         labels: dict[str, str] | None = None, gpus: int = 0) -> NodeCapacity:
    return NodeCapacity(name=name, pool=pool, role=role, labels=labels or {}, size="test-size",
                        nano_cpus=int(cpus * 1e9), memory_bytes=int(memory_gib * GIB),
                        generic_resources={"GPU": gpus} if gpus else {})


def by_name(report):
    return {placement.service: placement for placement in report.services}


# ---- the reference stacks ---------------------------------------------------------------------


def test_reference_prod_stack_fits_one_api_task_per_ml_node():
    report = check_capacity(prod_config(), load_stack_file(PROJECT_ROOT / "stacks" / "prod.yaml", stack="prod"))
    assert report.schedulable and report.failures == ()
    placements = by_name(report)
    assert dict(placements["api"].nodes) == {"prod-ml-1": 1, "prod-ml-2": 1, "prod-ml-3": 1}
    assert dict(placements["database"].nodes) == {"prod-manager-1": 1}
    assert dict(placements["backoffice"].nodes) == {"prod-backoffice-1": 1}
    loads = {load.node.name: load for load in report.nodes}
    assert loads["prod-ml-2"].reserved_nano_cpus == 500_000_000
    assert loads["prod-ml-2"].reserved_memory_bytes == 5 * GIB
    assert loads["prod-ml-2"].node.memory_bytes == SIZES["m-4vcpu-32gb"].allocatable_memory_bytes
    assert loads["prod-manager-1"].tasks == {"database": 1}
    assert report.monthly_cost == 576
    # Three API replicas survive the loss of an ML node; the single-node services do not.
    assert not placements["api"].warnings
    assert "if prod-backoffice-1 failed" in placements["backoffice"].warnings[0]
    assert "if prod-manager-1 failed" in placements["database"].warnings[0]


def test_reference_staging_stack_fits():
    config = load_stack_config_file(PROJECT_ROOT, "staging")
    report = check_capacity(config, load_stack_file(config.stack_file, stack="staging"))
    assert report.schedulable
    assert sum(p.placed for p in report.services) == sum(p.wanted for p in report.services) == 3


def test_four_api_replicas_at_one_per_node_on_three_nodes_fail_with_the_fix(tmp_path):
    report = check_capacity(prod_config(), stack(tmp_path, FOUR_API_REPLICAS_ONE_PER_NODE))
    assert not report.schedulable
    (failure,) = report.failures
    assert failure.startswith("api: 3 of 4 replicas fit: 4 replicas with max_replicas_per_node: 1 on 3 eligible nodes")
    assert "lower replicas to 3, raise max_replicas_per_node to 2 or add 1 node to pool ml" in failure
    assert by_name(report)["api"].placed == 3


def test_reservation_larger_than_the_ml_droplet_fails_naming_the_size(tmp_path):
    text = PROD_STACK.replace("memory: 5G", "memory: 40G").replace("memory: 10G", "memory: 48G")
    report = check_capacity(prod_config(), stack(tmp_path, text))
    (failure,) = report.failures
    assert failure.startswith("api: 0 of 3 replicas fit: reservation of 40 GiB exceeds what m-4vcpu-32gb offers")
    assert "(29.9 GiB available after the OS allowance)" in failure
    assert "use a larger size for pool ml" in failure


def test_cpu_reservation_larger_than_the_droplet_fails(tmp_path):
    report = schedule([node("a", cpus=1.9)], services(tmp_path, {"big": service(cpus="2")}).services.values())
    assert report.failures == (
        (
            "big: 0 of 1 replicas fit: reservation of 2 vCPU exceeds what test-size offers (1.9 vCPU available "
            "after the OS allowance); lower deploy.resources.reservations.cpus or use a larger size for pool pool"
        ),
    )


def test_constraint_on_a_label_no_pool_has_fails_naming_it_and_the_labels(tmp_path):
    report = check_capacity(prod_config(), stack(tmp_path, PROD_STACK.replace("type == cheap", "type == gpu")))
    (failure,) = report.failures
    assert failure == (
        "backoffice: 0 of 1 replicas fit: no node matches node.labels.type==gpu (the pools' labels: "
        "manager {type=database}, backoffice {type=cheap}, ml {type=machine-learning}); add `type: gpu` to a "
        "pool's labels (swarm:nodePools.<pool>.labels) or change the constraint"
    )


def test_a_misspelled_label_value_or_key_in_a_constraint_gets_a_did_you_mean(tmp_path):
    typo = stack(tmp_path, PROD_STACK.replace("type == machine-learning", "type == machine-learnig"))
    (failure,) = check_capacity(prod_config(), typo).failures
    assert failure.startswith("api: 0 of 3 replicas fit: no node matches node.labels.type==machine-learnig")
    assert failure.endswith("did you mean node.labels.type == machine-learning?")
    key_typo = stack(tmp_path, PROD_STACK.replace("labels.type == cheap", "labels.tpye == cheap"))
    (failure,) = check_capacity(prod_config(), key_typo).failures
    assert failure.endswith("did you mean node.labels.type?")


def test_constraints_that_only_fail_together_are_named_with_what_each_matches(tmp_path):
    report = check_capacity(prod_config(), stack(tmp_path, PROD_STACK.replace("node.role == manager", "node.role == worker")))
    (failure,) = report.failures
    assert "database: 0 of 1 replicas fit: no node matches all of its constraints together" in failure
    assert "node.role==worker matches pools backoffice, ml; node.labels.type==database matches pool manager" in failure


# ---- constraints --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "matches"),
    [
        ("node.role==manager", ["m-1"]),
        ("node.role!=manager", ["w-1", "w-2"]),
        ("node.labels.zone==A", ["w-1"]),  # values compare case-insensitively, as swarm does
        ("node.labels.zone!=a", ["m-1", "w-2"]),  # a missing label is "", which differs from "a"
        ("node.labels.Zone==a", []),  # label keys are case-sensitive
        ("node.hostname==w-2", ["w-2"]),
        ("node.platform.os==linux", ["m-1", "w-1", "w-2"]),
        ("node.platform.arch==x86_64", ["m-1", "w-1", "w-2"]),
        ("node.platform.arch==amd64", []),  # swarm reports x86_64: this matches nothing there either
        ("engine.labels.tier==gold", []),  # the program sets no daemon labels
        ("engine.labels.tier!=gold", ["m-1", "w-1", "w-2"]),
        ("node.id==abc123", []),  # unknowable before the nodes join
        ("node.id!=abc123", ["m-1", "w-1", "w-2"]),
    ],
)
def test_constraint_semantics_follow_swarmkit(constraint, matches):
    nodes = [node("m-1", role="manager"), node("w-1", labels={"zone": "a"}), node("w-2", labels={"zone": "b"})]
    parsed = parse_constraint(constraint)
    assert [n.name for n in nodes if constraint_matches(parsed, n)] == matches


def test_node_id_constraint_fails_with_advice(tmp_path):
    report = schedule([node("a")], services(tmp_path, {"pinned": service(constraints=("node.id==abc",))}).services.values())
    (failure,) = report.failures
    assert "no node matches node.id==abc (node IDs are assigned when nodes join" in failure
    assert "constrain on node.hostname or a node label instead" in failure


def test_hostname_constraint_uses_the_droplet_name(tmp_path):
    spec = services(tmp_path, {"pinned": service(constraints=("node.hostname==prod-ml-2",))})
    assert dict(by_name(check_capacity(prod_config(), spec))["pinned"].nodes) == {"prod-ml-2": 1}


# ---- spread and competition ----------------------------------------------------------------------


def test_replicas_spread_evenly_in_node_order(tmp_path):
    report = schedule([node("a"), node("b"), node("c")], services(tmp_path, {"web": service(5)}).services.values())
    assert dict(by_name(report)["web"].nodes) == {"a": 2, "b": 2, "c": 1}


def test_ties_in_the_service_count_go_to_the_node_with_fewer_tasks(tmp_path):
    spec = services(tmp_path, {"first": service(1), "second": service(1), "third": service(2)})
    placements = by_name(schedule([node("a"), node("b")], spec.services.values()))
    assert dict(placements["first"].nodes) == {"a": 1}
    assert dict(placements["second"].nodes) == {"b": 1}
    assert dict(placements["third"].nodes) == {"a": 1, "b": 1}


def test_reservations_add_up_per_node(tmp_path):
    spec = services(tmp_path, {"worker": service(5, cpus="1.5", memory="1G")})
    report = schedule([node("a", cpus=3.9), node("b", cpus=3.9)], spec.services.values())
    (failure,) = report.failures
    assert failure.startswith("worker: 4 of 5 replicas fit: the eligible nodes are full: each task needs 1.5 vCPU, 1 GiB;")
    assert "a (0.9 vCPU, 6 GiB), b (0.9 vCPU, 6 GiB)" in failure
    assert {load.node.name: load.reserved_nano_cpus for load in report.nodes} == {"a": 3 * 10**9, "b": 3 * 10**9}


def test_services_are_placed_in_stack_file_order_and_the_later_one_is_named_short(tmp_path):
    spec = services(tmp_path, {"cache": service(1, memory="6G"), "search": service(1, memory="6G")})
    report = schedule([node("a", memory_gib=8)], spec.services.values())
    assert by_name(report)["cache"].failure is None
    (failure,) = report.failures
    assert failure.startswith("search: 0 of 1 replicas fit: the eligible nodes are full")
    assert "left after cache: a (4 vCPU, 2 GiB)" in failure


def test_max_replicas_per_node_with_room_to_spare(tmp_path):
    spec = services(tmp_path, {"api": service(4, max_per_node=2)})
    assert dict(by_name(schedule([node("a"), node("b")], spec.services.values()))["api"].nodes) == {"a": 2, "b": 2}


def test_host_mode_ports_allow_one_task_per_node(tmp_path):
    definition = service(3) | {"ports": [{"target": 80, "published": 80, "mode": "host"}]}
    report = schedule([node("a"), node("b")], services(tmp_path, {"edge": definition}).services.values())
    (failure,) = report.failures
    assert failure.startswith("edge: 2 of 3 replicas fit: 3 replicas with port 80/tcp published in host mode")
    assert "publish the port in ingress mode" in failure


def test_a_host_port_taken_by_another_service_blocks_the_node(tmp_path):
    first = service(1, constraints=("node.hostname==a",)) | {"ports": [{"target": 80, "published": 80, "mode": "host"}]}
    second = service(None, mode="global") | {"ports": [{"target": 8080, "published": 80, "mode": "host"}]}
    report = schedule([node("a"), node("b")], services(tmp_path, {"proxy": first, "edge": second}).services.values())
    (failure,) = report.failures
    assert failure.startswith("edge: runs on 1 of the 2 nodes matching its constraints; no room on a:")
    assert "a (port 80/tcp taken in host mode by proxy)" in failure


# ---- global services ------------------------------------------------------------------------------


def test_global_service_runs_on_every_matching_node(tmp_path):
    spec = services(tmp_path, {"agent": service(None, ("node.role==worker",), cpus="0.1", mode="global")})
    report = check_capacity(prod_config(), spec)
    agent = by_name(report)["agent"]
    assert (agent.wanted, agent.placed) == (4, 4)
    assert set(agent.nodes) == {"prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3"}
    assert not agent.warnings  # a global task dies with its node: nothing to re-place


def test_global_service_fails_on_the_nodes_too_small_for_it(tmp_path):
    spec = services(tmp_path, {"agent": service(None, memory="8G", mode="global")})
    report = check_capacity(prod_config(), spec)
    (failure,) = report.failures
    assert failure.startswith("agent: runs on 3 of the 5 nodes matching its constraints; no room on prod-manager-1, "
                              "prod-backoffice-1: reservation of 8 GiB exceeds what s-4vcpu-8gb offers (7.1 GiB")
    assert "reservation of 8 GiB exceeds what s-2vcpu-4gb offers (3.3 GiB available after the OS allowance)" in failure
    assert set(by_name(report)["agent"].nodes) == {"prod-ml-1", "prod-ml-2", "prod-ml-3"}


def test_global_service_without_a_matching_node_fails(tmp_path):
    spec = services(tmp_path, {"agent": service(None, ("node.labels.gpu==true",), mode="global")})
    (failure,) = check_capacity(prod_config(), spec).failures
    assert failure.startswith("agent: a global service with no node to run on: no node matches node.labels.gpu==true")


# ---- GPUs ------------------------------------------------------------------------------------------


def test_gpu_pool_nodes_offer_their_gpus():
    config = cluster({"manager": MANAGER_POOL,
                      "gpu": {"role": "worker", "count": 2, "size": "gpu-h100x1-80gb", "gpu": True}})
    assert [dict(n.generic_resources) for n in cluster_nodes(config)] == [{}, {"GPU": 1}, {"GPU": 1}]


def test_gpu_reservations_fit_one_task_per_gpu(tmp_path):
    config = cluster({"manager": MANAGER_POOL,
                      "gpu": {"role": "worker", "count": 2, "size": "gpu-h100x1-80gb", "gpu": True,
                              "labels": {"gpu": "true"}}})
    spec = services(tmp_path, {"inference": service(3, ("node.labels.gpu==true",), gpus=1)})
    report = check_capacity(config, spec)
    (failure,) = report.failures
    assert failure.startswith("inference: 2 of 3 replicas fit: the eligible nodes are full: each task needs 1 GPU")
    assert "prod-gpu-1 (19.9 vCPU" in failure and "0 GPU)" in failure
    assert {load.node.name: dict(load.reserved_generic) for load in report.nodes if load.node.pool == "gpu"} == {
        "prod-gpu-1": {"GPU": 1}, "prod-gpu-2": {"GPU": 1}}


def test_gpu_reservation_on_a_pool_without_gpus_fails_with_the_fix(tmp_path):
    spec = services(tmp_path, {"inference": service(1, ("node.labels.type==machine-learning",), gpus=1)})
    (failure,) = check_capacity(prod_config(), spec).failures
    assert failure == (
        "inference: 0 of 1 replicas fit: reservation of 1 GPU exceeds what m-4vcpu-32gb offers (0); give pool ml "
        "a GPU size (gpu-*, `gpu: true`) or constrain the service to a GPU pool"
    )


# ---- warnings -----------------------------------------------------------------------------------


def test_a_service_that_cannot_lose_its_busiest_node_is_warned_about(tmp_path):
    spec = services(tmp_path, {"api": service(5, ("node.labels.type==machine-learning",), memory="12G",
                                              update_config={"order": "stop-first"})})
    api = by_name(check_capacity(prod_config(), spec))["api"]
    assert api.failure is None and dict(api.nodes) == {"prod-ml-1": 2, "prod-ml-2": 2, "prod-ml-3": 1}
    (warning,) = api.warnings
    assert warning.startswith("would run 4 of 5 replicas if prod-ml-1 failed: the eligible nodes are full: "
                              "each task needs 12 GiB; left: prod-ml-2 (3.9 vCPU, 5.9 GiB)")


def test_replicas_with_room_elsewhere_survive_the_loss_of_a_node(tmp_path):
    spec = services(tmp_path, {"api": service(4, ("node.labels.type==machine-learning",), memory="12G")})
    assert by_name(check_capacity(prod_config(), spec))["api"].warnings == ()


def test_start_first_update_without_room_for_one_more_task_warns(tmp_path):
    tight = service(6, ("node.labels.type==machine-learning",), memory="12G")
    warnings = by_name(check_capacity(prod_config(), services(tmp_path, {"api": tight})))["api"].warnings
    assert any(w.startswith("is updated start-first") and "set deploy.update_config.order: stop-first" in w
               for w in warnings)
    stop_first = tight | {"deploy": tight["deploy"] | {"update_config": {"order": "stop-first"}}}
    warnings = by_name(check_capacity(prod_config(), services(tmp_path, {"api": stop_first})))["api"].warnings
    assert not any("start-first" in w for w in warnings)


# ---- the preview ------------------------------------------------------------------------------


def test_unschedulable_stack_fails_the_preview_and_registers_nothing(tmp_path):
    path = tmp_path / "prod.yaml"
    path.write_text(PROD_STACK.replace("memory: 5G", "memory: 40G").replace("memory: 10G", "memory: 48G"))
    config = copy.deepcopy(stack_config("prod")) | {"stackFile": str(path)}
    run = run_program("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert str(run.error).startswith("prod.yaml: 1 service cannot be scheduled on the stack's nodes")
    assert "api: 0 of 3 replicas fit: reservation of 40 GiB exceeds what m-4vcpu-32gb offers" in str(run.error)
    assert run.registrations == []


# ---- the plan command ---------------------------------------------------------------------------------


def test_plan_prints_pools_nodes_services_warnings_and_cost(capsys):
    assert cli.main(["plan", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Plan for stack prod: 5 nodes in fra1 (Pulumi.prod.yaml), 9 services (stacks/prod.yaml)"
    assert next(line for line in lines if line.startswith("ml ")).split() == [
        "ml", "worker", "3", "m-4vcpu-32gb", "504.00", "type=machine-learning"]
    at = next(i for i, line in enumerate(lines) if line.startswith("prod-ml-3 "))
    assert (lines[at] + lines[at + 1]).split() == [
        "prod-ml-3", "m-4vcpu-32gb", "168.00", "2/3.9", "10.5/29.9", "GiB",
        "api,", "spacy-en-md,", "spacy-en-lg,", "spacy-de-lg,", "spacy-xx-ner"]
    assert any(line.split()[:4] == ["api", "replicated", "3/3", "ok"] for line in lines)
    assert any(line.split()[:4] == ["spacy-en-trf", "replicated", "2/2", "ok"] for line in lines)
    assert "Warnings (3):" in out and "if prod-manager-1 failed" in out
    assert "Total: $576.00/month for 5 droplets" in out
    assert lines[-1] == "The stack fits; `pulumi preview` runs, `up` refuses it until 3 values are set."


def write_project(root: Path, stack_text: str) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    config["config"]["swarm:stackFile"] = "stack.yaml"
    (root / "Pulumi.prod.yaml").write_text(yaml.safe_dump(config))
    (root / "stack.yaml").write_text(stack_text)


def test_plan_exits_non_zero_and_explains_an_unschedulable_stack(tmp_path, monkeypatch, capsys):
    write_project(tmp_path, FOUR_API_REPLICAS_ONE_PER_NODE)
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["plan", "--stack", "prod"]) == 1
    out = capsys.readouterr().out
    assert any(line.split()[:4] == ["api", "replicated", "3/4", "FAILS"] for line in out.splitlines())
    assert "Cannot be scheduled (1):\n  - api: 3 of 4 replicas fit:" in out
    assert out.splitlines()[-1] == "The stack does NOT fit: `pulumi preview` and `up` will refuse it."


def test_plan_reports_config_and_stack_file_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["plan", "--stack", "prod"]) == 1
    assert "Pulumi.prod.yaml does not exist" in capsys.readouterr().err
    write_project(tmp_path, "version: '3.8'\nservices:\n  api: {image: x, deploy: {replicas: -1}}\n")
    assert cli.main(["plan", "--stack", "prod"]) == 1
    assert "services.api.deploy.replicas" in capsys.readouterr().err
