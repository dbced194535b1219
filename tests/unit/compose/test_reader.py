"""What every section shares: `$` interpolation, versions, unknown keys with a did-you-mean."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compose.stackfiles import (
    load,
    problems,
)


def test_variable_substitution_is_refused_but_double_dollar_is_a_dollar(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a: {image: 'x:${TAG}', environment: {A: 'cost $5'}}\n")
    assert set(found) == {"services.a.image", "services.a.environment.A"}
    assert "$$" in found["services.a.image"]
    spec = load(tmp_path, "services:\n  a: {image: x, environment: {A: 'cost $$5'}}\n")
    assert spec.services["a"].environment == {"A": "cost $5"}


def test_a_list_that_contains_itself_through_an_alias_is_a_problem_not_a_crash(tmp_path: Path):
    found = problems(tmp_path, "services:\n  a:\n    image: x\n    command: &c [serve, *c]\n")
    assert found == {"services.a.command[1]": "must be a string, not a list: quote it"}


def test_keys_newer_than_the_declared_version_are_refused(tmp_path: Path):
    found = problems(
        tmp_path,
        'version: "3.4"\nservices:\n  a: {image: x, init: true, deploy: {rollback_config: {order: stop-first}}}\n',
    )
    assert set(found) == {"services.a.init", "services.a.deploy.rollback_config"}
    assert "3.7 or later" in found["services.a.init"]


def test_misspelled_names_get_a_did_you_mean(tmp_path: Path):
    found = problems(
        tmp_path,
        """\
version: "3.8"
services:
  api:
    image: x
    deplyo: {replicas: 2}
    networks: [main_netwrok]
    secrets: [db_pasword]
    deploy:
      placement:
        constraints: [node.role == wroker, node.hostnme == a]
networks:
  main_network: {}
secrets:
  db_password: {external: true}
""",
    )
    assert found["services.api.deplyo"] == "unknown key; did you mean deploy?"
    assert found["services.api.networks[0]"].endswith("did you mean main_network?")
    assert found["services.api.secrets[0]"].endswith("did you mean db_password?")
    assert found["services.api.deploy.placement.constraints[0]"].endswith("did you mean worker?")
    assert found["services.api.deploy.placement.constraints[1]"].endswith(
        "unknown field 'node.hostnme'; did you mean node.hostname?"
    )
