"""The package layout holds: each package of swarm/ says what it is for, and code outside a
package imports what the package offers (its __init__), never one of its modules sideways, so
that a package's insides can move without breaking its users."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.pulumi_program import PROJECT_ROOT

SWARM = PROJECT_ROOT / "swarm"
PACKAGES = sorted(path.parent.name for path in SWARM.glob("*/__init__.py"))
# Copied to the managers byte for byte (swarm/backups/scripts.py NODE_FILES): standalone there.
SHIPPED = {f"swarm/backups/node/{name}" for name in ("swarm_jobs.py", "claims.py", "jobs_host.py", "jobs_restore.py", "s3.py")}


def _production_modules():
    for pattern in ("swarm/**/*.py", "components/*.py", "scripts/*.py", "__main__.py"):
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if relative not in SHIPPED:
                yield relative, ast.parse(path.read_text(), relative)


def _imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_swarm_is_grouped_into_packages_by_concern_with_only_the_shared_basics_beside_them():
    assert PACKAGES == ["alerts", "backups", "capacity", "compose", "config", "ingress", "node_scripts", "plan", "values"]
    loose = sorted(path.name for path in SWARM.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "diagnostics.py", "model.py", "suggest.py"]


def test_every_package_says_what_it_is_for_and_lists_what_it_offers():
    for package in PACKAGES:
        tree = ast.parse((SWARM / package / "__init__.py").read_text())
        doc = ast.get_docstring(tree)
        assert doc and len(doc.split("\n\n")[0].splitlines()) <= 4, f"swarm/{package}/__init__.py: a short docstring first"
        exported = [node for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets)]
        assert exported, f"swarm/{package}/__init__.py lists what it offers in __all__"


def test_no_module_imports_another_packages_modules_sideways():
    sideways = []
    for relative, tree in _production_modules():
        for line, module in _imported_modules(tree):
            parts = module.split(".")
            if len(parts) >= 3 and parts[0] == "swarm" and parts[1] in PACKAGES:
                if not relative.startswith(f"swarm/{parts[1]}/"):
                    sideways.append(f"{relative}:{line}: {module}")
    assert not sideways, "import these from the package instead:\n" + "\n".join(sideways)


def test_every_package_imports_on_its_own_so_no_import_depends_on_which_package_came_first():
    # A cycle between packages shows only when a package is the first one imported.
    for package in PACKAGES:
        result = subprocess.run([sys.executable, "-c", f"import swarm.{package}"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"import swarm.{package} alone fails:\n{result.stderr[-800:]}"
    result = subprocess.run([sys.executable, "-c", "import swarm.backups.restore"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]
