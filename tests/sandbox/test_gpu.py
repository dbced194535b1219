"""GPU workers for real: swarm's generic resources on the sandbox, and the GPU setup script.

(a) Three sandbox hosts stand for a stack with a manager, a CPU ML worker and a GPU worker whose
    dockerd advertises one fake GPU (`node-generic-resources`). The program forms the swarm and
    deploys a model catalogue through SandboxCloud: the GPU model lands on the GPU worker with
    that GPU assigned, and a second GPU task stays pending while the only GPU is taken.
(b) The GPU setup script of swarm/node_scripts/cloudinit.py runs unchanged on this machine, in a private mount
    namespace where /etc/docker, /etc/nvidia-container-runtime, /etc/apt/sources.list.d and
    /usr/share/keyrings are scratch folders and curl, gpg, apt-get, nvidia-smi and systemctl
    are stubs: it writes the daemon.json and runtime config that (a) shows dockerd and swarm use.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from swarm.node_scripts.cloudinit import DAEMON_CONFIG, GPU_SETUP_SCRIPT, NVIDIA_RUNTIME_CONFIG
from tests.pulumi_program import cluster_config, run_program
from tests.sandbox.executing_cloud import SandboxCloud
from tests.sandbox.harness import DEFAULT_IMAGE, Host, Sandbox, wait_for

# A sandbox of its own: it must not collide with the other suites' sandboxes.
PREFIX = "swgpu"
SUBNET = "10.231.80.0/24"
STACK = "gpu"  # droplets (and sandbox hosts) are <stack>-<pool>-<n>
FAKE_GPU = "fake-gpu-0"
HOSTS = {
    "gpu-manager-1": {},
    "gpu-ml-1": {},
    "gpu-gpu-1": {"node-generic-resources": [f"GPU={FAKE_GPU}"]},
}
POOLS = {
    "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"},
    "ml": {"role": "worker", "count": 1, "size": "m-4vcpu-32gb", "labels": {"type": "machine-learning"}},
    "gpu": {"role": "worker", "count": 1, "size": "gpu-h100x1-80gb", "gpu": True,
            "labels": {"type": "machine-learning"}},
}
CATALOGUE = {
    "defaults": {
        "image": DEFAULT_IMAGE,
        "constraints": ["node.role == worker", "node.labels.type == machine-learning"],
        "cpus": "0.01",
        "memory": "16M",
        # Stops at once on SIGTERM (a bare `sleep` as PID 1 would make every task stop take 10 s).
        "overrides": {"command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"], "stop_grace_period": "1s"},
    },
    "models": [
        {"name": "tagger", "replicas": 2},
        {"name": "detector", "gpus": 1},
    ],
}


def tasks(manager: Host, service: str) -> list[dict]:
    """The service's tasks that should be running, as the Engine API reports them."""
    ids = manager.docker("service", "ps", "-q", "--filter", "desired-state=running", service).stdout.split()
    return json.loads(manager.docker("inspect", *ids).stdout) if ids else []


def running_on(manager: Host, service: str) -> list[str]:
    """Hostnames of the nodes running the service's tasks."""
    node_ids = [t["NodeID"] for t in tasks(manager, service) if t["Status"]["State"] == "running"]
    return sorted(manager.docker("node", "inspect", "--format", "{{.Description.Hostname}}", node_id).stdout.strip()
                  for node_id in node_ids)


@pytest.fixture(scope="module")
def deployed(sandbox_workdir: Path, tmp_path_factory, timings) -> Iterator[Sandbox]:
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("gpu-stack")
    (workdir / "models.yaml").write_text(yaml.safe_dump(CATALOGUE))
    (workdir / "gpu.yaml").write_text('version: "3.8"\nx-model-catalogue: models.yaml\n')
    config = copy.deepcopy(cluster_config("prod"))
    # tor1: a region that sells GPU droplets.
    config.update(region="tor1", nodePools=POOLS, stackFile=str(workdir / "gpu.yaml"), secrets={})
    with Sandbox(sandbox_workdir / "gpu", subnet=SUBNET, prefix=PREFIX) as sandbox:
        for name, daemon_json in HOSTS.items():
            sandbox.add_host(name, daemon_json)
        sandbox.load_image()
        run = run_program(STACK, config, mocks=SandboxCloud(sandbox))
        assert run.error is None, run.error
        manager = sandbox.hosts["gpu-manager-1"]
        wait_for(lambda: len(running_on(manager, "gpu_tagger")) == 2 and running_on(manager, "gpu_detector"),
                 "the models running", timeout=90)
        timings["gpu: 3 hosts, program up to the models running"] = time.monotonic() - started
        yield sandbox


