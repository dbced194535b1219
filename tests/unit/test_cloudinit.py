"""The user data of each pool passes cloud-init's own schema and installs a swarm-ready Docker."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from swarm.cloudinit import DAEMON_CONFIG, render_cloud_init, shell_scripts, volume_device
from swarm.config import load_stack_config_file
from tests.pulumi_program import PROJECT_ROOT

NODES = [node for stack in ("prod", "staging") for node in load_stack_config_file(PROJECT_ROOT, stack).nodes]


@pytest.mark.tools("cloud-init")
@pytest.mark.parametrize("node", NODES, ids=[node.name for node in NODES])
def test_cloud_init_schema_accepts_the_user_data(node, tmp_path):
    path = tmp_path / "user-data"
    path.write_text(render_cloud_init(node))
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools("cloud-init")
def test_the_schema_check_rejects_invalid_user_data(tmp_path):
    path = tmp_path / "user-data"
    path.write_text("#cloud-config\npackages: 3\n")
    assert subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True).returncode != 0


@pytest.mark.tools("shellcheck")
@pytest.mark.parametrize("node", NODES, ids=[node.name for node in NODES])
def test_embedded_scripts_pass_shellcheck(node):
    for script in shell_scripts(node):
        result = subprocess.run(["shellcheck", "--shell=sh", "-"], input=script, text=True, capture_output=True)
        assert result.returncode == 0, result.stdout


def test_docker_comes_from_the_official_repository_with_log_rotation_and_no_live_restore():
    node = NODES[0]
    document = yaml.safe_load(render_cloud_init(node))
    assert render_cloud_init(node).startswith("#cloud-config\n")
    assert document["hostname"] == node.name
    assert "download.docker.com/linux/ubuntu" in document["apt"]["sources"]["docker.list"]["source"]
    assert document["packages"] == ["docker-ce", "docker-ce-cli", "containerd.io"]
    (daemon,) = [f for f in document["write_files"] if f["path"] == "/etc/docker/daemon.json"]
    config = json.loads(daemon["content"])
    assert config == DAEMON_CONFIG
    assert config["log-opts"]["max-size"] and "live-restore" not in config
    assert document["ssh_pwauth"] is False


def test_volume_is_mounted_only_where_the_pool_asks():
    manager = next(n for n in NODES if n.name == "prod-manager-1")
    worker = next(n for n in NODES if n.name == "prod-ml-1")
    manager_commands = yaml.safe_load(render_cloud_init(manager))["runcmd"]
    assert [c for c in manager_commands if c[0].endswith("swarm-mount-volume")] == [
        ["/usr/local/sbin/swarm-mount-volume", volume_device(manager), "/mnt/postgresql"]
    ]
    assert volume_device(manager) == "/dev/disk/by-id/scsi-0DO_Volume_prod-manager-1-data"
    assert not shell_scripts(worker)
    assert all("mount" not in c[0] for c in yaml.safe_load(render_cloud_init(worker))["runcmd"])


def test_rendering_is_deterministic():
    # user_data changes replace droplets: the same node must always render the same bytes
    assert all(render_cloud_init(node) == render_cloud_init(node) for node in NODES)
    assert len({render_cloud_init(node) for node in NODES}) == len(NODES)


def gpu_node():
    from swarm.config import parse_config

    values = {
        "region": "fra1",
        "adminCidrs": ["198.51.100.0/24"],
        "stackFile": "stacks/prod.yaml",
        "nodePools": {
            "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"},
            "gpu": {"role": "worker", "count": 1, "size": "gpu-h100x1-80gb", "gpu": True,
                    "labels": {"type": "machine-learning"}},
        },
    }
    config = parse_config(values, stack="prod", project_root=PROJECT_ROOT, source="test")
    return next(node for node in config.nodes if node.pool.gpu)


@pytest.mark.tools("cloud-init", "shellcheck")
def test_gpu_pool_user_data_sets_up_gpus_for_swarm(tmp_path):
    node = gpu_node()
    assert node.pool.image == "gpu-h100x1-base"
    assert dict(node.pool.labels) == {"type": "machine-learning", "gpu": "true"}
    user_data = render_cloud_init(node)
    path = tmp_path / "user-data"
    path.write_text(user_data)
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    document = yaml.safe_load(user_data)
    assert ["/usr/local/sbin/swarm-setup-gpus"] in document["runcmd"]
    (setup,) = [f["content"] for f in document["write_files"] if f["path"] == "/usr/local/sbin/swarm-setup-gpus"]
    assert "apt-get install -y -q nvidia-container-toolkit" in setup
    assert '"default-runtime": "nvidia"' in setup
    assert '"node-generic-resources": [$resources]' in setup
    assert "nvidia-smi --query-gpu=uuid" in setup
    assert 'swarm-resource = "DOCKER_RESOURCE_GPU"' in setup
    assert shell_scripts(node) == [setup]
    result = subprocess.run(["shellcheck", "--shell=sh", "-"], input=setup, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout


def test_cpu_pools_carry_no_gpu_setup():
    assert all("swarm-setup-gpus" not in render_cloud_init(node) for node in NODES)
