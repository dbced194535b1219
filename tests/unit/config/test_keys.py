"""The table of known keys (swarm/config/keys.py): an unknown key is refused with the key it
resembles, and every known key has its validator and its line in docs/configuration.md."""

from __future__ import annotations

import importlib

import pytest

from swarm.config.keys import KNOWN_KEYS, reference_table
from tests.pulumi_program import PROJECT_ROOT, stack_config
from tests.unit.config.stack_configs import problems, prod


@pytest.mark.parametrize(
    "typo, suggestion",
    [("publicPort", "swarm:publicPorts"), ("convergeTimout", "swarm:convergeTimeout"), ("vpcIPRange", "swarm:vpcIpRange")],
)
def test_a_misspelled_top_level_key_is_refused_with_the_key_it_resembles(typo, suggestion):
    found = problems(prod(**{typo: "x"}))
    assert found[f"swarm:{typo}"].endswith(f"did you mean {suggestion}?")


def test_an_unknown_key_that_resembles_nothing_points_at_the_reference():
    assert "docs/configuration.md" in problems(prod(colour="blue"))["swarm:colour"]


def test_every_known_key_is_parsed_by_its_validator_and_documented_in_the_reference():
    reference = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    assert reference_table() in reference, "regenerate the table: python -m swarm config-reference"
    assert set(stack_config("prod")) <= set(KNOWN_KEYS)
    for key in KNOWN_KEYS.values():  # each validator exists where the table says
        module, function = key.validator.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), function)), key
