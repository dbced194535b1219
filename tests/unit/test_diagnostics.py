"""One Problem for every validator, one error text, and paths kept whole."""

from __future__ import annotations

from swarm.diagnostics import WARNING, Collector, ConfigError, Positions, Problem, StackFileError, format_path


def test_a_path_prints_as_the_file_shows_it():
    assert format_path(("services", "api", "ports", 0)) == "services.api.ports[0]"
    assert format_path(("models", 3, "memory")) == "models[3].memory"
    assert format_path(()) == ""


def test_a_problem_prints_file_path_and_message_and_leaves_out_what_it_lacks():
    assert str(Problem("stack.yml", ("services", "api", "image"), "must be a string")) == (
        "stack.yml: services.api.image: must be a string"
    )
    assert str(Problem("stack.yml", (), "is not valid YAML")) == "stack.yml: is not valid YAML"
    assert str(Problem("", ("swarm:region",), "is required")) == "swarm:region: is required"
    assert str(Problem("", (), "pool gpu costs more")) == "pool gpu costs more"


def test_a_dotted_name_stays_one_element_of_the_path():
    found = Collector("stack.yml")
    found.warn(("services", "api.v2", "depends_on"), "ignored")
    (warning,) = found.warnings
    assert (warning.path, warning.service, warning.severity) == (("services", "api.v2", "depends_on"), "api.v2", WARNING)


def test_a_configuration_path_gets_the_namespace_on_its_first_element_only():
    config = Collector(namespace="swarm")
    config.problem(("nodePools", "edge", "labels", "swarm.ingress"), "is set by the program")
    config.warn(("adminCidrs", 0), "opens SSH to the internet")
    config.problem("region", "is required")  # a top-level key alone, as a string
    assert [p.path for p in (*config.problems, *config.warnings)] == [
        ("swarm:nodePools", "edge", "labels", "swarm.ingress"),
        ("swarm:region",),
        ("swarm:adminCidrs", 0),
    ]
    assert str(config.problems[0]) == "swarm:nodePools.edge.labels.swarm.ingress: is set by the program"
    assert str(config.warnings[0]) == "swarm:adminCidrs[0]: opens SSH to the internet"


def test_a_string_path_is_one_element_never_split_at_its_dots():
    found = Collector("stack.yml")
    found.problem("x-model.catalogue", "unknown key")
    assert found.problems[0].path == ("x-model.catalogue",)


def test_every_invalid_input_says_how_many_problems_and_that_nothing_was_deployed():
    one = [Problem("s.yml", ("version",), "must be a string")]
    two = [Problem("", ("swarm:region",), "is required"), Problem("", ("swarm:nodePools",), "is required")]
    assert str(StackFileError(one)) == (
        "1 problem in the stack file; nothing was deployed:\n  - s.yml: version: must be a string"
    )
    assert str(ConfigError("Pulumi.prod.yaml", two)) == (
        "Pulumi.prod.yaml: 2 problems in the stack configuration; nothing was deployed:\n"
        "  - swarm:region: is required\n  - swarm:nodePools: is required"
    )


def test_a_problem_with_a_position_prints_as_compilers_print_it():
    problem = Problem("stacks/prod.yaml", ("services", "api", "deplyo"), "unknown key", line=47, column=5)
    assert str(problem) == "stacks/prod.yaml:47:5: services.api.deplyo: unknown key"
    assert str(Problem("stacks/prod.yaml", (), "is not valid YAML", line=3, column=1)) == (
        "stacks/prod.yaml:3:1: is not valid YAML"
    )


def test_a_problem_without_a_position_prints_as_before():
    problem = Problem("stacks/prod.yaml", ("services", "api", "deplyo"), "unknown key")
    assert (problem.line, problem.column) == (None, None)
    assert str(problem) == "stacks/prod.yaml: services.api.deplyo: unknown key"


POSITIONS = Positions(
    values={(): (1, 1), ("services",): (1, 1), ("services", "api"): (2, 3), ("services", "api", "image"): (3, 12)},
    keys={("services",): (1, 1), ("services", "api"): (2, 3), ("services", "api", "image"): (3, 5)},
)


def test_a_collector_with_positions_places_values_keys_and_missing_paths():
    found = Collector("stack.yml", positions=POSITIONS)
    found.problem(("services", "api", "image"), "must be a string")  # the value
    found.problem(("services", "api", "image"), "unknown key", key=True)  # the key
    found.problem(("services", "api", "deploy", "replicas"), "is required")  # not in the file: nearest ancestor
    found.warn(("services", "api", 0), "ignored", key=True)  # no key of its own: where its value would be
    assert [(p.line, p.column) for p in (*found.problems, *found.warnings)] == [(3, 12), (3, 5), (2, 3), (2, 3)]
    assert str(found.problems[2]) == "stack.yml:2:3: services.api.deploy.replicas: is required"


def test_a_collector_without_positions_places_nothing():
    found = Collector("stack.yml")
    found.problem(("services", "api"), "needs `image`")
    assert str(found.problems[0]) == "stack.yml: services.api: needs `image`"


def test_a_problem_gives_its_fix_apart_when_its_last_clause_says_what_to_do():
    from swarm.diagnostics import Problem

    assert Problem("s.yaml", ("services", "api", "deplyo"), "unknown key; did you mean deploy?").fix == "did you mean deploy?"
    assert Problem("", ("b",), "would run 0 of 1 replicas: only node; add a node to pool b").fix == "add a node to pool b"
    assert Problem("", ("swarm:region",), "is not valid").fix is None
    entry = Problem("s.yaml", ("services", "api"), "needs `image`: set it", line=3, column=5).as_dict()
    assert entry == {"file": "s.yaml", "line": 3, "column": 5, "path": "services.api", "severity": "error",
                     "message": "needs `image`: set it", "fix": "set it"}
