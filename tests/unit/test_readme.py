"""The README's commands are the ones CI runs: `.ci/run` is the README's "Tests" block, line for
line, so a newcomer who follows the README runs what CI runs (and a README command that broke
would break CI)."""

from __future__ import annotations

import re

from tests.pulumi_program import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
CI_RUN = (PROJECT_ROOT / ".ci" / "run").read_text()


def commands(lines: list[str]) -> list[str]:
    """Command lines without comments and blank lines; a trailing `# ...` comment is dropped."""
    found = []
    for line in lines:
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            found.append(line)
    return found


def readme_block(heading: str) -> list[str]:
    """The first ```bash block under the README's `## heading`."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def readme_test_commands() -> list[str]:
    # CI runs as root: the README's `sudo` is the only difference.
    return [line.removeprefix("sudo ") for line in commands(readme_block("Tests"))]


def ci_test_commands() -> list[str]:
    return commands(CI_RUN.split("# The README's test commands.\n", 1)[1].splitlines())


def test_ci_runs_exactly_the_readme_test_commands_in_order():
    assert ci_test_commands() == readme_test_commands()


def test_the_readme_test_commands_lint_and_run_both_suites_after_the_prerequisites():
    readme = readme_test_commands()
    assert readme[0] == "bash .ci/sandbox-prereqs.sh"
    assert {"ruff check .", "python -m pytest tests/unit -q"} <= set(readme)
    assert any(line.endswith("-m pytest tests/sandbox -q") for line in readme)


def test_the_sandbox_suite_runs_as_root_and_only_the_root_steps_use_sudo():
    sudo = [line for line in commands(readme_block("Tests")) if line.startswith("sudo ")]
    assert sudo == ["sudo bash .ci/sandbox-prereqs.sh", "sudo .venv/bin/python -m pytest tests/sandbox -q"]


def test_the_readme_names_the_fallbacks_for_a_machine_without_docker_or_root():
    # Both exist: the unit suite's `tools` marker (pytest.ini) and the sandbox's explicit opt-out.
    assert "-m 'not tools'" in README and "tools" in (PROJECT_ROOT / "pytest.ini").read_text()
    assert "SWARM_SANDBOX=skip" in README
    assert 'os.environ.get("SWARM_SANDBOX") == "skip"' in (PROJECT_ROOT / "tests" / "sandbox" / "conftest.py").read_text()


def test_the_quick_start_makes_the_virtualenv_that_pulumi_and_the_wrapper_use():
    quick = commands(readme_block("Quick start"))
    assert quick[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert "virtualenv: .venv" in (PROJECT_ROOT / "Pulumi.yaml").read_text()
    wrapper = (PROJECT_ROOT / "scripts" / "pulumi-local").read_text()
    assert ".venv/bin/python -m swarm missing-secrets" in wrapper and "venv/bin/python" not in wrapper.replace(".venv/", "")


def test_every_component_file_is_in_the_readme_layer_table():
    row = next(line for line in README.splitlines() if line.startswith("| components |"))
    files = sorted(path.name for path in (PROJECT_ROOT / "components").glob("*.py") if path.name != "__init__.py")
    assert [name for name in files if f"components/{name}" not in row] == []


def test_every_relative_link_in_the_readme_and_docs_points_at_a_file_and_heading_that_exist():
    pages = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
                broken.append(f"{page.name}: {target}")
    assert broken == []


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found
