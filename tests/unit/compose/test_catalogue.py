"""Model catalogues: models expanded into Compose services that take the hand-written path.

Expansion and merging are checked on the generated entries; "same code path" by comparing the
loader's spec of a generated service with the spec of the same service written by hand and by
running Docker's own loader on the expanded file; errors by the problems they produce; the
program by running it under mocks with 200 models and a GPU pool.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from swarm import node_scripts
from swarm.capacity import check_capacity
from swarm.compose import StackFileError, load_stack, load_stack_file, parse_cpus, parse_memory
from swarm.compose.catalogue import compose_cpus, compose_memory, expand_catalogue
from swarm.config import load_stack_config_file
from tests.pulumi_program import PROJECT_ROOT, reference_stack_text, run_program, stack_config
from tests.unit.compose.stackfiles import at

PROD_STACK = reference_stack_text()  # the tests name their own catalogues
ML = ["node.role == worker", "node.labels.type == machine-learning"]
DEFAULTS = {"image_prefix": "registry.example.com/models/", "networks": ["main_network"], "constraints": ML}
SERVICE = "docker:index/service:Service"


def expand(models: list[dict], defaults: dict | None = None, **document: Any) -> dict[str, dict]:
    expansion = expand_catalogue({"defaults": defaults or DEFAULTS, "models": models, **document}, source="cat.yaml")
    assert expansion.problems == []
    return expansion.services


def problems(models: Any, defaults: Any = None, taken: dict[str, str] | None = None, **document: Any) -> list[str]:
    catalogue = {"defaults": DEFAULTS if defaults is None else defaults, "models": models, **document}
    return [str(p) for p in expand_catalogue(catalogue, source="cat.yaml", taken=taken).problems]


def write_stack(tmp_path: Path, catalogue: Any, stack_text: str = PROD_STACK, name: str = "prod.yaml") -> Path:
    """`stack_text` naming a catalogue (written next to it) with x-model-catalogue."""
    (tmp_path / "models.yaml").write_text(catalogue if isinstance(catalogue, str) else yaml.safe_dump(catalogue))
    path = tmp_path / name
    path.write_text(stack_text.replace('version: "3.8"\n', 'version: "3.8"\nx-model-catalogue: models.yaml\n', 1))
    return path


def docker_stack_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True, check=False)


def raised(path: Path) -> list[str]:
    with pytest.raises(StackFileError) as error:
        load_stack(path, stack="prod")
    return [str(problem) for problem in error.value.problems]


# ---- expansion ----------------------------------------------------------------------------------


def test_a_model_becomes_a_service_with_defaults_applied():
    services = expand([{"name": "ner", "image": "spacy-ner:1.2", "cpus": "0.5", "memory": "2G",
                        "environment": {"SPACY_MODEL": "en_core_web_md"}}])
    assert services == {"ner": {
        "image": "registry.example.com/models/spacy-ner:1.2",
        "environment": {"SPACY_MODEL": "en_core_web_md"},
        "networks": ["main_network"],
        "deploy": {
            "replicas": 1,
            "placement": {"constraints": ML},
            # limits: twice the reservations unless given
            "resources": {"reservations": {"cpus": "0.5", "memory": "2G"}, "limits": {"cpus": "1", "memory": "4G"}},
        },
    }}


def test_a_model_value_wins_over_the_default_and_mappings_merge():
    defaults = {**DEFAULTS, "replicas": 2, "cpus": "0.25", "memory": "512M", "limit_ratio": 1.5,
                "environment": {"LOG_LEVEL": "info", "WORKERS": "1"},
                "restart_policy": {"condition": "on-failure", "delay": "5s"},
                "update_config": {"parallelism": 1, "failure_action": "rollback"}}
    services = expand([
        {"name": "small", "image": "a:1"},
        {"name": "big", "image": "ghcr.io/acme/b:2", "replicas": 3, "memory": "3G", "limits": {"cpus": "2"},
         "environment": {"WORKERS": "4"}, "restart_policy": {"delay": "10s"}, "networks": ["other"]},
    ], defaults)
    small, big = services["small"], services["big"]
    assert small["deploy"]["replicas"] == 2
    assert small["deploy"]["resources"] == {"reservations": {"cpus": "0.25", "memory": "512M"},
                                            "limits": {"cpus": "0.375", "memory": "768M"}}
    assert small["environment"] == {"LOG_LEVEL": "info", "WORKERS": "1"}
    assert big["image"] == "ghcr.io/acme/b:2"  # an image with a '/' is complete: no prefix
    assert big["deploy"]["replicas"] == 3
    assert big["deploy"]["resources"] == {"reservations": {"cpus": "0.25", "memory": "3G"},
                                          "limits": {"cpus": "2", "memory": "4608M"}}
    assert big["environment"] == {"LOG_LEVEL": "info", "WORKERS": "4"}
    assert big["deploy"]["restart_policy"] == {"condition": "on-failure", "delay": "10s"}
    assert big["deploy"]["update_config"] == {"parallelism": 1, "failure_action": "rollback"}
    assert big["networks"] == ["other"]  # lists are replaced, not appended


def test_overrides_are_deep_merged_last():
    defaults = {**DEFAULTS, "overrides": {"stop_grace_period": "30s", "deploy": {"labels": {"team": "nlp"}}}}
    (service,) = expand([{
        "name": "ner", "image": "a:1", "cpus": "1", "memory": "1G",
        "overrides": {
            "command": ["serve", "--port", "8000"],
            "deploy": {"resources": {"limits": {"memory": "1536M"}},
                       "placement": {"constraints": ["node.hostname == x"]}},
        },
    }], defaults).values()
    assert service["command"] == ["serve", "--port", "8000"]
    assert service["stop_grace_period"] == "30s"
    assert service["deploy"]["labels"] == {"team": "nlp"}
    assert service["deploy"]["resources"]["limits"] == {"cpus": "2", "memory": "1536M"}  # only memory overridden
    assert service["deploy"]["resources"]["reservations"] == {"cpus": "1", "memory": "1G"}
    assert service["deploy"]["placement"] == {"constraints": ["node.hostname == x"]}


def test_gpu_models_reserve_gpus_and_are_constrained_to_gpu_nodes():
    services = expand([
        {"name": "llm", "image": "llm:1", "cpus": "4", "memory": "32G", "gpus": 1},
        {"name": "pinned", "image": "llm:1", "cpus": "4", "memory": "32G", "gpus": 2,
         "gpu_constraints": ["node.labels.type == machine-learning", "node.labels.gpu-model == h100"]},
        {"name": "cpu", "image": "x:1", "cpus": "1", "memory": "1G", "gpus": 0},
    ])
    llm = services["llm"]["deploy"]
    assert llm["placement"]["constraints"] == [*ML, "node.labels.gpu == true"]
    assert llm["resources"]["reservations"]["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "GPU", "value": 1}}]
    pinned = services["pinned"]["deploy"]
    assert pinned["placement"]["constraints"] == [*ML, "node.labels.gpu-model == h100"]  # no duplicate
    assert pinned["resources"]["reservations"]["generic_resources"][0]["discrete_resource_spec"]["value"] == 2
    cpu = services["cpu"]["deploy"]
    assert cpu["placement"]["constraints"] == ML
    assert "generic_resources" not in cpu["resources"]["reservations"]


@pytest.mark.parametrize("text", ["0.25", "1", "0.001", "2.5", "0.000000001", "16"])
def test_cpus_are_written_exactly(text):
    assert compose_cpus(parse_cpus(text)) == text


@pytest.mark.parametrize(("size", "text"), [(512 * 2**20, "512M"), (3 * 2**30, "3G"), (1536 * 2**10, "1536K"),
                                            (1000, "1000"), (4608 * 2**20, "4608M")])
def test_memory_is_written_exactly_in_the_largest_exact_unit(size, text):
    assert compose_memory(size) == text and parse_memory(text) == size


# ---- the same code path as hand-written services ------------------------------------------------------


def test_a_generated_service_loads_exactly_like_the_same_service_written_by_hand(tmp_path):
    model = {"name": "ner", "image": "spacy-ner:1", "cpus": "0.5", "memory": "2G", "gpus": 1, "replicas": 2,
             "environment": {"SPACY_MODEL": "en_core_web_md"}, "secrets": ["db_password"],
             "restart_policy": {"condition": "on-failure", "delay": "5s"}}
    by_catalogue = load_stack(write_stack(tmp_path, {"defaults": DEFAULTS, "models": [model]}), stack="prod")

    document = yaml.safe_load(PROD_STACK)
    document["services"]["ner"] = expand([model])["ner"]
    by_hand_path = tmp_path / "by-hand.yaml"
    by_hand_path.write_text(yaml.safe_dump(document, sort_keys=False))
    by_hand = load_stack_file(by_hand_path, stack="prod")

    assert list(by_catalogue.services) == ["backoffice", "api", "database", "ner"]
    assert by_catalogue.services == by_hand.services
    assert by_catalogue.networks == by_hand.networks and by_catalogue.secrets == by_hand.secrets


@pytest.mark.tools("docker")
def test_docker_accepts_the_stack_file_and_reads_the_expanded_services_as_the_loader_does(tmp_path):
    """Docker ignores x-model-catalogue; the expanded document passes Docker's own loader."""
    catalogue = yaml.safe_load((PROJECT_ROOT / "stacks" / "models" / "prod.yaml").read_text())
    stack_file = write_stack(tmp_path, catalogue)
    assert docker_stack_config(stack_file).returncode == 0

    document = yaml.safe_load(stack_file.read_text())
    document["services"].update(expand_catalogue(catalogue, source="models.yaml").services)
    expanded = tmp_path / "expanded.yaml"
    expanded.write_text(yaml.safe_dump(document))
    result = docker_stack_config(expanded)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)["services"]["spacy-en-trf"]["deploy"]
    spec = load_stack(stack_file, stack="prod").services["spacy-en-trf"]
    assert printed["resources"]["limits"]["memory"] == str(spec.limits.memory_bytes) == str(6 * 2**30)
    assert printed["resources"]["reservations"]["cpus"] == "1" and spec.reservations.nano_cpus == 10**9
    assert printed["placement"]["constraints"] == ML


