"""The real __main__.py under Pulumi mocks: what the prod and staging stacks register."""

from __future__ import annotations

import copy
import shutil

import pulumi
import pytest
import yaml

from swarm import node_scripts
from swarm.node_scripts import day2, swarm_cluster
from swarm.node_scripts.cloudinit import HostKey, render_cloud_init
from tests.pulumi_program import (
    MANAGER_ADDRESS,
    PROJECT_ROOT,
    cluster_config,
    fake_addresses,
    fake_droplet_id,
    fake_key_pair,
    is_secret,
    run_program,
    stack_config,
    unwrap,
)

MANAGER_PUBLIC, MANAGER_PRIVATE = fake_addresses("prod-manager-1")  # the droplet's own addresses
DROPLET = "digitalocean:index/droplet:Droplet"
COMMAND = "command:remote:Command"
FIREWALL = "digitalocean:index/firewall:Firewall"
VOLUME = "digitalocean:index/volume:Volume"
VPC = "digitalocean:index/vpc:Vpc"




def commands(run, suffix):
    return [r for r in run.of_type(COMMAND) if r.name.endswith(suffix)]


# ---- machines -------------------------------------------------------------------------------


def test_prod_has_the_reference_five_servers(prod):
    droplets = {r.plain("name"): r for r in prod.of_type(DROPLET)}
    assert sorted(droplets) == ["prod-backoffice-1", "prod-manager-1", "prod-ml-1", "prod-ml-2", "prod-ml-3"]
    assert droplets["prod-manager-1"].plain("size") == "s-4vcpu-8gb"
    assert droplets["prod-backoffice-1"].plain("size") == "s-2vcpu-4gb"
    assert {droplets[f"prod-ml-{i}"].plain("size") for i in (1, 2, 3)} == {"m-4vcpu-32gb"}


def test_staging_is_one_small_node_per_role_in_its_own_vpc(prod, staging):
    droplets = {r.plain("name"): r.plain("size") for r in staging.of_type(DROPLET)}
    assert droplets == {"staging-manager-1": "s-2vcpu-4gb", "staging-backoffice-1": "s-1vcpu-2gb", "staging-ml-1": "s-2vcpu-4gb"}
    (staging_vpc,) = staging.of_type(VPC)
    (prod_vpc,) = prod.of_type(VPC)
    assert staging_vpc.plain("ipRange") != prod_vpc.plain("ipRange")
    assert staging_vpc.plain("name") == "staging-vpc"


def test_droplets_are_tagged_in_the_vpc_with_monitoring(prod):
    (vpc,) = prod.of_type(VPC)
    for droplet in prod.of_type(DROPLET):
        role = "manager" if "manager" in droplet.name else "worker"
        assert droplet.plain("tags") == ["swarm-prod", f"swarm-prod-{role}"]
        assert droplet.plain("vpcUuid") == f"{vpc.name}-id"
        assert droplet.plain("monitoring") is True
        assert droplet.plain("region") == "fra1"
        assert droplet.plain("image") == "ubuntu-24-04-x64"
        assert droplet.plain("sshKeys") == ["prod-ssh-id"]


def test_user_data_is_the_rendered_cloud_init(prod):
    from swarm.config import load_stack_config_file

    config = load_stack_config_file(PROJECT_ROOT, "prod")
    for node in config.nodes:
        (droplet,) = [d for d in prod.of_type(DROPLET) if d.plain("name") == node.name]
        key = HostKey(*fake_key_pair(f"prod-{node.pool.name}-{node.index}-host-key"))
        assert droplet.plain("userData") == render_cloud_init(node, key)


