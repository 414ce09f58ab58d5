"""Device images hold only what a device runs: each module's Dockerfiles copy the module and the
device part of ``src/edgeloop`` (runtime, contracts, telemetry and the modules they use), and
everything the module imports, at start-up or later inside a function, is among those files.
The dev hub, the developer tools, the demo and the cloud side are neither copied nor imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.import_graph import (
    MODULES,
    copied_edgeloop_modules,
    dockerfile_copies,
    package_modules,
    static_closure,
)

#: Never in a device image, never imported by a module.
FORBIDDEN = ("edgeloop.devhub", "edgeloop.devtools", "edgeloop.deploy", "edgeloop_demo", "edgeloop_cloud")
#: What a module's container runs: its entry point and the health check.
ENTRY = "import edgeloop_{m}.__main__, edgeloop.healthcheck"
#: Imports every module of the package too, and prints sys.modules; the editable install's
#: finders are dropped so only PYTHONPATH counts.
PROBE = """
import json, pkgutil, sys
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
{entry}
import edgeloop_{m}
for info in pkgutil.walk_packages(edgeloop_{m}.__path__, "edgeloop_{m}."):
    __import__(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _dockerfiles(module: str) -> list[Path]:
    found = sorted((REPO_ROOT / "modules" / module).glob("Dockerfile.*"))
    assert found, f"no Dockerfiles for {module}"
    return found


def _probe(module: str, pythonpath: list[Path], cwd: Path) -> set[str]:
    code = PROBE.format(entry=ENTRY.format(m=module), m=module)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(map(str, pythonpath)), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"edgeloop_{module} does not import from {pythonpath}:\n{done.stderr[-3000:]}"
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", MODULES)
def test_dockerfiles_copy_no_dev_tool_demo_or_cloud_code(module: str) -> None:
    for dockerfile in _dockerfiles(module):
        sources = [s for srcs, _ in dockerfile_copies(dockerfile) for s in srcs]
        assert "src/edgeloop" not in [s.rstrip("/") for s in sources], (
            f"{dockerfile.name} copies all of src/edgeloop"
        )
        copied = copied_edgeloop_modules(dockerfile)
        assert "edgeloop.runtime.module" in copied, dockerfile
        assert not [n for n in copied if _is_forbidden(n)], dockerfile
        assert not any(s.startswith(("cloud", "demo", "modules/")) and f"/edgeloop_{module}" not in s
                       for s in sources if not s.endswith("requirements.txt")), sources  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_every_import_of_a_module_is_among_the_files_its_dockerfiles_copy(module: str) -> None:
    """Static: every import statement reachable from the module's files and the health check,
    also those inside functions that run only later."""
    needed = static_closure([*package_modules(f"edgeloop_{module}"), "edgeloop.healthcheck"])
    assert not [n for n in needed if _is_forbidden(n)]
    device = {n for n in needed if n == "edgeloop" or n.startswith("edgeloop.")}
    assert "edgeloop.runtime" in device
    for dockerfile in _dockerfiles(module):
        missing = sorted(device - copied_edgeloop_modules(dockerfile))
        assert not missing, f"{dockerfile.name} does not copy {missing}, which edgeloop_{module} imports"


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_device_code_when_it_starts(module: str, tmp_path: Path) -> None:
    """Dynamic: what Python really loads for the entry point, the health check and every module
    of the package, first from the checkout, then from only the files an image holds."""
    checkout = [REPO_ROOT / "src", REPO_ROOT / "modules" / module]
    loaded = _probe(module, checkout, tmp_path)
    assert not [n for n in loaded if _is_forbidden(n)], "a device module loads dev, demo or cloud code"
    dockerfile = _dockerfiles(module)[0]
    ours = {n for n in loaded if n == "edgeloop" or n.startswith("edgeloop.")}
    assert ours <= copied_edgeloop_modules(dockerfile), sorted(ours - copied_edgeloop_modules(dockerfile))
    app = tmp_path / "app"
    for sources, destination in dockerfile_copies(dockerfile):
        if not destination.startswith("/app/"):
            continue
        target = app / destination.removeprefix("/app/")
        for source in sources:
            path = REPO_ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    in_image = _probe(module, [app], tmp_path)
    assert {n for n in in_image if n.startswith("edgeloop.")} == {
        n for n in ours if n.startswith("edgeloop.")
    }