def test_the_checked_in_catalogues_fit_their_stacks():
    """Each stack names its catalogue, and the models fit beside the hand-written services."""
    staging = load_stack_config_file(PROJECT_ROOT, "staging")
    spec = load_stack(staging.stack_file, stack="staging")
    assert {"spacy-en-sm", "spacy-de-lg"} <= spec.services.keys()
    assert check_capacity(staging, spec).schedulable

    prod = load_stack_config_file(PROJECT_ROOT, "prod")
    spec = load_stack(prod.stack_file, stack="prod")
    assert len(spec.services) == 3 + 6
    report = check_capacity(prod, spec)
    assert report.schedulable, report.failures
    assert not [w for w in map(str, report.warnings) if w.startswith("spacy-")]  # each model survives a lost worker


# ---- errors ---------------------------------------------------------------------------------------


def test_duplicate_and_colliding_names_are_problems():
    found = problems([
        {"name": "ner", "image": "a:1", "cpus": "1", "memory": "1G"},
        {"name": "api", "image": "a:1", "cpus": "1", "memory": "1G"},
        {"name": "ner", "image": "b:1", "cpus": "1", "memory": "1G"},
    ], taken={"api": "stacks/prod.yaml"})
    assert found == [
        "cat.yaml: models[1].name: 'api' is already a service in stacks/prod.yaml: rename the model or the service",
        "cat.yaml: models[2].name: 'ner' is already the name of models[0]: names must be unique",
    ]