def test_database_volume_is_attached_and_survives_replacement(prod):
    (volume,) = prod.of_type(VOLUME)
    assert volume.plain("name") == "prod-manager-1-data"
    assert volume.plain("size") == 100
    assert volume.plain("initialFilesystemType") == "ext4"
    manager = prod.named("prod-manager-1")
    assert manager.plain("volumeIds") == [f"{volume.name}-id"]
    # the volume can only move to the replacement droplet once the old one is gone
    assert manager.options["deleteBeforeReplace"] is True
    assert prod.named("prod-ml-1").options["deleteBeforeReplace"] is False
    # data: Pulumi refuses to delete it; a renamed pool or stack, or an older description, never
    # replaces it (both fields are ForceNew on DigitalOcean)
    assert volume.options["protect"] is True
    assert volume.options["ignoreChanges"] == ["name", "description"]
    assert "mnt" not in volume.plain("description")  # a new mountPath changes nothing here
    assert "mount" not in manager.plain("userData")  # the mount is a remote command


def test_the_volume_is_mounted_before_the_node_joins(prod):
    (volume,) = commands(prod, "-volume")
    assert volume.name == "prod-manager-1-volume"
    assert volume.plain("connection")["host"] == MANAGER_PUBLIC
    assert volume.plain("create") == day2.mount_volume_script(
        "/dev/disk/by-id/scsi-0DO_Volume_prod-manager-1-data", "/mnt/postgresql"
    )
    assert volume.plain("delete") is None  # leaving a node never unmounts or wipes anything
    assert prod.named("prod-manager-1-ready").urn in volume.dependencies
    assert volume.urn in prod.named("prod-init").dependencies


def test_changing_the_mount_path_only_changes_the_mount_command():
    config = cluster_config("prod")
    # Still holding the database's bind mount (/mnt/postgresql/data): a path that left it would be
    # refused (the data would go to the root disk, test_data_off_the_volume_is_refused_...).
    config["nodePools"]["manager"]["volume"]["mountPath"] = "/mnt"
    moved = run_program("prod", config)
    before = run_program("prod", cluster_config("prod"))
    earlier = {(r.type, r.name): r.inputs for r in before.registrations}
    changed = [r.name for r in moved.registrations if r.inputs != earlier[(r.type, r.name)]]
    # the mount, and the manager's swarm-state commands that keep their files on the volume (all
    # re-run in place); no droplet, no volume
    assert sorted(changed) == ["prod-init", "prod-manager-1-swarm-state", "prod-manager-1-volume"]
    assert node_scripts.inputs_of(moved.named("prod-manager-1-volume").plain("create"))["MOUNT_PATH"] == "/mnt"


def test_a_volume_can_be_left_unprotected_explicitly():
    config = stack_config("prod")
    config["nodePools"]["manager"]["volume"]["protect"] = False
    (volume,) = run_program("prod", config).of_type(VOLUME)
    assert volume.options["protect"] is False


def test_renamed_pools_and_stacks_answer_to_their_old_names():
    config = stack_config("prod")
    pools = config["nodePools"]
    config["nodePools"] = {"db": {**pools.pop("manager"), "previousNames": ["manager"]}, **pools}
    config["previousStackNames"] = ["production"]
    run = run_program("prod", config)
    assert run.error is None, run.error
    earlier = ["prod-manager", "production-db", "production-manager"]
    assert sorted(run.named("prod-db").options["aliasNames"]) == earlier
    assert run.named("prod-ml").options["aliasNames"] == ["production-ml"]
    for component in ("swarm:index:Network", "swarm:index:Cluster", "swarm:index:Workloads"):
        (registration,) = run.of_type(component)
        assert registration.options["aliasNames"] == ["production"]
    # the droplet and its volume answer to their names under each earlier pool and stack name;
    # the volume keeps its DigitalOcean name (ignored after creation)
    assert sorted(run.named("prod-db-1").options["aliasNames"]) == [f"{name}-1" for name in earlier]
    (volume,) = run.of_type(VOLUME)
    assert sorted(volume.options["aliasNames"]) == [f"{name}-1-data" for name in earlier]
    assert volume.name == "prod-db-1-data" and volume.options["ignoreChanges"] == ["name", "description"]


# ---- firewall -------------------------------------------------------------------------------


