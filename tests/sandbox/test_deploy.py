"""`pulumi up` of the prod stack for real on the sandbox: the swarm is formed by the program's
scripts and `stacks/prod.yaml` (images swapped for the local image) is deployed through the
Engine API exactly as the program declares it. Then the result is compared with the
program's inputs, and the swarm is broken.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from swarm.compose import parse_duration
from tests.pulumi_program import TEST_SECRET_PREFIX, cluster_config, run_program, unwrap
from tests.sandbox.conftest import sandbox_stack_file
from tests.sandbox.executing_cloud import SandboxCloud
from tests.sandbox.harness import wait_for

DATABASE_DIR = Path("/mnt/postgresql/data")  # the sandbox hosts share the machine's root filesystem
NODE_LABELS = {
    "prod-manager-1": {"type": "database"},
    "prod-backoffice-1": {"type": "cheap"},
    "prod-ml-1": {"type": "machine-learning"},
    "prod-ml-2": {"type": "machine-learning"},
    "prod-ml-3": {"type": "machine-learning"},
}
ML_HOSTS = ["prod-ml-1", "prod-ml-2", "prod-ml-3"]


def running_tasks(manager, service: str) -> list[str]:
    """Nodes (hostnames) of the service's tasks that are running now."""
    out = manager.docker("service", "ps", service, "--filter", "desired-state=running",
                         "--format", "{{.Node}} {{.CurrentState}}").stdout
    return sorted(line.split()[0] for line in out.splitlines() if " Running " in f" {line} ")


def converged(manager, services: dict[str, int]) -> bool:
    return all(len(running_tasks(manager, name)) == replicas for name, replicas in services.items())


@pytest.fixture(scope="module")
def deployed(sandbox_five, tmp_path_factory, timings):
    shutil.rmtree(DATABASE_DIR.parent, ignore_errors=True)  # no manual `mkdir -p`: the program does it
    config = cluster_config("prod")
    config["stackFile"] = str(sandbox_stack_file(tmp_path_factory.mktemp("stack")))
    started = time.monotonic()
    run = run_program("prod", config, mocks=SandboxCloud(sandbox_five))
    assert run.error is None, run.error
    manager = sandbox_five.hosts["prod-manager-1"]
    wanted = {"prod_api": 3, "prod_backoffice": 1, "prod_database": 1}
    assert converged(manager, wanted)  # no waiting: `pulumi up` returned once every replica ran
    timings["deploy: prod stack on 5 hosts, up to all replicas running"] = time.monotonic() - started
    yield run, manager
    for host in sandbox_five.hosts.values():
        host.docker("swarm", "leave", "--force", check=False)
    shutil.rmtree(DATABASE_DIR.parent, ignore_errors=True)


def node_labels(manager, hostname: str) -> dict:
    return json.loads(manager.docker("node", "inspect", "--format", "{{json .Spec.Labels}}", hostname).stdout)


def test_every_task_lands_on_a_node_matching_its_constraints(deployed):
    _, manager = deployed
    assert running_tasks(manager, "prod_api") == ML_HOSTS  # spread: one per ML worker
    assert running_tasks(manager, "prod_backoffice") == ["prod-backoffice-1"]
    assert running_tasks(manager, "prod_database") == ["prod-manager-1"]
    for hostname in ML_HOSTS:
        assert node_labels(manager, hostname) == {"type": "machine-learning"}


def test_operator_commands_see_a_normal_stack(deployed):
    _, manager = deployed
    services = manager.docker("stack", "services", "prod", "--format", "{{.Name}} {{.Replicas}}").stdout.split("\n")
    assert sorted(filter(None, services)) == ["prod_api 3/3", "prod_backoffice 1/1", "prod_database 1/1"]
    assert "main_network" in manager.docker("network", "ls", "--format", "{{.Name}}").stdout.split()


def test_secrets_reach_the_database_task_as_files(deployed, sandbox_five):
    _, manager = deployed
    container = manager.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=prod_database").stdout.strip()
    assert container
    assert manager.docker("exec", container, "cat", "/run/secrets/db_password").stdout == TEST_SECRET_PREFIX + "db_password"


def inspect_service(manager, name: str) -> dict:
    return json.loads(manager.docker("service", "inspect", name).stdout)[0]["Spec"]


