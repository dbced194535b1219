"""The scheduler model (swarm/capacity/placement.py): which nodes a task may go to, and where each task
lands, rule by rule as swarmkit applies them."""

from __future__ import annotations

import pytest

from swarm.capacity import check_capacity, schedule
from swarm.capacity.placement import cluster_nodes, constraint_matches
from swarm.compose import parse_constraint
from tests.unit.capacity.capacity_stacks import MANAGER_POOL, by_name, cluster, node, prod_config, service, services

# ---- constraints -----------------------------------------------------------------------------


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


def test_hostname_constraint_uses_the_droplet_name(tmp_path):
    spec = services(tmp_path, {"pinned": service(constraints=("node.hostname==prod-ml-2",))})
    assert dict(by_name(check_capacity(prod_config(), spec))["pinned"].nodes) == {"prod-ml-2": 1}


# ---- spread and competition ------------------------------------------------------------------


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


# ---- global services -------------------------------------------------------------------------


def test_global_service_runs_on_every_matching_node(tmp_path):
    spec = services(tmp_path, {"agent": service(None, ("node.role==worker",), cpus="0.1", mode="global")})
    report = check_capacity(prod_config(), spec)
    agent = by_name(report)["agent"]
    assert (agent.wanted, agent.placed) == (4, 4)
    assert set(agent.nodes) == {"prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3"}
    assert not agent.warnings  # a global task dies with its node: nothing to re-place


# ---- GPUs ------------------------------------------------------------------------------------


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
