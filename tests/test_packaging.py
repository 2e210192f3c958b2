"""pyproject.toml declares exactly what acljax imports: module-level imports as dependencies, imports
made only inside functions (optional features) as dependencies or extras."""

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).parents[1]


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _imported_distributions() -> tuple[set[str], set[str]]:
    """(distributions imported at module level, distributions imported only inside functions) by acljax/."""
    owners = packages_distributions()
    top, inner = set(), set()
    for path in (ROOT / "acljax").rglob("*.py"):
        tree = ast.parse(path.read_text())
        nested = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                if root == "acljax" or root in sys.stdlib_module_names:
                    continue
                (inner if id(node) in nested else top).update(_normal(d) for d in owners[root])
    return top, inner - top


def test_dependencies_are_declared_exactly_as_imported():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_normal(Requirement(r).name) for r in project["dependencies"]}
    extras = {_normal(Requirement(r).name) for reqs in project["optional-dependencies"].values() for r in reqs}
    top, inner = _imported_distributions()
    assert top <= core, f"imported at module level but not a dependency: {top - core}"
    assert inner <= core | extras, f"imported but declared nowhere: {inner - core - extras}"
    assert core <= top | inner, f"declared but never imported: {core - top - inner}"
    assert "tensorflow-datasets" in inner and "tensorflow-datasets" not in core  # an extra, imported lazily


def test_the_dependency_ranges_admit_every_recorded_run():
    """No cap excludes a version acljax is recorded to have run with (.ci/tested_versions.json), and the gpu
    extra asks for the same JAX as the dependencies."""
    import json

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = {_normal(r.name): r.specifier for r in map(Requirement, project["dependencies"])}
    [gpu_jax] = [Requirement(r) for r in project["optional-dependencies"]["gpu"] if Requirement(r).name == "jax"]
    assert gpu_jax.specifier == ranges["jax"]
    runs = json.loads((ROOT / ".ci" / "tested_versions.json").read_text())["runs"]
    for run in runs:
        for package, version in run["versions"].items():
            if package == "python":
                admitted = SpecifierSet(project["requires-python"])
            elif package == "jaxlib":
                admitted = ranges["jax"]  # jax pins its jaxlib to its own version
            else:
                admitted = ranges.get(package)
            assert admitted is not None, f"{package} is recorded but not a dependency"
            assert admitted.contains(version), f"{package} {version} ({run['where']}) is outside {admitted}"
