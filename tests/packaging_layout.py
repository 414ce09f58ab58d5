"""A copy of this repository's packaging files for tests that change or generate from them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

MODULES = ("capture", "inference", "filter", "uploader")
DEPLOYMENT_SCHEMA_NAME = "azure-iot-edge-deployment-2.0.json"
IOTEDGEDEV_VERSION = "3.3.9"
TOOLS_DIR = REPO_ROOT / ".edgeloop" / "tools"
TEMPLATES = {"deployment.template.json": "deployment", "deployment.debug.template.json": "deployment.debug"}
REGISTRY = "edgeloop.azurecr.io"


def copy_layout(dest: Path) -> Path:
    """Templates, .env.template and each module's module.json, requirements and Dockerfiles
    in ``dest``, with the shared package (the Dockerfiles copy parts of it) and stand-ins for
    the module packages."""
    for name in ("deployment.template.json", "deployment.debug.template.json", ".env.template"):
        shutil.copy(REPO_ROOT / name, dest / name)
    for module in MODULES:
        source = REPO_ROOT / "modules" / module
        target = dest / "modules" / module
        target.mkdir(parents=True)
        for file in [source / "module.json", source / "requirements.txt", *source.glob("Dockerfile.*")]:
            shutil.copy(file, target / file.name)
        (target / f"edgeloop_{module}").mkdir()
        (target / f"edgeloop_{module}" / "__main__.py").write_text("")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "src" / "edgeloop", dest / "src" / "edgeloop", ignore=ignore)
    return dest


def deployment_schema() -> Path | None:
    """The official deployment manifest schema: $EDGELOOP_DEPLOYMENT_SCHEMA, shared/schemas
    beside the checkout (or beside its parent folder), or the copy the package ships."""
    candidates = [os.environ.get("EDGELOOP_DEPLOYMENT_SCHEMA", "")]
    for base in REPO_ROOT.parents[:2]:
        candidates.append(str(base / "shared" / "schemas" / DEPLOYMENT_SCHEMA_NAME))
    # The copy the package ships for `edgeloop manifest check` (same file, with its licence note).
    candidates.append(str(REPO_ROOT / "src" / "edgeloop" / "deploy_schemas" / DEPLOYMENT_SCHEMA_NAME))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def ensure_iotedgedev() -> Path:
    """The iotedgedev command, installed once into .edgeloop/tools/iotedgedev-venv (its
    dependencies clash with the project's, so it gets its own environment)."""
    env_dir = TOOLS_DIR / "iotedgedev-venv"
    stamp = env_dir / f".installed-{IOTEDGEDEV_VERSION}"
    if not stamp.is_file():
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [env_dir / "bin" / "python", "-m", "pip", "install", "-q", f"iotedgedev=={IOTEDGEDEV_VERSION}"],
            check=True,
            timeout=600,
        )
        stamp.touch()
    return env_dir / "bin" / "iotedgedev"


def write_dotenv(root: Path) -> None:
    """.env from .env.template with a registry filled in, as a user would."""
    values = {
        "CONTAINER_REGISTRY_SERVER": REGISTRY,
        "CONTAINER_REGISTRY_USERNAME": "edgeloop",
        "CONTAINER_REGISTRY_PASSWORD": "not-a-real-password",
    }
    lines = []
    for line in (root / ".env.template").read_text(encoding="utf-8").splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if "=" in line and name in values else line)
    (root / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def genconfig(iotedgedev: Path, root: Path, template: str, platform: str) -> dict[str, Any]:
    """``iotedgedev solution genconfig`` in ``root`` (offline); the generated manifest."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEPLOYMENT_CONFIG_FILE", "DOTENV_FILE")}
    result = subprocess.run(
        [iotedgedev, "solution", "genconfig", "-f", template, "-P", platform, "--fail-on-validation-error"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = root / "config" / f"{TEMPLATES[template]}.{platform}.json"
    generated: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return generated
