"""Each module image installs what its code imports at run time.

The import closure of ``edgeloop_<module>`` (following the shared package ``edgeloop``) is
collected from the source, and every third-party distribution it reaches must be pinned in
``modules/<module>/requirements.txt`` or be a dependency of one that is.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT
from tests.packaging_layout import MODULES

FIRST_PARTY_ROOTS = {"edgeloop": REPO_ROOT / "src"}


def _source_of(module: str, roots: dict[str, Path]) -> Path | None:
    base = roots.get(module.split(".")[0])
    if base is None:
        return None
    path = base.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> set[str]:
    found: set[str] = set()
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for n in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def third_party_imports(entry: str, roots: dict[str, Path]) -> set[str]:
    """Top-level names of the non-stdlib, non-project packages reachable from ``entry``."""
    seen: set[str] = set()
    todo = [entry]
    external: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = _source_of(name, roots)
        if source is None:
            top = name.split(".")[0]
            if top not in roots and top not in sys.stdlib_module_names:
                external.add(top)
            continue
        package = name if source.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_imports(ast.parse(source.read_text(encoding="utf-8")), package))
        if source.name == "__init__.py":
            todo.extend(f"{name}.{p.stem}" for p in source.parent.glob("*.py") if p.stem == "__main__")
    return external


def _closure(requirements: list[str]) -> set[str]:
    names = {re.sub(r"[-_.]+", "-", r).lower() for r in requirements}
    todo = list(names)
    while todo:
        for spec in metadata.requires(todo.pop()) or []:
            req = Requirement(spec)
            name = re.sub(r"[-_.]+", "-", req.name).lower()
            if (req.marker is None or req.marker.evaluate({"extra": ""})) and name not in names:
                names.add(name)
                todo.append(name)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_requirements_cover_the_imports_of_the_module(module: str) -> None:
    # given
    folder = REPO_ROOT / "modules" / module
    if not (folder / f"edgeloop_{module}").is_dir():
        pytest.skip(f"modules/{module}/edgeloop_{module} is not in this checkout")
    roots = {**FIRST_PARTY_ROOTS, f"edgeloop_{module}": folder}
    lines = (folder / "requirements.txt").read_text().splitlines()
    pinned = _closure([Requirement(line).name for line in lines if line.strip() and not line.startswith("#")])
    distributions = metadata.packages_distributions()
    # when
    imported = third_party_imports(f"edgeloop_{module}", roots)
    # then
    missing = {
        name: distributions.get(name, ["?"])
        for name in imported
        if not {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(name, [name])} & pinned
    }
    assert missing == {}