def test_firewall_opens_swarm_ports_only_inside_the_cluster(prod):
    (firewall,) = prod.of_type(FIREWALL)
    assert firewall.plain("tags") == ["swarm-prod"]
    rules = {(r["protocol"], r.get("portRange")): r for r in firewall.plain("inboundRules")}
    for protocol, port in [("tcp", "2377"), ("tcp", "7946"), ("udp", "7946"), ("udp", "4789")]:
        rule = rules[(protocol, port)]
        assert rule["sourceTags"] == ["swarm-prod"]
        assert "sourceAddresses" not in rule
    assert rules[("tcp", "80")]["sourceAddresses"] == ["0.0.0.0/0", "::/0"]
    assert rules[("tcp", "443")]["sourceAddresses"] == ["0.0.0.0/0", "::/0"]
    # SSH is closed in the shipped prod config (docs/security.md): no rule for port 22 at all.
    assert set(rules) == {("icmp", None), ("tcp", "2377"), ("tcp", "7946"), ("udp", "7946"),
                          ("udp", "4789"), ("tcp", "80"), ("tcp", "443")}


def test_ssh_is_open_only_to_admin_cidrs_and_no_port_without_asking():
    config = stack_config("staging")
    config["adminCidrs"] = ["198.51.100.7/32"]
    del config["publicPorts"]
    run = run_program("staging", config)
    (firewall,) = run.of_type(FIREWALL)
    public = [r for r in firewall.plain("inboundRules") if "sourceAddresses" in r]
    assert public == [{"protocol": "tcp", "portRange": "22", "sourceAddresses": ["198.51.100.7/32"]}]


# ---- swarm formation ------------------------------------------------------------------------


def test_reference_layout_gives_one_init_four_joins_and_the_reference_labels(prod):
    assert len(commands(prod, "-init")) == 1
    assert len(commands(prod, "-join")) == 4
    labels = {r.name: node_scripts.inputs_of(r.plain("create"))["LABELS"] for r in commands(prod, "-settings")}
    assert len(labels) == 5
    assert "type=database" in labels["prod-manager-1-settings"].splitlines()
    assert "type=cheap" in labels["prod-backoffice-1-settings"].splitlines()
    for index in (1, 2, 3):
        assert "type=machine-learning" in labels[f"prod-ml-{index}-settings"].splitlines()


def test_init_runs_on_the_first_manager_advertising_its_private_address(prod):
    (init,) = commands(prod, "-init")
    connection = init.plain("connection")
    assert connection["host"] == MANAGER_ADDRESS and connection["user"] == "root"
    # prod's manager has a volume: its successor restores the swarm state kept there.
    assert init.plain("create") == swarm_cluster.init_script(MANAGER_PRIVATE, "/mnt/postgresql/.swarm-state")


def test_a_lone_manager_with_a_volume_keeps_its_swarm_state_there_when_replaced(prod):
    (state,) = commands(prod, "-swarm-state")
    (init,) = commands(prod, "-init")
    assert state.plain("delete") == swarm_cluster.handover_script("/mnt/postgresql/.swarm-state", "node-id-of-prod")
    # Replaced with the droplet (which, holding a volume, is deleted before its successor is
    # created): the engine deletes it, so the backup runs, before the droplet goes.
    droplet = prod.named("prod-manager-1")
    assert unwrap(state.inputs["triggers"]) == [fake_droplet_id(droplet.name)]
    assert droplet.options["deleteBeforeReplace"]
    assert prod.depends_on(state, init)


def without_database_data(tmp_path, config: dict) -> dict:
    """staging's stack file with the database keeping its data in its container: without the
    manager's volume, its bind mount under /mnt would be refused (data off the volume)."""
    stacks = shutil.copytree(PROJECT_ROOT / "stacks", tmp_path / "stacks")  # the catalogue beside it
    document = yaml.safe_load((stacks / "staging.yaml").read_text())
    del document["services"]["database"]["volumes"]
    path = stacks / "staging.yaml"
    path.write_text(yaml.safe_dump(document))
    return {**config, "stackFile": str(path)}