def test_unknown_keys_and_bad_values_are_collected_with_their_paths():
    found = problems(
        [
            {"name": "ok", "image": "a:1", "cpus": "1", "memory": "1G"},
            {"name": "bad", "image": "a:1", "cpus": "lots", "memory": "2 gigs", "replicas": -1, "gpus": "one",
             "limits": {"disk": "1G"}, "enviroment": {}},
            {"name": "short", "image": "a:1"},
            {"name": "tight", "image": "a:1", "cpus": "1", "memory": "2G", "limits": {"memory": "1G"}},
            {"name": "bad name!", "image": "a:1", "cpus": "1", "memory": "1G"},
            "not-a-model",
        ],
        defaults={**DEFAULTS, "constraints": ["node.labels.type = ml"], "limit_ratio": 0.5},
        extra=1,
    )
    assert found == [
        "cat.yaml: extra: unknown key; expected defaults, models or x-<anything> (for YAML anchors)",
        ("cat.yaml: defaults.constraints[0]: invalid constraint 'node.labels.type = ml': expected FIELD==VALUE or "
        "FIELD!=VALUE, like node.labels.type==cheap"),
        "cat.yaml: defaults.limit_ratio: must be a number >= 1 (limit = ratio x reservation), not 0.5",
        "cat.yaml: models[1].cpus: invalid CPU count 'lots': expected a number of CPUs as a string, like '0.5' or '2'",
        ("cat.yaml: models[1].memory: invalid size '2 gigs': expected a number with an optional unit b, k, m, g, t or "
        "p, like 512M or 10G"),
        "cat.yaml: models[1].replicas: must be a whole number >= 0, not -1",
        "cat.yaml: models[1].gpus: must be a whole number >= 0, not 'one'",
        "cat.yaml: models[1].limits.disk: unknown key; expected cpus or memory",
        ("cat.yaml: models[1].enviroment: unknown key; expected one of: constraints, cpus, environment, "
        "gpu_constraints, gpus, image, image_prefix, limit_ratio, limits, memory, name, networks, overrides, "
        "replicas, restart_policy, secrets, update_config"),
        "cat.yaml: models[4].name: names are letters, digits, '.', '_' and '-' only",
        "cat.yaml: models[5]: must be a mapping with string keys, not 'not-a-model'",
    ]
    # With valid defaults, the models' own cross-field problems show too.
    found = problems([{"name": "short", "image": "a:1"},
                      {"name": "tight", "image": "a:1", "cpus": "1", "memory": "2G", "limits": {"memory": "1G"}}])
    assert found == [
        ("cat.yaml: models[0].cpus: model short has no `cpus`: set it here or under `defaults:` for every model, "
         "e.g. `cpus: '0.25'` (reserved vCPUs)"),
        ("cat.yaml: models[0].memory: model short has no `memory`: set it here or under `defaults:` for every "
         "model, e.g. `memory: 512M` (reserved memory)"),
        ("cat.yaml: models[1]: limits.memory 1G is below the reserved memory 2G: a limit must be at least the "
        "reservation"),
    ]


