"""The capacity check (swarm/capacity/check.py): the reference stacks fit, services are placed in
stack-file order, what losing a node or a start-first update would leave short is a warning,
and a preview refuses an unschedulable stack."""

from __future__ import annotations

import copy

import pulumi

from swarm.capacity import check_capacity, schedule
from swarm.compose import load_stack_file
from swarm.config import load_stack_config_file, parse_config
from swarm.config.sizes import GIB, SIZES
from tests.pulumi_program import PROJECT_ROOT, run_program, stack_config
from tests.unit.capacity.capacity_stacks import PROD_STACK, by_name, node, prod_config, service, services

# ---- the reference stacks --------------------------------------------------------------------


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


def test_services_are_placed_in_stack_file_order_and_the_later_one_is_named_short(tmp_path):
    spec = services(tmp_path, {"cache": service(1, memory="6G"), "search": service(1, memory="6G")})
    report = schedule([node("a", memory_gib=8)], spec.services.values())
    assert by_name(report)["cache"].failure is None
    (failure,) = report.failures
    assert failure.startswith("search: 0 of 1 replicas fit: the eligible nodes are full")
    assert "left after cache: a (4 vCPU, 2 GiB)" in failure


# ---- what if ---------------------------------------------------------------------------------


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


def test_a_database_on_a_volume_is_not_told_to_add_a_node():
    config = parse_config(stack_config("prod"), stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")
    report = check_capacity(config, load_stack_file(PROJECT_ROOT / "stacks" / "prod.yaml", stack="prod"))
    (database,) = [w for w in map(str, report.warnings) if w.startswith("database:")]
    assert "add a node" not in database
    assert "keeps its data on /mnt/postgresql/data, on the block-storage volume of pool manager" in database


# ---- the preview -----------------------------------------------------------------------------


def test_unschedulable_stack_fails_the_preview_and_registers_nothing(tmp_path):
    path = tmp_path / "prod.yaml"
    path.write_text(PROD_STACK.replace("memory: 5G", "memory: 40G").replace("memory: 10G", "memory: 48G"))
    config = copy.deepcopy(stack_config("prod")) | {"stackFile": str(path)}
    run = run_program("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert str(run.error).startswith("prod.yaml: 1 service cannot be scheduled on the stack's nodes")
    assert "api: 0 of 3 replicas fit: reservation of 40 GiB exceeds what m-4vcpu-32gb offers" in str(run.error)
    assert run.registrations == []


def test_data_on_a_nodes_volume_is_warned_about_only_while_no_backup_covers_it():
    from swarm.config import parse_config
    from swarm.plan import preflight
    from tests.pulumi_program import PROJECT_ROOT, cluster_config, stack_config

    def checked(values):
        return preflight(parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml"))

    unprotected = checked(cluster_config("prod"))  # no swarm:backups
    backed_up = checked(stack_config("prod"))  # the shipped one: the database backed up daily
    assert any(w.where == "database" and "keep backups" in w.message for w in unprotected.warnings)
    assert not [w for w in backed_up.warnings if w.where == "database"]