@pytest.mark.parametrize("service", ["prod_api", "prod_backoffice", "prod_database"])
def test_docker_agrees_with_the_program_field_by_field(deployed, service):
    run, manager = deployed
    (declared,) = [r for r in run.of_type("docker:index/service:Service") if r.plain("name") == service]
    inputs = unwrap(declared.inputs)
    task, container = inputs["taskSpec"], inputs["taskSpec"]["containerSpec"]
    actual = inspect_service(manager, service)
    actual_task, actual_container = actual["TaskTemplate"], actual["TaskTemplate"]["ContainerSpec"]

    assert actual_task["Placement"].get("Constraints") == task["placement"]["constraints"]
    reservation = task.get("resources", {}).get("reservation", {})
    limits = task.get("resources", {}).get("limits", {})
    assert actual_task["Resources"].get("Reservations", {}).get("NanoCPUs", 0) == reservation.get("nanoCpus", 0)
    assert actual_task["Resources"].get("Reservations", {}).get("MemoryBytes", 0) == reservation.get("memoryBytes", 0)
    assert actual_task["Resources"].get("Limits", {}).get("NanoCPUs", 0) == limits.get("nanoCpus", 0)
    assert actual_task["Resources"].get("Limits", {}).get("MemoryBytes", 0) == limits.get("memoryBytes", 0)
    assert actual["Mode"]["Replicated"]["Replicas"] == inputs["mode"]["replicated"]["replicas"]
    assert sorted(actual_container.get("Env", [])) == sorted(f"{k}={v}" for k, v in container.get("env", {}).items())
    assert [(m["Type"], m["Source"], m["Target"]) for m in actual_container.get("Mounts", [])] == [
        (m["type"], m["source"], m["target"]) for m in container.get("mounts", [])
    ]
    assert sorted((s["SecretName"], s["File"]["Name"]) for s in actual_container.get("Secrets", [])) == sorted(
        (s["secretName"], s["fileName"]) for s in container.get("secrets", [])
    )
    network_names = {n["Target"]: json.loads(manager.docker("network", "inspect", n["Target"]).stdout)[0]["Name"]
                     for n in actual_task["Networks"]}
    assert sorted(network_names.values()) == ["main_network"]
    assert [n["Aliases"] for n in actual_task["Networks"]] == [n["aliases"] for n in task["networksAdvanceds"]]
    update = inputs["updateConfig"]
    assert actual["UpdateConfig"]["Order"] == update["order"]
    assert actual["UpdateConfig"]["FailureAction"] == update["failureAction"]
    assert actual["UpdateConfig"].get("Monitor") == parse_duration(update["monitor"])
    assert actual["UpdateConfig"].get("Parallelism", 0) == update.get("parallelism", 0)
    restart = task["restartPolicy"]
    assert actual_task["RestartPolicy"]["Condition"] == restart["condition"]
    assert actual_task["RestartPolicy"]["Delay"] == parse_duration(restart["delay"])
    labels = {label["label"]: label["value"] for label in inputs["labels"]}
    assert actual["Labels"] == labels and labels["com.docker.stack.namespace"] == "prod"


def test_a_lost_ml_worker_has_its_replica_rescheduled_on_ml_workers_only(deployed, sandbox_five):
    _, manager = deployed
    manager.docker("swarm", "update", "--dispatcher-heartbeat", "1s")  # detect the loss quickly
    lost = sandbox_five.hosts["prod-ml-3"]
    lost.stop_dockerd()
    try:
        def rescheduled():
            nodes = running_tasks(manager, "prod_api")
            return nodes if len(nodes) == 3 and "prod-ml-3" not in nodes else None

        nodes = wait_for(rescheduled, "3 api replicas running without prod-ml-3", timeout=120)
        assert set(nodes) == {"prod-ml-1", "prod-ml-2"}
        for service in ("prod_backoffice", "prod_database"):  # nothing moved onto the ML workers
            assert not set(running_tasks(manager, service)) & set(ML_HOSTS)
        everything = manager.docker("stack", "ps", "prod", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}}").stdout
        for line in everything.splitlines():
            name, node = line.split()
            if name.startswith("prod_api."):
                assert node in ML_HOSTS, line
    finally:
        lost.start_dockerd()
        wait_for(lambda: "Ready" in manager.docker("node", "ls", "--filter", "name=prod-ml-3", "--format", "{{.Status}}").stdout,
                 "prod-ml-3 back", timeout=60)


def test_manager_restart_keeps_services_and_secrets(deployed, sandbox_five):
    _, manager = deployed
    services_before = manager.docker("service", "ls", "--format", "{{.ID}} {{.Name}}").stdout
    secrets_before = manager.docker("secret", "ls", "--format", "{{.ID}} {{.Name}}").stdout
    manager.restart_dockerd()
    wait_for(lambda: manager.docker("node", "ls", check=False).returncode == 0, "manager answering again", timeout=60)
    assert manager.docker("service", "ls", "--format", "{{.ID}} {{.Name}}").stdout == services_before
    assert manager.docker("secret", "ls", "--format", "{{.ID}} {{.Name}}").stdout == secrets_before
    wait_for(lambda: converged(manager, {"prod_api": 3, "prod_backoffice": 1, "prod_database": 1}),
             "every replica running after the manager restart", timeout=120)