def test_a_lone_manager_without_a_volume_has_no_state_to_hand_over(tmp_path):
    config = stack_config("staging")
    del config["nodePools"]["manager"]["volume"]
    config = without_database_data(tmp_path, config)
    run = run_program("staging", config)
    assert run.error is None
    # Nothing to keep its state on: its handover keeps nothing, and its successor cannot restore.
    (handover,) = commands(run, "-swarm-state")
    assert handover.plain("delete") == swarm_cluster.handover_script(None, "node-id-of-staging")
    assert ".swarm-state" not in commands(run, "-init")[0].plain("create")


def test_joins_use_private_addresses_and_tokens_on_stdin_only(prod):
    for join in commands(prod, "-join"):
        public_ip, private_ip = fake_addresses(join.name.removesuffix("-join"))
        assert join.plain("connection")["host"] == public_ip
        assert join.plain("create") == swarm_cluster.join_script(private_ip, MANAGER_PRIVATE)
        assert "SWMTKN" not in join.plain("create")
        assert is_secret(join.inputs["stdin"])
        assert unwrap(join.inputs["stdin"]) == "SWMTKN-1-worker-fake\n"
        # no delete: removing a node is the manager's job (retire), which needs nothing from the
        # node, whose droplet may already be gone
        assert join.plain("delete") is None


def test_extra_managers_join_with_the_manager_token(tmp_path):
    config = stack_config("staging")
    config["nodePools"]["manager"]["count"] = 3
    # three volumes would leave the database unpinned (see test_volume_data_must_be_pinned...)
    del config["nodePools"]["manager"]["volume"]
    config = without_database_data(tmp_path, config)
    run = run_program("staging", config)
    stdins = {r.name: unwrap(r.inputs["stdin"]) for r in commands(run, "-join")}
    assert stdins["staging-manager-2-join"] == "SWMTKN-1-manager-fake\n"
    assert stdins["staging-manager-3-join"] == "SWMTKN-1-manager-fake\n"
    assert stdins["staging-ml-1-join"] == "SWMTKN-1-worker-fake\n"


def test_join_tokens_are_secret_and_never_logged(prod):
    (tokens,) = commands(prod, "-join-tokens")
    assert "stdout" in tokens.options["additionalSecretOutputs"]
    assert tokens.plain("logging") == "none"
    assert tokens.plain("addPreviousOutputInEnv") is False


def test_dependency_graph(prod):
    (init,) = commands(prod, "-init")
    (tokens,) = commands(prod, "-join-tokens")
    joins = commands(prod, "-join")
    settings = commands(prod, "-settings")
    assert prod.depends_on(tokens, init)
    for join in joins:
        assert prod.depends_on(join, init)
        assert prod.depends_on(join, prod.named(join.name.replace("-join", "-ready")))
        assert not any(prod.depends_on(join, other) for other in joins if other is not join)
    for setting in settings:
        node_step = init if setting.name == "prod-manager-1-settings" else prod.named(setting.name.replace("-settings", "-join"))
        assert prod.depends_on(setting, node_step)


def test_graph_depth_does_not_grow_with_node_count(prod):
    config = stack_config("prod")
    config["nodePools"]["ml"]["count"] = 20
    big = run_program("prod", config)
    assert big.error is None
    assert len(commands(big, "-join")) == 21
    depth = max(prod.depth(r) for r in commands(prod, "-settings"))
    assert max(big.depth(r) for r in commands(big, "-settings")) == depth


def test_settings_retire_every_node_the_first_manager_too(prod):
    # The first manager's old node is retired by its successor, at the reserved IP, once the
    # successor has joined the managers that kept the swarm.
    for setting in commands(prod, "-settings"):
        node = setting.name.removesuffix("-settings")
        node_id = f"node-id-of-{node}" if node != "prod-manager-1" else "node-id-of-prod"
        assert setting.plain("connection")["host"] == MANAGER_ADDRESS  # run on the manager
        assert setting.plain("triggers") == [node_id]  # a new node ID replaces the command
        pool = node.split("-")[1]
        slots = day2.MANAGERS_SLOT if pool == "manager" else pool  # managers: one at a time, every pool
        assert setting.plain("delete") == day2.retire_script(node_id, slots, 600)