def test_the_gpu_node_advertises_its_gpu_and_carries_the_gpu_label(deployed):
    manager = deployed.hosts["gpu-manager-1"]
    node = json.loads(manager.docker("node", "inspect", "gpu-gpu-1").stdout)[0]
    assert node["Spec"]["Labels"] == {"gpu": "true", "type": "machine-learning"}  # set by the program
    assert node["Description"]["Resources"]["GenericResources"] == [
        {"NamedResourceSpec": {"Kind": "GPU", "Value": FAKE_GPU}}]
    ml = json.loads(manager.docker("node", "inspect", "gpu-ml-1").stdout)[0]
    assert ml["Spec"]["Labels"] == {"type": "machine-learning"}
    assert not ml["Description"]["Resources"].get("GenericResources")


def test_the_gpu_model_runs_on_the_gpu_node_with_the_gpu_assigned(deployed):
    manager, gpu_host = deployed.hosts["gpu-manager-1"], deployed.hosts["gpu-gpu-1"]
    assert running_on(manager, "gpu_detector") == ["gpu-gpu-1"]
    (task,) = tasks(manager, "gpu_detector")
    # The GPU swarm assigned to the task (the API docs call it AssignedGenericResources).
    assert task["GenericResources"] == [{"NamedResourceSpec": {"Kind": "GPU", "Value": FAKE_GPU}}]
    # Swarm hands the assigned GPU to the container, where the NVIDIA runtime's swarm-resource reads it.
    service_label = "label=com.docker.swarm.service.name=gpu_detector"
    container = gpu_host.docker("ps", "-q", "--filter", service_label).stdout.strip()
    env = json.loads(gpu_host.docker("inspect", "--format", "{{json .Config.Env}}", container).stdout)
    assert f"DOCKER_RESOURCE_GPU={FAKE_GPU}" in env
    # The CPU model reserves no GPU and may run on either ML worker.
    assert set(running_on(manager, "gpu_tagger")) <= {"gpu-ml-1", "gpu-gpu-1"}


def test_a_second_gpu_task_stays_pending_while_the_only_gpu_is_taken(deployed):
    manager = deployed.hosts["gpu-manager-1"]
    manager.docker("service", "scale", "--detach", "gpu_detector=2")
    try:
        def pending() -> dict | None:
            return next((t for t in tasks(manager, "gpu_detector") if t["Status"]["State"] == "pending"
                         and "insufficient resources" in t["Status"].get("Err", "")), None)

        task = wait_for(pending, "a pending detector task", timeout=90)
        # Swarm filters on resources before constraints: no node has a free GPU, the GPU node included.
        assert task["Status"]["Err"] == "no suitable node (insufficient resources on 3 nodes)"
        time.sleep(2)  # and it stays so: the running task keeps the GPU, nothing is preempted
        states = sorted(t["Status"]["State"] for t in tasks(manager, "gpu_detector"))
        assert states == ["pending", "running"]
        assert running_on(manager, "gpu_detector") == ["gpu-gpu-1"]
    finally:
        manager.docker("service", "scale", "--detach", "gpu_detector=1")


# ---- (b) the GPU setup script -----------------------------------------------------------------------

UUIDS = ("GPU-8f2e6d0a-1c3b-4e5f-9a7b-0c1d2e3f4a5b", "GPU-0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e")
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
SEEDED_RUNTIME_CONFIG = """\
#accept-nvidia-visible-devices-as-volume-mounts = false
#swarm-resource = "DOCKER_RESOURCE_GPU"
disable-require = false

[nvidia-container-cli]
environment = []
ldconfig = "@/sbin/ldconfig.real"
"""
# Stand-ins for the network, the package manager, the driver and systemd: each logs its call.
STUBS = {
    "curl": """case "$*" in
  *gpgkey) echo 'FAKE NVIDIA SIGNING KEY' ;;
  *.list) echo 'deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /' ;;
  *) echo "unexpected URL: $*" >&2; exit 22 ;;
esac""",
    "gpg": """out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
cat > "$out\"""",
    "apt-get": 'echo "DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-} apt-get $*" >> "$STUB_LOG"',
    "nvidia-smi": 'printf "%s\\n" $FAKE_GPU_UUIDS',
    "systemctl": 'echo "systemctl $*" >> "$STUB_LOG"',
}
# The folders the script writes, each replaced by a scratch folder in the script's namespace.
PRIVATE = {
    "/etc/docker": "docker",
    "/etc/nvidia-container-runtime": "nvidia-container-runtime",
    "/etc/apt/sources.list.d": "sources.list.d",
    "/usr/share/keyrings": "keyrings",
}


