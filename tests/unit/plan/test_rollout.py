"""What a release deploys around its services (swarm/plan/rollout.py), as the program wires it: the
bind-mount folders prepared on exactly the nodes where their service may run, and image overrides
from CI (`swarm:images`) that change only their service."""

from __future__ import annotations

from swarm import node_scripts
from swarm.node_scripts import swarm_cluster
from tests.pulumi_program import cluster_config, fake_addresses, fake_droplet_id, run_program, unwrap
from tests.unit.release_stack import commands, config_for, services

# ---- bind-mount folders ---------------------------------------------------------------------


def folder_paths(command) -> list[str]:
    # FOLDERS: one "OWNER MODE PATH" a line
    return [line.split(" ", 2)[2] for line in node_scripts.inputs_of(command.plain("create"))["FOLDERS"].splitlines()]


def test_folders_are_prepared_on_exactly_the_nodes_where_their_service_may_run(release):
    folders = commands(release, "-folders")
    assert {name: folder_paths(command) for name, command in folders.items()} == {
        "prod-manager-1-folders": ["/mnt/postgresql/data"],
        "prod-backoffice-1-folders": ["/var/log/agent"],  # the global agent runs on every worker
        **{f"prod-ml-{i}-folders": ["/srv/cache", "/srv/models", "/var/log/agent"] for i in (1, 2, 3)},
    }
    for name, command in folders.items():
        node = name.removesuffix("-folders")
        assert command.plain("connection")["host"] == fake_addresses(node)[0]  # on the node itself
        assert command.plain("create") == swarm_cluster.prepare_folders_script(
            [swarm_cluster.Folder(p, *(("999:999", "0700") if p == "/mnt/postgresql/data" else ())) for p in folder_paths(command)]
        )


def test_a_folder_is_prepared_after_its_node_has_joined_and_again_on_a_new_droplet(release):
    for name, command in commands(release, "-folders").items():
        node = name.removesuffix("-folders")
        assert release.depends_on(command, release.named(f"{node}-settings"))
        assert command.plain("triggers") == [fake_droplet_id(node)]  # the droplet's id
        assert command.plain("delete") is None  # folders hold data: never removed


def test_each_service_waits_for_the_folders_of_the_nodes_it_may_run_on(release):
    folders = commands(release, "-folders")
    waits = {
        key: sorted(name for name, command in folders.items() if release.depends_on(service, command))
        for key, service in services(release).items()
    }
    assert waits == {
        "database": ["prod-manager-1-folders"],
        "api": ["prod-ml-1-folders", "prod-ml-2-folders", "prod-ml-3-folders"],
        "backoffice": [],
        "agent": ["prod-backoffice-1-folders", "prod-ml-1-folders", "prod-ml-2-folders", "prod-ml-3-folders"],
    }


def test_a_declared_folder_no_service_mounts_stops_the_deployment(release_stack_file):
    run = run_program("prod", config_for(release_stack_file, bindMounts={"/mnt/postgres/data": {"mode": "0700"}}))
    assert "swarm:bindMounts./mnt/postgres/data" in str(run.error)
    assert run.registrations == []


# ---- releases: image overrides ------------------------------------------------------------------


def test_an_image_override_changes_only_that_service():
    # The checked-in prod cluster without its backups, whose status command runs at every up.
    before = run_program("prod", cluster_config("prod"))
    after = run_program("prod", {**cluster_config("prod"), "images": {"api": "registry.example.com/nlp/api:2.0.2"}})
    assert after.error is None, after.error
    old = {r.name: unwrap(r.inputs) for r in before.registrations}
    new = {r.name: unwrap(r.inputs) for r in after.registrations}
    assert old.keys() == new.keys()
    assert {name for name in old if old[name] != new[name]} == {"prod-api", "prod-converge"}
    api_old, api_new = old["prod-api"], new["prod-api"]
    assert api_new["taskSpec"]["containerSpec"]["image"] == "registry.example.com/nlp/api:2.0.2"
    # the image and the stack's image label; the update policy (rolling, rollback) is untouched
    api_old["taskSpec"]["containerSpec"]["image"] = api_new["taskSpec"]["containerSpec"]["image"]
    api_old["labels"] = api_new["labels"]
    assert api_old == api_new
    assert after.exports["services"]["api"]["image"] == "registry.example.com/nlp/api:2.0.2"


def test_an_override_for_an_unknown_service_registers_nothing():
    run = run_program("prod", {**cluster_config("prod"), "images": {"apii": "registry.example.com/nlp/api:2.0.2"}})
    message = str(run.error)
    assert "swarm:images.apii: prod.yaml has no service 'apii'; did you mean api?" in message
    assert run.registrations == []
    run = run_program("prod", {**cluster_config("prod"), "images": {"worker": "registry.example.com/nlp/worker:1"}})
    assert "swarm:images.worker: prod.yaml has no service 'worker'; its services are backoffice, api, database" in str(run.error)
