"""The user data of each pool passes cloud-init's own schema and installs a swarm-ready Docker."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import yaml

from swarm.config import load_stack_config_file
from swarm.node_scripts import cloudinit
from swarm.node_scripts.cloudinit import DAEMON_CONFIG, HostKey, shell_scripts, volume_device
from tests.pulumi_program import PROJECT_ROOT, fake_key_pair

NODES = [node for stack in ("prod", "staging") for node in load_stack_config_file(PROJECT_ROOT, stack).nodes]


def host_key(node) -> HostKey:
    return HostKey(*fake_key_pair(f"{node.name}-host-key"))


def render_cloud_init(node) -> str:
    return cloudinit.render_cloud_init(node, host_key(node))


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
    assert document["packages"][:3] == ["docker-ce", "docker-ce-cli", "containerd.io"]
    (daemon,) = [f for f in document["write_files"] if f["path"] == "/etc/docker/daemon.json"]
    config = json.loads(daemon["content"])
    assert config == DAEMON_CONFIG
    assert config["log-opts"]["max-size"] and "live-restore" not in config
    assert document["ssh_pwauth"] is False


def test_user_data_carries_no_volume_mount():
    # The mount is a remote command (it must be able to change without replacing the droplet):
    # a node with a volume gets the same kind of user data as one without.
    manager = next(n for n in NODES if n.name == "prod-manager-1")
    document = yaml.safe_load(render_cloud_init(manager))
    assert all("mount" not in " ".join(command) for command in document["runcmd"])
    assert all("mount" not in file["path"] for file in document["write_files"])
    assert not shell_scripts(manager)
    assert volume_device("prod-manager-1-data") == "/dev/disk/by-id/scsi-0DO_Volume_prod-manager-1-data"


def test_rendering_is_deterministic():
    # user_data changes replace droplets: the same node and key must always render the same bytes,
    # so that a second `up` replaces nothing
    assert all(render_cloud_init(node) == render_cloud_init(node) for node in NODES)
    assert len({render_cloud_init(node) for node in NODES}) == len(NODES)


def test_the_node_offers_the_programs_host_key_and_no_other():
    node = NODES[0]
    key = host_key(node)
    document = yaml.safe_load(render_cloud_init(node))
    assert document["ssh_keys"] == {"ed25519_private": key.private_openssh, "ed25519_public": key.public_openssh.strip()}
    assert document["ssh_deletekeys"] is True  # the image's own keys are gone
    # given ssh_keys, cloud-init generates no other key type (cc_ssh); ssh_genkeytypes would not apply
    assert "ssh_genkeytypes" not in document
    (sshd,) = [f["content"] for f in document["write_files"] if f["path"].startswith("/etc/ssh/sshd_config.d/")]
    # The only HostKey line: sshd offers no other type a client could negotiate instead of ED25519.
    assert [line for line in sshd.splitlines() if line.startswith("HostKey")] == ["HostKey /etc/ssh/ssh_host_ed25519_key"]


def test_sshd_takes_keys_only_and_its_settings_win_over_the_images():
    document = yaml.safe_load(render_cloud_init(NODES[0]))
    (path,) = [f["path"] for f in document["write_files"] if f["path"].startswith("/etc/ssh/sshd_config.d/")]
    # sshd keeps the first value it reads, in file-name order: 00- comes before the image's files
    # and cloud-init's 50-cloud-init.conf.
    assert path.rsplit("/", 1)[1] < "50-cloud-init.conf"
    (sshd,) = [f["content"] for f in document["write_files"] if f["path"] == path]
    options = dict(line.split(None, 1) for line in sshd.splitlines() if line and not line.startswith("#"))
    assert options["PasswordAuthentication"] == "no"
    assert options["KbdInteractiveAuthentication"] == "no"
    assert options["PermitRootLogin"] == "prohibit-password"
    assert options["AuthenticationMethods"] == "publickey"
    assert document["ssh_pwauth"] is False
    assert document["disable_root"] is False  # root logs in, by key: the program runs as root


@pytest.mark.parametrize("node", NODES, ids=[node.name for node in NODES])
def test_security_upgrades_are_unattended_and_never_reboot_the_node(node):
    document = yaml.safe_load(render_cloud_init(node))
    files = {f["path"]: f["content"] for f in document["write_files"]}
    assert "unattended-upgrades" in document["packages"]
    policy = files["/etc/apt/apt.conf.d/52swarm-upgrades"]
    assert 'APT::Periodic::Unattended-Upgrade "1";' in policy
    assert 'APT::Periodic::Update-Package-Lists "1";' in policy
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in policy
    # apt reads apt.conf.d in name order and the last value wins: after the package's own files.
    assert "52swarm-upgrades" > "50unattended-upgrades" > "20auto-upgrades"
    # an upgraded library must not make needrestart restart dockerd (every task of the node)
    assert "qr(^docker)} = 0" in files["/etc/needrestart/conf.d/50-swarm.conf"]


def gpu_node():
    from swarm.config import parse_config

    values = {
        "region": "tor1",  # a region that sells GPU droplets
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


def test_the_gpu_setup_writes_dockers_log_options_and_the_runtime_config_the_program_declares():
    script = cloudinit.GPU_SETUP_SCRIPT
    daemon = script.split("cat > /etc/docker/daemon.json <<EOF\n")[1].split("\nEOF\n")[0]
    written = json.loads(daemon.replace("[$resources]", "[]"))
    assert {key: written[key] for key in DAEMON_CONFIG} == DAEMON_CONFIG
    assert f"config={cloudinit.NVIDIA_RUNTIME_CONFIG}\n" in script


def test_the_gpu_setup_script_is_unchanged_since_gpu_droplets_were_created_with_it():
    # It is carried in the user data: a changed byte replaces every GPU droplet on the next up.
    # Change it only on purpose, with an upgrade note (docs/day-2-operations.md), then here.
    digest = hashlib.sha256(cloudinit.GPU_SETUP_SCRIPT.encode()).hexdigest()
    assert digest == "e7ff0de18cfce035e2b057a69e5d35cbfd00ae5ca0a362d16322d6dec6e04467"