def run_setup_script(root: Path, uuids: tuple[str, ...] = UUIDS) -> subprocess.CompletedProcess[str]:
    """GPU_SETUP_SCRIPT as cloud-init runs it, with PRIVATE folders under `root`. /etc is overlaid
    in the namespace first, so that a missing folder (/etc/nvidia-container-runtime) can be made
    there without touching the machine's /etc."""
    stubs = root / "bin"
    stubs.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    script = root / "swarm-setup-gpus"
    script.write_text(GPU_SETUP_SCRIPT)
    script.chmod(0o755)
    for folder in PRIVATE.values():
        (root / folder).mkdir(exist_ok=True)
    binds = "\n".join(f"mkdir -p {target} && mount --bind {root / folder} {target}"
                      for target, folder in PRIVATE.items())
    namespace = f"""set -eu
mount -t tmpfs tmpfs {root / 'etc-overlay'}
mkdir {root / 'etc-overlay/upper'} {root / 'etc-overlay/work'}
mount -t overlay overlay -o lowerdir=/etc,upperdir={root / 'etc-overlay/upper'},workdir={root / 'etc-overlay/work'} /etc
{binds}
exec {script}
"""
    (root / "etc-overlay").mkdir(exist_ok=True)
    assert Path("/usr/share/keyrings").is_dir(), "the test bind-mounts over /usr/share/keyrings"
    env = {"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin", "STUB_LOG": str(root / "calls.log"),
           "FAKE_GPU_UUIDS": " ".join(uuids)}
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", namespace],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "nvidia-container-runtime").mkdir()
    (tmp_path / "nvidia-container-runtime" / "config.toml").write_text(SEEDED_RUNTIME_CONFIG)
    return tmp_path


def test_gpu_setup_script_configures_docker_and_the_nvidia_runtime_for_swarm(scratch):
    result = run_setup_script(scratch)
    assert result.returncode == 0, result.stderr

    daemon = json.loads((scratch / "docker" / "daemon.json").read_text())
    assert daemon == {
        **DAEMON_CONFIG,
        "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
        "node-generic-resources": [f"GPU={uuid}" for uuid in UUIDS],
    }
    config = (scratch / "nvidia-container-runtime" / Path(NVIDIA_RUNTIME_CONFIG).name).read_text()
    lines = config.splitlines()
    assert lines[0] == 'swarm-resource = "DOCKER_RESOURCE_GPU"'
    assert [line for line in lines if "swarm-resource" in line] == [lines[0]]
    assert lines[1:] == [line for line in SEEDED_RUNTIME_CONFIG.splitlines() if "swarm-resource" not in line]

    assert (scratch / "keyrings" / Path(KEYRING).name).read_text() == "FAKE NVIDIA SIGNING KEY\n"
    assert (scratch / "sources.list.d" / "nvidia-container-toolkit.list").read_text() == (
        f"deb [signed-by={KEYRING}] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n")
    assert (scratch / "calls.log").read_text().splitlines() == [
        "DEBIAN_FRONTEND= apt-get update -q",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-container-toolkit",
        "systemctl restart docker",  # only once everything is written
    ]
    assert not Path(NVIDIA_RUNTIME_CONFIG).exists()  # the machine's own /etc is untouched


def test_gpu_setup_script_run_again_changes_nothing(scratch):
    assert run_setup_script(scratch).returncode == 0
    written = {path: path.read_bytes() for path in scratch.glob("*/*") if path.parent.name in PRIVATE.values()}
    assert run_setup_script(scratch).returncode == 0
    assert {path: path.read_bytes() for path in written} == written


def test_gpu_setup_script_fails_without_a_visible_gpu(scratch):
    result = run_setup_script(scratch, uuids=())
    assert result.returncode == 1
    assert "no GPU visible to nvidia-smi" in result.stderr
    assert not (scratch / "docker" / "daemon.json").exists()
    assert "systemctl" not in (scratch / "calls.log").read_text()
