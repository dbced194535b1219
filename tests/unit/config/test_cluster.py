"""The configuration contract (swarm/config/cluster.py): valid stacks parse into typed values, every mistake is named."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarm.config import ConfigError, load_stack_config_file
from tests.pulumi_program import PROJECT_ROOT
from tests.unit.config.stack_configs import parse, paths, problems, prod


def test_prod_parses_into_the_reference_layout():
    config = load_stack_config_file(PROJECT_ROOT, "prod")
    assert [(n.name, n.role, dict(n.pool.labels)) for n in config.nodes] == [
        ("prod-manager-1", "manager", {"type": "database"}),
        ("prod-backoffice-1", "worker", {"type": "cheap"}),
        ("prod-ml-1", "worker", {"type": "machine-learning"}),
        ("prod-ml-2", "worker", {"type": "machine-learning"}),
        ("prod-ml-3", "worker", {"type": "machine-learning"}),
    ]
    assert config.first_manager.name == "prod-manager-1"
    assert config.pools[0].volume.mount_path == "/mnt/postgresql"
    assert config.stack_file == PROJECT_ROOT / "stacks" / "prod.yaml"
    assert config.monthly_cost == 48 + 24 + 3 * 168


def test_first_manager_is_the_first_node_of_the_first_manager_pool():
    values = prod()
    values["nodePools"] = {"workers": values["nodePools"]["ml"], **values["nodePools"]}
    assert parse(values).first_manager.name == "prod-manager-1"


def test_required_keys():
    found = problems({}, stack="qa")
    assert set(found) == {"swarm:region", "swarm:nodePools", "swarm:adminCidrs", "swarm:stackFile"}
    assert "pulumi config set swarm:region" in found["swarm:region"]


def test_a_list_item_is_an_index_in_the_problem_path():
    found = paths(prod(adminCidrs=["203.0.113.0/24", "nonsense"], publicPorts=[443, "22/tcp"]))
    assert ("swarm:adminCidrs", 1) in found and ("swarm:publicPorts", 1) in found
    assert parse(prod(adminCidrs=["0.0.0.0/0"])).warnings[0].path == ("swarm:adminCidrs", 0)


def test_cidrs_and_ports():
    found = problems(prod(adminCidrs=["203.0.113.7/24", "nonsense"], publicPorts=[443, "22/tcp", "70000", "8000-8010/udp"]))
    assert set(found) == {"swarm:adminCidrs[0]", "swarm:adminCidrs[1]", "swarm:publicPorts[1]", "swarm:publicPorts[2]"}
    assert "host bits" in found["swarm:adminCidrs[0]"]
    assert "manages itself" in found["swarm:publicPorts[1]"]
    ports = parse(prod(publicPorts=[443, "8000-8010/udp"])).public_ports
    assert [(p.protocol, p.ports) for p in ports] == [("tcp", "443"), ("udp", "8000-8010")]


def test_vpc_range_must_be_private_and_clear_of_the_overlay_pool():
    assert "private IPv4" in problems(prod(vpcIpRange="8.8.0.0/16"))["swarm:vpcIpRange"]
    assert "overlaps" in problems(prod(vpcIpRange="10.0.16.0/20"))["swarm:vpcIpRange"]


def test_ssh_keys_come_in_pairs():
    assert "both" in problems(prod(sshPublicKey="ssh-ed25519 AAAA x"))["swarm:sshPrivateKey"]
    assert "OpenSSH public key" in problems(prod(sshPublicKey="not a key", sshPrivateKey="k"))["swarm:sshPublicKey"]


def test_error_message_lists_every_problem_with_the_file():
    with pytest.raises(ConfigError) as raised:
        parse(prod(region="Frankfurt", adminCidrs=["x"]))
    message = str(raised.value)
    # Two: prod's backups take their region from swarm:region, whose problem is said once.
    assert message.startswith("Pulumi.prod.yaml: 2 problems in the stack configuration; nothing was deployed:")
    assert "swarm:region: 'Frankfurt'" in message and "swarm:adminCidrs[0]" in message
    assert "has no Spaces" not in message


def test_a_backups_region_of_its_own_is_checked_even_when_the_clusters_region_is_wrong():
    values = prod(region="Frankfurt")
    values["backups"] = {**values["backups"], "region": "fra2"}
    found = problems(values)
    assert found["swarm:backups.region"] == "'fra2' has no Spaces; did you mean fra1?"


def test_a_misspelt_region_is_refused_once_with_the_region_it_looks_like():
    found = problems(prod(region="fra2"))
    assert found["swarm:region"] == ("'fra2' is not a DigitalOcean region that takes new droplets; did you mean fra1? "
                                     "(table: swarm/config/sizes.py)")
    assert "swarm:backups.region" not in found  # prod's bucket follows swarm:region: said once


def test_a_gpu_size_in_a_region_that_does_not_sell_it_is_refused_naming_the_regions_that_do():
    values = prod()
    values["nodePools"]["gpu"] = {"role": "worker", "count": 1, "size": "gpu-l40sx1-48gb", "gpu": True}
    found = problems(values)
    assert set(found) == {"swarm:nodePools.gpu.size"}
    assert found["swarm:nodePools.gpu.size"].startswith(
        "'gpu-l40sx1-48gb' is not sold in fra1 (only in atl1, nyc2, tor1); move the stack to one of those regions")


def test_gpu_sizes_are_accepted_where_digitalocean_sells_them():
    values = prod(region="ams3")
    values["nodePools"]["gpu"] = {"role": "worker", "count": 1, "size": "gpu-h100x1-80gb", "gpu": True}
    assert [pool.size.slug for pool in parse(values).pools if pool.gpu] == ["gpu-h100x1-80gb"]
    values["nodePools"]["gpu"]["size"] = "gpu-rtx4000x1-20gb"
    assert "only in atl1, nyc2, tor1" in problems(values)["swarm:nodePools.gpu.size"]


def test_a_yaml_mistake_in_the_stack_config_names_the_file_line_and_column(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: swarm\n")
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  swarm:region: fra1\n swarm:nodePools: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_stack_config_file(tmp_path, "prod")
    message = str(raised.value)
    assert message.startswith("Pulumi.prod.yaml: 1 problem")
    assert "Pulumi.prod.yaml:3:2: is not valid YAML: " in message and "<unicode string>" not in message


def test_the_configuration_imports_neither_the_node_scripts_nor_the_stack_file_loader():
    # Shared names live in swarm/model.py, values in swarm/values/: reading the config is its own layer.
    code = "import sys, swarm.config; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PROJECT_ROOT).stdout.split()
    assert "swarm.config.cluster" in loaded
    assert not [name for name in loaded if name.startswith(("swarm.node_scripts", "swarm.capacity", "swarm.compose"))]


def test_operator_keys_are_parsed_in_order_and_every_bad_one_is_reported_with_its_index():
    alice = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
    assert parse(prod(sshAuthorizedKeys=[alice + "\n"]), "prod").authorized_keys == (alice,)
    assert parse(prod(), "prod").authorized_keys == ()
    found = problems(prod(sshAuthorizedKeys=[
        alice, "not a key", "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz", alice.replace("laptop", "desk"), 7]))
    assert "OpenSSH public key" in found["swarm:sshAuthorizedKeys[1]"]
    assert ".pub" in found["swarm:sshAuthorizedKeys[2]"]
    assert "sshAuthorizedKeys[0]" in found["swarm:sshAuthorizedKeys[3]"]
    assert "swarm:sshAuthorizedKeys[4]" in found
    assert "list" in problems(prod(sshAuthorizedKeys=alice))["swarm:sshAuthorizedKeys"]


def test_a_misspelt_operator_keys_key_is_refused_with_the_right_name():
    assert "swarm:sshAuthorizedKeys" in problems(prod(sshAuthorisedKeys=[]))["swarm:sshAuthorisedKeys"]