def test_a_catalogue_that_is_not_one_is_a_problem():
    assert problems(None, defaults={}) == [
        "cat.yaml: models: must be a list of models (name, image, cpus, memory, ...), not None"]
    assert problems([], defaults={"name": "x"}) == [
        ("cat.yaml: defaults.name: unknown key; expected one of: constraints, cpus, environment, gpu_constraints, "
        "gpus, image, image_prefix, limit_ratio, limits, memory, networks, overrides, replicas, restart_policy, "
        "secrets, update_config")]


def test_stack_file_and_catalogue_problems_are_reported_together_and_nothing_loads(tmp_path):
    stack_text = PROD_STACK.replace("memory: 10G", "memory: 10 gigs")
    path = write_stack(tmp_path, {"defaults": DEFAULTS, "models": [
        {"name": "api", "image": "a:1", "cpus": "1", "memory": "1G"},
        {"name": "ner", "image": "a:1", "cpus": "1", "memory": "1G"},
    ]}, stack_text)
    assert raised(path) == [
        (f"{at(tmp_path / 'models.yaml', 'api')}: models[0].name: 'api' is already a service in {path}: rename the "
        "model or the service"),
        (f"{at(path, '10 gigs')}: services.api.deploy.resources.limits.memory: invalid size '10 gigs': expected a "
        "number with an optional unit b, k, m, g, t or p, like 512M or 10G"),
    ]