def test_a_pools_max_unavailable_reaches_its_retirements():
    config = stack_config("prod")
    config["nodePools"]["ml"]["maxUnavailable"] = 2
    program = run_program("prod", config)
    retire = {r.name: r.plain("delete") for r in commands(program, "-settings")}
    assert retire["prod-ml-1-settings"] == day2.retire_script("node-id-of-prod-ml-1", "ml", 600, max_unavailable=2)
    assert retire["prod-backoffice-1-settings"] == day2.retire_script("node-id-of-prod-backoffice-1", "backoffice", 600)


def test_the_first_manager_asks_the_other_managers_for_their_swarm_before_init():
    config = stack_config("prod")
    config["nodePools"]["control"] = {"role": "manager", "count": 2, "size": "s-2vcpu-4gb"}
    program = run_program("prod", config)
    assert program.error is None
    probes = commands(program, "-probe")
    assert sorted(p.name for p in probes) == ["prod-control-1-probe", "prod-control-2-probe"]
    (init,) = commands(program, "-init")
    for probe in probes:
        assert probe.plain("create") == swarm_cluster.manager_probe_script()
        assert "stdout" in probe.options["additionalSecretOutputs"] and probe.plain("logging") == "none"
        assert program.depends_on(init, probe)  # its answer is init's stdin
    assert is_secret(init.inputs["stdin"])  # manager join tokens, encrypted in state
    # a lone manager has no one to ask: nothing to read on stdin
    (lone_init,) = commands(run_program("prod", stack_config("prod")), "-init")
    assert lone_init.plain("stdin") is None


def test_label_changes_rerun_settings_without_replacing_anything():
    config = cluster_config("prod")
    config["nodePools"]["ml"]["labels"] = {"type": "machine-learning", "tier": "gpu-less"}
    relabelled = run_program("prod", config)
    before = {r.name: r for r in run_program("prod", cluster_config("prod")).registrations}
    after = {r.name: r for r in relabelled.registrations}
    changed = {name for name in before if unwrap(before[name].inputs) != unwrap(after[name].inputs)}
    # ... and the convergence check runs again after the node change.
    assert changed == {"prod-ml-1-settings", "prod-ml-2-settings", "prod-ml-3-settings", "prod-converge"}
    assert "tier=gpu-less" in node_scripts.inputs_of(after["prod-ml-1-settings"].plain("create"))["LABELS"].splitlines()


def test_ready_commands_wait_for_boot_with_unlimited_dials_bounded_by_a_timeout(prod):
    for ready in commands(prod, "-ready"):
        assert ready.plain("connection")["dialErrorLimit"] == -1
        assert ready.options["customTimeouts"].create == "20m"
        assert ready.plain("create") == swarm_cluster.wait_ready_script()


# ---- outputs --------------------------------------------------------------------------------


def test_outputs(prod):
    nodes = prod.exports["nodes"]
    assert [n["name"] for n in nodes] == ["prod-manager-1", "prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3"]
    assert nodes[0] == {
        "name": "prod-manager-1", "pool": "manager", "role": "manager", "size": "s-4vcpu-8gb",
        "publicIp": MANAGER_PUBLIC, "privateIp": MANAGER_PRIVATE, "nodeId": "node-id-of-prod",
        "labels": {"type": "database"},
    }
    assert prod.exports["managerAddress"] == MANAGER_ADDRESS
    assert prod.exports["dockerHost"] == f"ssh://root@{MANAGER_ADDRESS}"
    assert prod.exports["estimatedMonthlyCostUsd"] == 48 + 24 + 3 * 168
    # The shipped prod stack backs its database up: its bucket, and the key that decrypts the
    # backups (to keep outside the cluster), secret like the SSH key.
    assert prod.secret_exports == {"sshPrivateKey", "backupEncryptionKey"}
    assert prod.exports["backups"]["bucket"] == "acme-prod-backups"
    assert "scheduledJobs" in prod.exports
    manager_key = fake_key_pair("prod-manager-1-host-key")[1].strip()
    assert prod.exports["knownHosts"].splitlines()[:2] == [f"{MANAGER_ADDRESS} {manager_key}", f"{MANAGER_PUBLIC} {manager_key}"]


