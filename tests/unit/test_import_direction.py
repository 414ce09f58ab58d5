"""Imports go one way: the demo uses the product, never the reverse; device code uses neither
the cloud side nor the demo. Checked on every import statement (also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.import_graph import MODULES, copied_edgeloop_modules, imports_of, module_file

#: Developer-CLI hooks in src/edgeloop that may load the demo, and only inside a function:
#: ``edgeloop dev up`` makes the demo's assets when it runs the repository's own manifest.
DEMO_HOOKS = {REPO_ROOT / "src" / "edgeloop" / "devhub" / "cli_lifecycle.py"}


def _python_files(*folders: str) -> list[Path]:
    files = [p for f in folders for p in sorted((REPO_ROOT / f).rglob("*.py"))]
    assert files, folders
    return files


def _uses(names: set[str], package: str) -> bool:
    return any(n == package or n.startswith(package + ".") for n in names)


def _absolute_imports(path: Path) -> set[str]:
    """Modules named by absolute import statements anywhere in a file (a relative import stays
    inside its own package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_nothing_in_the_product_imports_the_demo() -> None:
    users = [
        str(p.relative_to(REPO_ROOT))
        for p in _python_files("src/edgeloop", "cloud", "modules")
        if _uses(_absolute_imports(p), "edgeloop_demo") and p not in DEMO_HOOKS
    ]
    assert users == []


def test_the_dev_cli_hooks_load_the_demo_only_when_they_run() -> None:
    for hook in DEMO_HOOKS:
        assert _uses(imports_of(hook), "edgeloop_demo"), (
            f"{hook} no longer uses the demo: drop it from DEMO_HOOKS"
        )
        assert not _uses(imports_of(hook, top_level_only=True), "edgeloop_demo"), hook


def test_device_code_imports_neither_the_cloud_side_nor_dev_tools() -> None:
    device = set().union(
        *(
            copied_edgeloop_modules(d)
            for m in MODULES
            for d in (REPO_ROOT / "modules" / m).glob("Dockerfile.*")
        )
    )
    device_files = [module_file(n) for n in sorted(device)]
    device_files += _python_files(*(f"modules/{m}/edgeloop_{m}" for m in MODULES))
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            n for n in imports_of(path)
            if n.split(".")[0] in ("edgeloop_cloud", "edgeloop_demo")
            or n.startswith(("edgeloop.devhub", "edgeloop.devtools", "edgeloop.deploy"))
        )
        for path in device_files
        if path is not None
    }  # fmt: skip
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(device_files) > 20