def test_a_model_without_memory_names_the_catalogue_key_at_the_models_first_line(tmp_path):
    path = write_stack(tmp_path, {"defaults": DEFAULTS, "models": [{"name": "ner", "image": "a:1", "cpus": "1"}]})
    assert raised(path) == [
        (f"{at(tmp_path / 'models.yaml', 'cpus:')}: models[0].memory: model ner has no `memory`: set it here or "
         "under `defaults:` for every model, e.g. `memory: 512M` (reserved memory)"),
    ]


def test_what_the_loader_finds_in_generated_services_points_at_the_models_once(tmp_path):
    models = [{"name": f"m{i}", "image": "a:1", "cpus": "0.1", "memory": "64M"} for i in range(6)]
    models[2]["overrides"] = {"deploy": {"mode": "everywhere"}}
    defaults = {**DEFAULTS, "secrets": ["hf_token"], "restart_policy": {"delay": "5 s"}}
    found = raised(write_stack(tmp_path, {"defaults": defaults, "models": models}))
    # At the model's first line (its first key, cpus), where an editor opens the catalogue.
    first, third = (at(tmp_path / "models.yaml", "cpus:", index) for index in (0, 2))
    assert found == [
        (f"{first}: models[0]: in the generated service, deploy.restart_policy.delay: invalid duration '5 s': "
        "expected a number with a unit (ns, us, ms, s, m, h), like 10s or 1m30s (also models[1], models[2], "
        "models[3] and 2 more)"),
        (f"{first}: models[0]: in the generated service, secrets[0]: secret 'hf_token' is not declared under "
        "the top-level `secrets:` (also models[1], models[2], models[3] and 2 more)"),
        (f"{third}: models[2]: in the generated service, deploy.mode: must be replicated or global, not "
        "'everywhere'"),
    ]


def test_a_model_whose_name_has_dots_is_found_by_its_whole_name(tmp_path):
    # "llm" and "llm.v2" are both models: a problem in "llm.v2" must not be pinned on "llm".
    models = [{"name": "llm", "image": "a:1", "cpus": "0.1", "memory": "64M"},
              {"name": "llm.v2", "image": "a:1", "cpus": "0.1", "memory": "64M",
               "overrides": {"deploy": {"mode": "everywhere"}, "depends_on": ["llm"]}}]
    path = write_stack(tmp_path, {"defaults": DEFAULTS, "models": models})
    catalogue = tmp_path / "models.yaml"
    assert raised(path) == [
        f"{at(catalogue, 'cpus:', 1)}: models[1]: in the generated service, deploy.mode: must be replicated or global, "
        "not 'everywhere'"
    ]
    models[1]["overrides"] = {"depends_on": ["llm"]}
    spec = load_stack(write_stack(tmp_path, {"defaults": DEFAULTS, "models": models}), stack="prod")
    (warning,) = [w for w in spec.warnings if w.file == str(catalogue)]
    assert (warning.path, str(warning)) == (("models", 1), f"{at(catalogue, 'cpus:', 1)}: models[1]: in the generated "
                                            "service, depends_on: ignored: swarm starts services in no particular "
                                            "order: make each service retry its dependencies")


@pytest.mark.parametrize(("reference", "expected"), [
    ("missing.yaml", "x-model-catalogue: no model catalogue at {dir}/missing.yaml: create it or fix the path"),
    ("['a', 'b']", "x-model-catalogue: must be the path of a model catalogue relative to this file, not ['a', 'b']"),
])
def test_a_bad_catalogue_reference_is_a_problem_of_the_stack_file(tmp_path, reference, expected):
    path = tmp_path / "prod.yaml"
    path.write_text(PROD_STACK.replace('version: "3.8"\n', f'version: "3.8"\nx-model-catalogue: {reference}\n'))
    (found,) = raised(path)
    assert found.startswith(f"{at(path, reference)}: " + expected.format(dir=tmp_path))