def test_a_configured_key_pair_is_used_and_kept_secret():
    config = stack_config("staging")
    config["sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyOperatorKeyOperatorKey ops@example"
    config["sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY-----\noperator\n-----END OPENSSH PRIVATE KEY-----\n"
    run = run_program("staging", config)
    assert run.error is None
    # no operator key is generated (the nodes' host keys are, one each)
    assert [r.name for r in run.of_type("tls:index/privateKey:PrivateKey") if not r.name.endswith("-host-key")] == []
    (key,) = run.of_type("digitalocean:index/sshKey:SshKey")
    assert key.plain("publicKey") == config["sshPublicKey"]
    assert "sshPrivateKey" in run.secret_exports
    (init,) = commands(run, "-init")
    assert is_secret(init.inputs["connection"]) or is_secret(init.inputs["connection"]["privateKey"])


# ---- bad input ------------------------------------------------------------------------------

BAD_INPUTS = {
    "unknown role": (lambda c: c["nodePools"]["ml"].update(role="boss"), "swarm:nodePools.ml.role"),
    "negative count": (lambda c: c["nodePools"]["ml"].update(count=-1), "swarm:nodePools.ml.count"),
    "no manager pool": (lambda c: c["nodePools"].pop("manager"), "swarm:nodePools"),
    "bad label key": (lambda c: c["nodePools"]["ml"]["labels"].update({"bad key!": "x"}), "swarm:nodePools.ml.labels.bad key!"),
    "unknown size": (lambda c: c["nodePools"]["ml"].update(size="m-4vcpu-32gbb"), "swarm:nodePools.ml.size"),
    "malformed CIDR": (lambda c: c.update(adminCidrs=["10.0.0.300/8"]), "swarm:adminCidrs[0]"),
    "missing stack file": (lambda c: c.update(stackFile="stacks/nope.yaml"), "swarm:stackFile"),
    "misspelled top-level key": (lambda c: c.update(convergeTimout="5m"), "swarm:convergeTimout"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_registers_nothing_and_names_the_key(case):
    mutate, key = BAD_INPUTS[case]
    config = copy.deepcopy(stack_config("prod"))
    mutate(config)
    run = run_program("prod", config)
    assert run.error is not None
    assert f"{key}:" in str(run.error)
    assert "Pulumi.prod.yaml" in str(run.error)
    assert run.registrations == []


def test_all_problems_are_reported_at_once():
    config = copy.deepcopy(stack_config("prod"))
    for mutate, _ in BAD_INPUTS.values():
        if mutate is not BAD_INPUTS["no manager pool"][0]:
            mutate(config)
    run = run_program("prod", config)
    message = str(run.error)
    for case, (_, key) in BAD_INPUTS.items():
        if case != "no manager pool":
            assert f"{key}:" in message, case
    assert run.registrations == []


def test_volume_data_must_be_pinned_to_the_one_node_holding_the_volume():
    # Three managers labelled type=database, each with its own volume: the database's task
    # could be rescheduled onto another manager's empty volume. Preview fails, naming it.
    config = stack_config("staging")
    config["nodePools"]["manager"]["count"] = 3
    run = run_program("staging", config)
    assert run.registrations == []
    message = str(run.error)
    assert "1 problem in the stack configuration; nothing was deployed" in message
    assert ("staging.yaml: services.database: bind-mounts /mnt/postgresql/data, on a node's own block-storage "
            "volume, but its constraints match 3 nodes holding such a volume (staging-manager-1, staging-manager-2, "
            "staging-manager-3)") in message
    assert "add `node.hostname == staging-manager-1` to its placement constraints" in message


def test_a_misspelled_top_level_key_stops_the_program_with_a_suggestion():
    config = copy.deepcopy(stack_config("prod"))
    config["publicPort"] = config.pop("publicPorts")  # the typo would otherwise close the ports
    run = run_program("prod", config)
    assert isinstance(run.error, pulumi.RunError)
    assert "swarm:publicPort: unknown key" in str(run.error) and "did you mean swarm:publicPorts?" in str(run.error)
    assert run.registrations == []


def test_a_yaml_mistake_in_the_stack_file_is_a_located_error_without_traceback(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: swarm\n")  # files are named relative to their project
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "broken.yaml").write_text("services:\n  api:\n    image: x\n   deploy: {}\n")
    config = copy.deepcopy(stack_config("prod"))
    config["stackFile"] = str(tmp_path / "stacks" / "broken.yaml")
    run = run_program("prod", config)
    assert isinstance(run.error, pulumi.RunError)  # the engine prints a RunError without a traceback
    message = str(run.error)
    assert "stacks/broken.yaml:4:4: is not valid YAML: did not find expected key" in message
    assert "<unicode string>" not in message and str(tmp_path) not in message
    assert run.registrations == []


def test_the_manager_is_reached_at_a_reserved_ip_that_follows_its_droplet(prod):
    """A delete runs with its old connection: after a manager replacement, a retired node's
    settings must still reach a manager at the address they knew."""
    (address,) = prod.of_type("digitalocean:index/reservedIp:ReservedIp")
    (assignment,) = prod.of_type("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")
    assert address.plain("region") == "fra1"
    assert assignment.plain("dropletId") == int(fake_droplet_id("prod-manager-1"))
    assert assignment.options["deleteBeforeReplace"], "assigning moves the IP; unassigning the old would take it back"
    for command in prod.of_type("command:remote:Command"):
        if command.name.endswith(("-settings", "-init", "-join-tokens", "-converge")):
            assert command.plain("connection")["host"] == MANAGER_ADDRESS, command.name
            assert prod.depends_on(command, assignment), command.name


def test_the_first_managers_handover_goes_to_the_reserved_ip_and_names_its_node():
    """Issue 20: a delete at a droplet's own address fails on every later `up` once the droplet
    is lost outside Pulumi (pulumi-command reads nothing back on refresh). The handover goes to
    the reserved IP, pinned to the node's host key (its successor's too), depends on the
    assignment (so that with a volume it runs before the IP moves), and carries the node ID its
    init printed: the script acts on that node alone."""
    config = cluster_config("prod")
    config["nodePools"] = {"control": {"role": "manager", "count": 2, "size": "s-1vcpu-2gb"}, **config["nodePools"]}
    run = run_program("prod", config)
    assert run.error is None, run.error
    (handover,) = commands(run, "-swarm-state")
    assert handover.name == "prod-control-1-swarm-state"
    connection = handover.plain("connection")
    assert connection["host"] == MANAGER_ADDRESS
    assert connection["hostKey"] == commands(run, "prod-control-1-ready")[0].plain("connection")["hostKey"]
    assert run.depends_on(handover, run.of_type("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")[0])
    assert node_scripts.inputs_of(handover.plain("delete"))["NODE"] == "node-id-of-prod"


def test_a_worker_is_replaced_for_a_new_size_and_a_manager_resized_in_place(prod):
    for droplet in prod.of_type("digitalocean:index/droplet:Droplet"):
        expected = [] if droplet.plain("name").startswith("prod-manager-") else ["size"]
        assert droplet.options["replaceOnChanges"] == expected, droplet.name


def test_data_off_the_volume_is_refused_at_preview_naming_both_paths():
    # issue 20: a volume at /mnt/postgres and the database bound at /mnt/postgresql/data would
    # write to the root disk, lost with the droplet; no volume at all, likewise.
    config = stack_config("staging")
    config["nodePools"]["manager"]["volume"]["mountPath"] = "/mnt/postgres"
    run = run_program("staging", config)
    assert run.registrations == []
    message = str(run.error)
    assert "bind-mounts /mnt/postgresql/data" in message and "mounted at /mnt/postgres" in message
    assert "lost when the droplet is replaced" in message
    del config["nodePools"]["manager"]["volume"]
    assert "has a volume" in str(run_program("staging", config).error)
