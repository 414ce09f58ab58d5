"""Import facts about the checkout for the packaging and layering tests: which modules a file
imports (every import statement, at module level or inside functions), the transitive closure
over the checkout's own packages, and what a module's Dockerfiles copy of ``src/edgeloop``."""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import REPO_ROOT

MODULES = ("capture", "inference", "filter", "uploader")
#: Top-level package -> its folder.
PACKAGES: dict[str, Path] = {
    "edgeloop": REPO_ROOT / "src" / "edgeloop",
    "edgeloop_cloud": REPO_ROOT / "cloud" / "edgeloop_cloud",
    "edgeloop_demo": REPO_ROOT / "demo" / "edgeloop_demo",
    **{f"edgeloop_{m}": REPO_ROOT / "modules" / m / f"edgeloop_{m}" for m in MODULES},
}


def module_file(name: str) -> Path | None:
    """The source file of a module of the checkout's packages, or None."""
    top, *rest = name.split(".")
    if top not in PACKAGES:
        return None
    base = PACKAGES[top].joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def module_name(path: Path) -> str:
    """The dotted name of a file in one of the checkout's packages."""
    for top, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            return ".".join([top, *(p for p in parts if p != "__init__")])
    raise ValueError(f"{path} is in none of {sorted(PACKAGES)}")


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` names in an import statement (``from a import b`` names a and a.b)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def static_closure(starts: Iterable[str]) -> set[str]:
    """The checkout's modules reachable from ``starts`` through any import statement, with their
    parent packages (importing ``a.b`` runs ``a/__init__.py``)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(imports_of(path))
    return seen


def package_modules(top: str) -> list[str]:
    """Every module of a top-level package of the checkout."""
    return sorted(module_name(p) for p in PACKAGES[top].rglob("*.py"))


def dockerfile_copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """The (sources, destination) of each COPY from the build context (not ``--from``)."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    copies = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0].upper() != "COPY":
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        copies.append((args[:-1], args[-1]))
    return copies


def copied_edgeloop_modules(dockerfile: Path) -> set[str]:
    """The ``edgeloop.*`` modules a Dockerfile copies (from files or whole folders of src/edgeloop)."""
    modules: set[str] = set()
    for sources, _ in dockerfile_copies(dockerfile):
        for source in sources:
            path = REPO_ROOT / source
            if not path.is_relative_to(PACKAGES["edgeloop"]):
                continue
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            modules |= {module_name(f) for f in files if f.suffix == ".py"}
    return modules