def test_a_problem_in_a_catalogue_entry_points_into_the_catalogue(tmp_path):
    catalogue = """\
defaults:
  image_prefix: registry.example.com/models/
  networks: [main_network]
models:
  - name: ner
    image: spacy-ner:1.2
    cpus: '0.5'
    memory: 2 gigs
  - name: sum
    image: summarizer:1
    cpus: '1'
    memory: 1G
    limits: {disk: 1G}
"""
    found = raised(write_stack(tmp_path, catalogue))
    file = tmp_path / "models.yaml"
    assert found[0].startswith(f"{file}:8:13: models[0].memory: invalid size '2 gigs'")
    assert found[1] == f"{file}:13:14: models[1].limits.disk: unknown key; expected cpus or memory"


def test_invalid_yaml_in_the_catalogue_names_the_catalogue(tmp_path):
    (found,) = raised(write_stack(tmp_path, "models: [\n"))
    assert found.startswith(f"{tmp_path}/models.yaml:2:1: is not valid YAML: did not find expected node content")


def test_the_catalogue_key_needs_a_version_with_extension_fields(tmp_path):
    path = write_stack(tmp_path, {"defaults": DEFAULTS, "models": []})
    path.write_text(path.read_text().replace('version: "3.8"', 'version: "3.3"'))
    assert any("x-model-catalogue: extension fields (x-) needs Compose file version 3.4" in p for p in raised(path))


# ---- GPU reservations and pools -------------------------------------------------------------------


def config_with(tmp_path: Path, catalogue: dict, **pools: dict) -> dict:
    config = copy.deepcopy(stack_config("prod"))
    config["stackFile"] = str(write_stack(tmp_path, catalogue))
    config["nodePools"].update(pools)
    if any(pool.get("gpu") for pool in pools.values()):
        config["region"] = "tor1"  # a region that sells GPU droplets
    return config


GPU_POOL = {"role": "worker", "count": 1, "size": "gpu-h100x1-80gb", "gpu": True,
            "labels": {"type": "machine-learning"}}
LLM = {"defaults": DEFAULTS, "models": [{"name": "llm", "image": "llm:1", "cpus": "4", "memory": "32G", "gpus": 1}]}


def test_a_gpu_model_without_a_gpu_pool_fails_the_preview_and_points_at_the_pool_key(tmp_path):
    run = run_program("prod", config_with(tmp_path, LLM))
    assert isinstance(run.error, pulumi.RunError)
    assert "llm: 0 of 1 replicas fit: no node matches node.labels.gpu==true" in str(run.error)
    # The label comes with the pool key: adding it by hand to a CPU pool would only move the failure.
    assert "add a GPU pool: `gpu: true` with a gpu-* size in swarm:nodePools.<pool>" in str(run.error)
    assert "to a pool's labels" not in str(run.error)
    assert run.registrations == []


def test_a_gpu_model_whose_constraints_exclude_the_gpu_pool_fails(tmp_path):
    gpu_pool = {**GPU_POOL, "labels": {"type": "gpu"}}  # not type=machine-learning, which the model requires
    run = run_program("prod", config_with(tmp_path, LLM, gpu=gpu_pool))
    assert isinstance(run.error, pulumi.RunError)
    assert "llm: 0 of 1 replicas fit: no node matches all of its constraints together: node.role==worker matches " \
           "pools backoffice, ml, gpu; node.labels.type==machine-learning matches pool ml; node.labels.gpu==true " \
           "matches pool gpu" in str(run.error)
    assert run.registrations == []


