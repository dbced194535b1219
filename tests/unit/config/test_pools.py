"""Node pools (swarm/config/pools.py): each pool's role, count, size, GPU, image, labels, volume
and maxUnavailable are checked, every mistake named under its pool's path."""

from __future__ import annotations

import pytest

from tests.unit.config.stack_configs import parse, paths, problems, prod


def test_values_may_arrive_as_json_numbers():
    values = prod()
    values["nodePools"]["ml"]["count"] = 3.0  # JSON has no integers
    assert [n.index for n in parse(values).nodes if n.pool.name == "ml"] == [1, 2, 3]


def test_pool_mistakes_are_each_named():
    values = prod()
    values["nodePools"]["ml"].update(role="boss", count="three", sizes="typo", image="Ubuntu 24", gpu="yes")
    values["nodePools"]["ml"]["labels"] = {"type": 3, "ok": "fine"}
    found = problems(values)
    assert set(found) == {
        "swarm:nodePools.ml.role", "swarm:nodePools.ml.count", "swarm:nodePools.ml.sizes",
        "swarm:nodePools.ml.image", "swarm:nodePools.ml.gpu", "swarm:nodePools.ml.labels.type",
    }
    assert "unknown key" in found["swarm:nodePools.ml.sizes"]
    assert "quoted string" in found["swarm:nodePools.ml.labels.type"]


def test_unknown_size_suggests_close_slugs():
    values = prod()
    values["nodePools"]["ml"]["size"] = "m-4vcpu-32g"
    assert "did you mean m-4vcpu-32gb" in problems(values)["swarm:nodePools.ml.size"]


def test_gpu_flag_and_size_must_agree():
    values = prod()
    values["nodePools"]["ml"]["gpu"] = True
    assert "has no GPU" in problems(values)["swarm:nodePools.ml.size"]
    values["nodePools"]["ml"].update(gpu=False, size="gpu-h100x1-80gb")
    assert "set `gpu: true`" in problems(values)["swarm:nodePools.ml.size"]


@pytest.mark.parametrize("key", ["bad key!", "type=x", "ty pe", ""])
def test_label_keys_swarm_cannot_constrain_on_are_refused(key):
    values = prod()
    values["nodePools"]["ml"]["labels"] = {key: "x"}
    assert "placement constraint" in problems(values)[f"swarm:nodePools.ml.labels.{key}"]


def test_a_dotted_label_key_or_pool_name_stays_one_element_of_the_problem_path():
    values = prod()
    values["nodePools"]["ml"]["labels"] = {"com.example.tier": "two words"}
    values["nodePools"]["gpu.v2"] = {**values["nodePools"]["backoffice"], "previousNames": ["Old"]}
    found = paths(values)
    assert ("swarm:nodePools", "ml", "labels", "com.example.tier") in found
    assert ("swarm:nodePools", "gpu.v2") in found
    assert ("swarm:nodePools", "gpu.v2", "previousNames", 0) in found
    assert "swarm:nodePools.ml.labels.com.example.tier" in problems(values)


def test_no_manager_pool():
    values = prod()
    values["nodePools"]["manager"]["role"] = "worker"
    assert "role: manager" in problems(values)["swarm:nodePools"]
    values["nodePools"]["manager"].update(role="manager", count=0)
    assert "swarm:nodePools" in problems(values)


def test_even_manager_count_is_a_warning_not_an_error():
    values = prod()
    values["nodePools"]["manager"]["count"] = 2
    assert any("odd number" in warning for warning in map(str, parse(values).warnings))


def test_a_lone_manager_without_a_volume_is_warned_that_a_replacement_starts_a_new_swarm():
    values = prod()
    assert not any("lone manager" in w for w in map(str, parse(values).warnings)), "prod's manager has a volume"
    del values["nodePools"]["manager"]["volume"]
    (warning,) = [w for w in map(str, parse(values).warnings) if "lone manager" in w]
    assert "swarm:nodePools.manager" in warning and "new, empty swarm" in warning


