"""The docs' GPU examples pass the checks their own pages promise: the pool and the model of
docs/gpus-and-catalogue.md and docs/how-to.md, added to a copy of the repository's stacks, make a
plan that fits, with the model on a GPU node and no CPU service there."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from swarm.__main__ import plan_of
from tests.pulumi_program import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def yaml_blocks(page: str) -> list[object]:
    """Every ```yaml block of a docs page, parsed (indented fragments dedented first)."""
    text = (DOCS / page).read_text()
    return [yaml.safe_load(textwrap.dedent(block)) for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]


def gpu_pool(blocks: list[object]) -> dict:
    return next(block["gpu"] for block in blocks if isinstance(block, dict) and "gpu" in block
                and str(block["gpu"].get("size", "")).startswith("gpu-"))


def region(blocks: list[object]) -> str:
    """The region the page tells a GPU stack to use."""
    return next(block["swarm:region"] for block in blocks if isinstance(block, dict) and "swarm:region" in block)


def project_copy(tmp_path: Path, stack: str) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "stacks", root / "stacks")
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", root)
    shutil.copy(PROJECT_ROOT / f"Pulumi.{stack}.yaml", root)
    return root


def edit_yaml(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def gpu_placement(plan: dict, model: str) -> tuple[list[str], list[str]]:
    """(nodes the model's tasks run on, services placed on GPU nodes)."""
    gpu_nodes = {node["name"] for node in plan["nodes"] if "-gpu-" in node["name"]}
    service = next(s for s in plan["services"] if s["name"] == model)
    on_gpu = sorted(s["name"] for s in plan["services"] if set(s["nodes"]) & gpu_nodes)
    return sorted(service["nodes"]), on_gpu


@pytest.mark.parametrize("page, stack", [("gpus-and-catalogue.md", "staging"), ("how-to.md", "prod")])
def test_the_pages_gpu_pool_and_model_fit_with_the_model_on_a_gpu_node(tmp_path, page, stack):
    blocks = yaml_blocks(page)
    root = project_copy(tmp_path, stack)
    def add_gpu_pool(document: dict) -> None:
        document["config"]["swarm:region"] = region(blocks)
        document["config"]["swarm:nodePools"]["gpu"] = gpu_pool(blocks)

    edit_yaml(root / f"Pulumi.{stack}.yaml", add_gpu_pool)
    catalogue = root / "stacks" / "models" / f"{stack}.yaml"
    whole = next((b for b in blocks if isinstance(b, dict) and "models" in b), None)
    if whole is not None:  # the page shows a whole catalogue file: use it as the stack's
        catalogue.write_text(yaml.safe_dump(whole, sort_keys=False))
    else:  # the page shows one entry: add it to the stack's catalogue
        entry = next(b[0] for b in blocks if isinstance(b, list) and b and b[0].get("gpus"))
        edit_yaml(catalogue, lambda document: document["models"].append(entry))

    plan = plan_of(stack, root)

    assert "errors" not in plan, plan.get("errors")
    assert plan["fits"], plan["failures"]
    nodes, on_gpu = gpu_placement(plan, "llama-8b")
    assert nodes and all("-gpu-" in node for node in nodes)
    assert on_gpu == ["llama-8b"]  # the GPU pool's own label keeps the CPU services off it


def test_the_how_to_model_entry_fits_prod_beside_its_other_models(tmp_path):
    entry = next(b[0] for b in yaml_blocks("how-to.md") if isinstance(b, list) and b and b[0]["name"] == "spacy-fr-sm")
    root = project_copy(tmp_path, "prod")
    edit_yaml(root / "stacks" / "models" / "prod.yaml", lambda document: document["models"].append(entry))
    plan = plan_of("prod", root)
    assert plan["fits"], plan["failures"]
    assert next(s for s in plan["services"] if s["name"] == "spacy-fr-sm")["placed"] == 2