def test_two_gpu_tasks_do_not_fit_one_gpu(tmp_path):
    catalogue = {"defaults": DEFAULTS, "models": [{**LLM["models"][0], "replicas": 2}]}
    run = run_program("prod", config_with(tmp_path, catalogue, gpu=GPU_POOL))
    assert isinstance(run.error, pulumi.RunError)
    assert "llm: 1 of 2 replicas fit" in str(run.error)


# ---- the program, under mocks: 200 models and a GPU pool -------------------------------------------


def catalogue_of(count: int) -> dict:
    """`count` small models; every 50th one on a GPU."""
    models = [{"name": f"model-{i:03d}", "image": f"model-{i:03d}:1.0", "environment": {"MODEL_ID": str(i)},
               **({"gpus": 1} if i % 50 == 0 else {})} for i in range(count)]
    defaults = {**DEFAULTS, "cpus": "0.01", "memory": "48M", "replicas": 1}
    return {"defaults": defaults, "models": models}


@pytest.fixture(scope="module")
def two_hundred(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("catalogue")
    run = run_program("prod", config_with(tmp_path, catalogue_of(200), gpu={**GPU_POOL, "count": 4}))
    assert run.error is None, run.error
    return run


def test_200_models_register_200_services_with_the_expected_inputs(two_hundred):
    services = {r.plain("name"): r for r in two_hundred.of_type(SERVICE)}
    models = {name for name in services if name.startswith("prod_model-")}
    assert len(models) == 200 and len(services) == 203
    (network,) = two_hundred.of_type("docker:index/network:Network")
    for i in range(200):
        service = services[f"prod_model-{i:03d}"]
        task = service.plain("taskSpec")
        gpu = i % 50 == 0
        assert service.name == f"prod-model-{i:03d}"
        assert task["containerSpec"]["image"] == f"registry.example.com/models/model-{i:03d}:1.0"
        assert task["containerSpec"]["env"] == {"MODEL_ID": str(i)}
        assert task["placement"]["constraints"] == [
            "node.role==worker", "node.labels.type==machine-learning", *(["node.labels.gpu==true"] if gpu else [])]
        reservation = {"nanoCpus": 10_000_000, "memoryBytes": 48 * 2**20,
                       **({"genericResources": {"discreteResourcesSpecs": ["GPU=1"]}} if gpu else {})}
        assert task["resources"] == {"reservation": reservation,
                                     "limits": {"nanoCpus": 20_000_000, "memoryBytes": 96 * 2**20}}
        assert [a["id"] for a in task["networksAdvanceds"]] == [f"{network.name}-id"]
        assert service.plain("mode") == {"replicated": {"replicas": 1}}
        assert service.plain("updateConfig")["order"] == ("stop-first" if gpu else "start-first")
        assert {"label": "com.docker.stack.namespace", "value": "prod"} in service.plain("labels")


def test_a_gpu_pool_gets_gpu_droplets_set_up_for_swarm_and_labelled(two_hundred):
    droplets = {r.plain("name"): r for r in two_hundred.of_type("digitalocean:index/droplet:Droplet")}
    gpu_droplets = sorted(name for name in droplets if name.startswith("prod-gpu-"))
    assert gpu_droplets == ["prod-gpu-1", "prod-gpu-2", "prod-gpu-3", "prod-gpu-4"]
    for name in gpu_droplets:
        droplet = droplets[name]
        assert droplet.plain("size") == "gpu-h100x1-80gb"
        assert droplet.plain("image") == "gpu-h100x1-base"
        assert "/usr/local/sbin/swarm-setup-gpus" in droplet.plain("userData")
        settings = two_hundred.named(f"{name}-settings").plain("create")
        assert node_scripts.inputs_of(settings)["LABELS"] == "gpu=true\ntype=machine-learning\n"
    assert droplets["prod-ml-1"].plain("image") == "ubuntu-24-04-x64"
    assert "swarm-setup-gpus" not in droplets["prod-ml-1"].plain("userData")
    settings = two_hundred.named("prod-ml-1-settings").plain("create")
    assert node_scripts.inputs_of(settings)["LABELS"] == "type=machine-learning\n"
