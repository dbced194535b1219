"""The stack file deployed by the real program (under mocks): networks, secrets, services, and
the convergence check that waits for them."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from components.workloads import resolved, ssh_options, write_key_file, write_known_hosts
from swarm import node_scripts
from swarm.node_scripts import swarm_cluster
from tests.pulumi_program import MANAGER_ADDRESS, TEST_SECRET_PREFIX, is_secret, run_program, stack_config, unwrap
from tests.unit.release_stack import PRIVATE, config_for

SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
NETWORK = "docker:index/network:Network"



def services(run):
    return {r.plain("name"): r for r in run.of_type(SERVICE)}


def test_the_reference_services_are_deployed_with_stack_names(prod):
    deployed = services(prod)
    models = ["prod_spacy-de-lg", "prod_spacy-en-lg", "prod_spacy-en-md", "prod_spacy-en-sm", "prod_spacy-en-trf",
              "prod_spacy-xx-ner"]  # from stacks/models/prod.yaml
    assert sorted(deployed) == ["prod_api", "prod_backoffice", "prod_database", *models]
    for service in deployed.values():
        labels = {label["label"]: label["value"] for label in service.plain("labels")}
        assert labels["com.docker.stack.namespace"] == "prod"
        container_labels = {label["label"]: label["value"] for label in service.plain("taskSpec")["containerSpec"]["labels"]}
        assert container_labels["com.docker.stack.namespace"] == "prod"


def test_api_placement_resources_and_replicas(prod):
    api = services(prod)["prod_api"]
    task = api.plain("taskSpec")
    assert api.plain("mode") == {"replicated": {"replicas": 3}}
    assert task["placement"]["constraints"] == ["node.role==worker", "node.labels.type==machine-learning"]
    assert task["resources"]["limits"] == {"nanoCpus": 800_000_000, "memoryBytes": 10 * 1024**3}
    assert task["resources"]["reservation"] == {"nanoCpus": 500_000_000, "memoryBytes": 5 * 1024**3}
    assert api.plain("updateConfig")["order"] == "start-first"
    assert api.plain("updateConfig")["failureAction"] == "rollback"


def test_external_network_keeps_its_name_and_services_attach_by_id(prod):
    (network,) = prod.of_type(NETWORK)
    assert network.plain("name") == "main_network"
    assert network.plain("driver") == "overlay" and network.plain("attachable") is True
    for service in services(prod).values():
        attachments = service.plain("taskSpec")["networksAdvanceds"]
        assert [a["id"] for a in attachments] == [f"{network.name}-id"]


def test_database_is_pinned_with_its_data_and_secret_files(prod):
    database = services(prod)["prod_database"]
    container = database.plain("taskSpec")["containerSpec"]
    assert database.plain("taskSpec")["placement"]["constraints"] == ["node.role==manager", "node.labels.type==database"]
    assert container["mounts"] == [{"type": "bind", "source": "/mnt/postgresql/data", "target": "/var/lib/postgresql/data"}]
    assert container["env"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    secrets = {s["fileName"]: s for s in container["secrets"]}
    assert sorted(secrets) == ["/run/secrets/db_name", "/run/secrets/db_password", "/run/secrets/db_user"]
    assert secrets["/run/secrets/db_password"]["secretId"] == "prod-secret-db_password-id"
    assert database.plain("updateConfig")["order"] == "stop-first"


def test_secret_values_are_secret_and_absent_from_outputs(prod):
    for secret in prod.of_type(SECRET):
        assert is_secret(secret.inputs["data"])
        key = secret.name.removeprefix("prod-secret-")
        assert base64.b64decode(unwrap(secret.inputs["data"])).decode() == TEST_SECRET_PREFIX + key
        assert secret.plain("name").startswith(f"prod_{key}_")
    assert TEST_SECRET_PREFIX not in repr(prod.exports)


def test_rotating_a_secret_renames_only_that_secret():
    config = stack_config("prod")
    before = run_program("prod", config)
    config["secrets"]["db_password"] = "rotated"
    after = run_program("prod", config)
    names_before = {s.name: s.plain("name") for s in before.of_type(SECRET)}
    names_after = {s.name: s.plain("name") for s in after.of_type(SECRET)}
    assert names_before["prod-secret-db_password"] != names_after["prod-secret-db_password"]
    assert names_before["prod-secret-db_user"] == names_after["prod-secret-db_user"]
    # same logical resource, new swarm name: Pulumi replaces it create-before-delete
    assert not after.named("prod-secret-db_password").options["deleteBeforeReplace"]
    database = services(after)["prod_database"].plain("taskSpec")["containerSpec"]["secrets"]
    assert names_after["prod-secret-db_password"] in {s["secretName"] for s in database}


def test_everything_waits_for_the_swarm_to_be_formed_and_labelled(prod):
    settings = [r for r in prod.registrations if r.name.endswith("-settings")]
    assert len(settings) == 5
    for resource in prod.of_type(SERVICE) + prod.of_type(SECRET) + prod.of_type(NETWORK):
        assert all(prod.depends_on(resource, setting) for setting in settings), resource.name


def test_docker_provider_reaches_the_manager_over_ssh_with_the_cluster_key(prod):
    (provider,) = prod.of_type("pulumi:providers:docker")
    assert provider.plain("host") == f"ssh://root@{MANAGER_ADDRESS}"  # the manager's reserved IP
    options = unwrap(provider.inputs["sshOpts"])
    if isinstance(options, str):  # provider config arrives JSON-encoded
        import json

        options = json.loads(options)
    key_file = options[options.index("-i") + 1]
    assert "OPENSSH PRIVATE KEY" in open(key_file).read()
    for resource in prod.of_type(SERVICE) + prod.of_type(SECRET) + prod.of_type(NETWORK):
        assert resource.options["provider"].startswith(provider.urn + "::"), resource.name


def test_key_file_is_private(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    path = write_key_file("qa", "-----BEGIN KEY-----\nabc\n-----END KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().endswith("-----END KEY-----\n")
    known_hosts = write_known_hosts("qa", "203.0.113.5 ssh-ed25519 AAAAC3Nza")
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600 and known_hosts.parent == path.parent
    assert known_hosts.read_text() == "203.0.113.5 ssh-ed25519 AAAAC3Nza\n"
    options = ssh_options(path, known_hosts)
    assert options[:2] == ["-i", str(path)]
    # strict checking against the program's known_hosts only: no trust on first use, no /dev/null
    assert "StrictHostKeyChecking=yes" in options and f"UserKnownHostsFile={known_hosts}" in options
    assert not any(option.startswith("StrictHostKeyChecking=no") or "/dev/null" in option and "User" in option
                   for option in options)
    os.chmod(path.parent, 0o755)
    with pytest.raises(PermissionError):
        write_key_file("qa", "key")


def test_two_runs_of_one_stack_keep_their_own_host_keys(tmp_path, monkeypatch):
    # A unit-test run beside a lifecycle run of stack prod rewrote its known_hosts under it and
    # the provider's ssh refused the manager: each text now has a file of its own.
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    first = write_known_hosts("prod", "203.0.113.5 ssh-ed25519 AAAAfirst")
    second = write_known_hosts("prod", "198.51.100.7 ssh-ed25519 AAAAsecond")
    assert first != second
    assert first.read_text() == "203.0.113.5 ssh-ed25519 AAAAfirst\n"
    assert write_known_hosts("prod", "203.0.113.5 ssh-ed25519 AAAAfirst") == first  # same text, same file
    assert sorted(p.name.startswith(".") for p in first.parent.iterdir()) == [False, False]  # no partial left


def test_stack_file_errors_register_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "services:\n"
        "  api:\n"
        "    image: x\n"
        "    deploy:\n"
        "      resources: {limits: {memory: 10 gigs}}\n"
        "      placement: {constraints: ['node.labels.type = ml']}\n"
        "    secrets: [undeclared]\n"
    )
    config = stack_config("prod")
    config["stackFile"] = str(bad)
    run = run_program("prod", config)
    message = str(run.error)
    assert "services.api.deploy.resources.limits.memory" in message
    assert "services.api.deploy.placement.constraints" in message
    assert "services.api.secrets" in message
    assert str(bad) in message
    assert run.registrations == []


def test_external_secret_without_a_value_registers_nothing():
    config = stack_config("prod")
    del config["secrets"]["db_password"]
    run = run_program("prod", config)
    assert "db_password" in str(run.error) and "swarm:secrets" in str(run.error)
    assert run.registrations == []


# ---- convergence (the release stack, tests/unit/release_stack.py) ------------------------------


def test_the_manager_waits_for_every_service_after_all_of_them_are_created(release):
    converge = release.named("prod-converge")
    assert converge.plain("connection")["host"] == MANAGER_ADDRESS  # the reserved IP
    for service in release.of_type(SERVICE):
        assert release.depends_on(converge, service)
    script = converge.plain("create")
    targets = swarm_cluster.converge_script(
        [
            swarm_cluster.ConvergeTarget("prod_database", 1),
            swarm_cluster.ConvergeTarget("prod_api", 3),
            swarm_cluster.ConvergeTarget("prod_backoffice", 1),
            # global: one task on every worker
            swarm_cluster.ConvergeTarget("prod_agent", 4, ("prod-backoffice-1", "prod-ml-1", "prod-ml-2", "prod-ml-3")),
        ],
        240,
        digest=node_scripts.inputs_of(script)["DIGEST"],
    )
    assert script == targets
    assert node_scripts.inputs_of(script)["TIMEOUT"] == "240"  # swarm:convergeTimeout 4m
    assert converge.options["customTimeouts"].create == converge.options["customTimeouts"].update == "360s"
    assert converge.plain("triggers") is None  # an update re-runs it; nothing replaces it


def test_resolving_nested_inputs_in_one_step_gives_what_from_input_gives():
    """The convergence digest and the services table resolve their Outputs with `resolved`, one
    Output for the whole structure instead of one per key and value: value, secrecy, unknowns (a
    preview's not yet known ids) and the resources waited for must stay those of `from_input`."""
    import asyncio
    import json

    import pulumi
    import pulumi_docker as docker

    def unknown() -> pulumi.Output:
        value, known = asyncio.Future(), asyncio.Future()
        value.set_result(None)
        known.set_result(False)
        return pulumi.Output(set(), value, known)

    def program(with_unknown: bool):
        network = docker.Network("net", name="net")
        value = {"a": [network.id, {"b": (1, pulumi.Output.secret("s"))}], "c": None, "d": {}, "e": [], "f": "g"}
        if with_unknown:
            value["h"] = [unknown()]
        for name, output in (("flat", resolved(value)), ("deep", pulumi.Output.from_input(value))):
            pulumi.export(name, output)
            docker.Network(f"{name}-user", name=output.apply(lambda v: json.dumps(v, sort_keys=True)))

    for with_unknown in (False, True):
        run = run_program("prod", {}, program=lambda with_unknown=with_unknown: program(with_unknown))
        assert run.error is None, run.error
        assert run.exports["flat"] == run.exports["deep"]
        assert {"flat", "deep"} <= run.secret_exports
        flat, deep = run.named("flat-user"), run.named("deep-user")
        assert flat.dependencies == deep.dependencies == {run.named("net").urn}
        assert flat.inputs.get("name") == deep.inputs.get("name")
        if with_unknown:
            assert run.exports["flat"] is None and flat.plain("name") is None  # unknown, not applied
        else:
            assert run.exports["flat"]["a"] == ["net-id", {"b": (1, "s")}]


def test_the_default_convergence_timeout_is_ten_minutes(release_stack_file):
    run = run_program("prod", config_for(release_stack_file))
    assert node_scripts.inputs_of(run.named("prod-converge").plain("create"))["TIMEOUT"] == "600"


def test_the_convergence_check_runs_again_exactly_when_a_service_changes(release_stack_file, release):
    config = config_for(release_stack_file, **PRIVATE)
    again = run_program("prod", config)
    assert again.named("prod-converge").plain("create") == release.named("prod-converge").plain("create")
    # New credentials update the services that pull with them (their label): checked again too.
    rotated = run_program("prod", {**config, "registryPassword": "rotated"})
    assert rotated.named("prod-converge").plain("create") != release.named("prod-converge").plain("create")
    released = run_program("prod", {**config, "images": {"backoffice": "registry.example.com:5000/nlp/backoffice:1.0.1"}})
    assert released.named("prod-converge").plain("create") != release.named("prod-converge").plain("create")


def test_the_convergence_check_runs_again_when_a_node_changes(release_stack_file, release):
    config = config_for(release_stack_file, **PRIVATE)
    before = release.named("prod-converge").plain("create")

    def with_ml(**changes):
        return {**config, "nodePools": {**config["nodePools"], "ml": {**config["nodePools"]["ml"], **changes}}}

    for changed in (with_ml(size="m-8vcpu-64gb"), with_ml(labels={"type": "machine-learning", "zone": "a"}),
                    with_ml(count=2)):
        run = run_program("prod", changed)
        assert run.error is None, run.error
        assert run.named("prod-converge").plain("create") != before
