"""A copy of this repository's packaging files for tests that change or generate from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import REPO_ROOT

MODULES = ("capture", "inference", "filter", "uploader")
DEPLOYMENT_SCHEMA_NAME = "azure-iot-edge-deployment-2.0.json"


def copy_layout(dest: Path) -> Path:
    """Templates, .env.template and each module's module.json, requirements and Dockerfiles
    in ``dest``, with stand-ins for the shared package and the module packages."""
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
    (dest / "src" / "edgeloop").mkdir(parents=True)
    (dest / "src" / "edgeloop" / "__init__.py").write_text("")
    return dest


def deployment_schema() -> Path | None:
    """The official deployment manifest schema: $EDGELOOP_DEPLOYMENT_SCHEMA, or shared/schemas
    beside the checkout (or beside its parent folder)."""
    candidates = [os.environ.get("EDGELOOP_DEPLOYMENT_SCHEMA", "")]
    for base in REPO_ROOT.parents[:2]:
        candidates.append(str(base / "shared" / "schemas" / DEPLOYMENT_SCHEMA_NAME))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)
