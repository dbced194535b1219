"""The words of the capacity check (swarm/capacity/advice.py): every failure names what blocks
and the change that fixes it; a GPU pool open to services that reserve no GPU is a cost warning."""

from __future__ import annotations

import copy

import pytest

from swarm.capacity import check_capacity, schedule
from swarm.compose import load_stack_file
from swarm.config import ConfigError, parse_config
from tests.pulumi_program import PROJECT_ROOT, stack_config
from tests.unit.capacity.capacity_stacks import (
    FOUR_API_REPLICAS_ONE_PER_NODE,
    PROD_STACK,
    by_name,
    node,
    prod_config,
    service,
    services,
    stack,
)

# ---- why tasks do not fit --------------------------------------------------------------------


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


def test_node_id_constraint_fails_with_advice(tmp_path):
    report = schedule([node("a")], services(tmp_path, {"pinned": service(constraints=("node.id==abc",))}).services.values())
    (failure,) = report.failures
    assert "no node matches node.id==abc (node IDs are assigned when nodes join" in failure
    assert "constrain on node.hostname or a node label instead" in failure


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


def test_gpu_reservation_on_a_pool_without_gpus_fails_with_the_fix(tmp_path):
    spec = services(tmp_path, {"inference": service(1, ("node.labels.type==machine-learning",), gpus=1)})
    (failure,) = check_capacity(prod_config(), spec).failures
    assert failure == (
        "inference: 0 of 1 replicas fit: reservation of 1 GPU exceeds what m-4vcpu-32gb offers (0); give pool ml "
        "a GPU size (gpu-*, `gpu: true`) or constrain the service to a GPU pool"
    )


# ---- GPU pools -------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu_labels, warned", [({"type": "machine-learning"}, True), ({"type": "gpu"}, False)])
def test_a_gpu_pool_shared_with_services_that_reserve_no_gpu_gets_a_cost_warning(gpu_labels, warned):
    values = copy.deepcopy(stack_config("prod"))
    values["region"] = "tor1"  # a region that sells GPU droplets
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


def gpu_pool_config(count: int = 2):
    values = copy.deepcopy(stack_config("prod"))
    values["region"] = "tor1"  # a region that sells GPU droplets
    values["nodePools"]["gpu"] = {"role": "worker", "count": count, "size": "gpu-h100x1-80gb", "gpu": True,
                                  "labels": {"type": "gpu"}}
    return parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="Pulumi.prod.yaml")


def test_a_gpu_pool_that_no_task_uses_is_warned_with_its_monthly_cost():
    report = check_capacity(gpu_pool_config(), load_stack_file(PROJECT_ROOT / "stacks" / "prod.yaml", stack="prod"))
    assert [w for w in map(str, report.warnings) if "GPU pool" in w] == [
        "GPU pool gpu (2 x gpu-h100x1-80gb, $4,556.16/month) runs no task: reserve its GPUs in a service (a catalogue "
        "model's `gpus: 1`, or deploy.resources.reservations.generic_resources kind GPU) or set "
        "swarm:nodePools.gpu.count to 0"
    ]


def test_a_gpu_pool_whose_gpus_a_task_reserves_is_not_warned_about(tmp_path):
    spec = services(tmp_path, {"inference": service(1, ("node.labels.type==gpu",), gpus=1)})
    report = check_capacity(gpu_pool_config(count=1), spec)
    assert report.schedulable and not [w for w in map(str, report.warnings) if "GPU pool" in w]


def test_a_stack_on_single_nodes_on_purpose_can_leave_node_loss_warnings_out():
    values = {**copy.deepcopy(stack_config("staging")), "nodeLossWarnings": False}
    config = parse_config(values, stack="staging", project_root=PROJECT_ROOT, source="Pulumi.staging.yaml")
    report = check_capacity(config, load_stack_file(PROJECT_ROOT / "stacks" / "staging.yaml", stack="staging"))
    assert report.schedulable and not [w for w in map(str, report.warnings) if "would run" in w]
    values["nodeLossWarnings"] = "no"
    with pytest.raises(ConfigError) as raised:
        parse_config(values, stack="staging", project_root=PROJECT_ROOT, source="Pulumi.staging.yaml")
    assert "swarm:nodeLossWarnings: 'no' must be true or false" in str(raised.value)