def test_volume_mistakes():
    values = prod()
    values["nodePools"]["manager"]["volume"] = {"sizeGb": 0, "mountPath": "/etc/data", "fs": "xfs"}
    found = problems(values)
    assert set(found) == {
        "swarm:nodePools.manager.volume.sizeGb", "swarm:nodePools.manager.volume.mountPath",
        "swarm:nodePools.manager.volume.fs",
    }


def test_gpu_pools_get_the_gpu_image_and_label():
    values = {**prod(), "region": "tor1"}
    values["nodePools"]["gpu"] = {"role": "worker", "count": 2, "size": "gpu-l40sx1-48gb", "gpu": True}
    pool = next(p for p in parse(values).pools if p.name == "gpu")
    assert pool.image == "gpu-h100x1-base" and pool.labels == {"gpu": "true"}
    values["nodePools"]["gpu"]["labels"] = {"gpu": "false"}
    assert "labelled gpu=true" in problems(values)["swarm:nodePools.gpu.labels.gpu"]


def test_volumes_are_protected_unless_the_pool_opts_out_explicitly():
    assert parse(prod()).pools[0].volume.protect is True
    values = prod()
    values["nodePools"]["manager"]["volume"]["protect"] = False
    assert parse(values).pools[0].volume.protect is False
    values["nodePools"]["manager"]["volume"]["protect"] = "no"
    assert "must be true" in problems(values)["swarm:nodePools.manager.volume.protect"]


def test_a_pool_retires_one_node_at_a_time_unless_max_unavailable_says_more():
    assert {pool.name: pool.max_unavailable for pool in parse(prod()).pools} == {"manager": 1, "backoffice": 1, "ml": 1}
    values = prod()
    values["nodePools"]["ml"]["maxUnavailable"] = 2
    assert {pool.name: pool.max_unavailable for pool in parse(values).pools}["ml"] == 2
    values["nodePools"]["ml"]["maxUnavailable"] = 4
    values["nodePools"]["backoffice"]["maxUnavailable"] = 0
    values["nodePools"]["manager"]["maxUnavailable"] = 2
    found = problems(values)
    assert "more than the pool's 3 nodes; use at most 3" in found["swarm:nodePools.ml.maxUnavailable"]
    assert "use a whole number >= 1" in found["swarm:nodePools.backoffice.maxUnavailable"]
    assert "managers leave one at a time" in found["swarm:nodePools.manager.maxUnavailable"]


def test_a_misspelled_role_or_pool_key_gets_a_suggestion():
    values = prod()
    values["nodePools"]["ml"]["role"] = "wroker"
    values["nodePools"]["ml"]["lables"] = {"type": "machine-learning"}
    found = problems(values)
    assert found["swarm:nodePools.ml.role"] == "'wroker' is not a role; did you mean worker?"
    assert found["swarm:nodePools.ml.lables"].endswith("did you mean labels?")


def test_an_image_the_user_data_cannot_serve_is_refused_at_preview_with_the_likely_slug():
    # The user data installs Docker from Docker's Ubuntu repository: Debian, or a typo, would
    # boot droplets that never join (issue 20: data traps are errors, not warnings).
    values = prod()
    values["nodePools"]["ml"]["image"] = "debian-12-x64"
    values["nodePools"]["backoffice"]["image"] = "ubuntu-24-04-x46"
    found = problems(values)
    assert "cannot run the nodes' user data" in found["swarm:nodePools.ml.image"]
    assert "did you mean ubuntu-24-04-x64" in found["swarm:nodePools.backoffice.image"]


def test_ubuntu_slugs_gpu_images_and_snapshot_ids_are_accepted():
    values = prod()
    values["nodePools"]["ml"]["image"] = "ubuntu-22-04-x64"
    values["nodePools"]["backoffice"]["image"] = "123456789"
    config = parse(values)
    assert {pool.name: pool.image for pool in config.pools}["backoffice"] == "123456789"
