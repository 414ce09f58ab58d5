"""Everything a new device needs, made once on the cloud side.

``prepare`` (1) takes the cloud's key pairs from ``keys_dir`` or creates them there (private keys
0600, the folder 0700; they never leave it), (2) creates the data and models containers when
missing, (3) finds the initial model (registry champion, else ``--model`` published and signed
now) with a read-only SAS URL, (4) signs a create/write-only SAS on the data container, and
writes (5) the layered deployment, (6) the device's secret file and (7) optionally the base
template with the layer applied (for ``iotedgedev genconfig`` / ``az iot edge set-modules`` or
``edgeloop dev up``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgeloop import keys as keyfiles
from edgeloop.deploy.layer import STORAGE_SECRET, apply_layer, device_layer
from edgeloop.deploy.model import initial_model
from edgeloop.deploy.storage import device_sas, ensure_container, parse_account
from edgeloop.errors import EdgeLoopError

LAYER_FILE = "edgeloop.layered.json"
PREPARED_TEMPLATE = "deployment.prepared.template.json"
SUMMARY_FILE = "prepared.json"


class PrepareError(EdgeLoopError):
    """A step of the preparation failed; the message names the step."""


@dataclass(frozen=True)
class PrepareOptions:
    connection_string: str
    out_dir: Path
    keys_dir: Path
    secrets_dir: Path
    model_file: Path | None = None
    model_name: str = "digits"
    data_container: str = "data"
    models_container: str = "models"
    sas_days: float = 90.0
    model_sas_days: float = 30.0
    template: Path | None = None
    deployment_id: str = "edgeloop-device-setup"
    target_condition: str = "tags.edgeloop.ring='canary'"
    priority: int = 30
    renew_sas_only: bool = False


def _keys(directory: Path) -> keyfiles.KeySet:
    names = (
        keyfiles.ENVELOPE_PRIVATE,
        keyfiles.ENVELOPE_PUBLIC,
        keyfiles.SIGNING_PRIVATE,
        keyfiles.SIGNING_PUBLIC,
    )
    present = [n for n in names if (directory / n).exists()]
    if present and len(present) < len(names):
        missing = sorted(set(names) - set(present))
        raise PrepareError(
            f"{directory} holds some keys but not {', '.join(missing)}; restore them or use another --keys"
        )
    if not present:
        keyfiles.init_keys(directory)
    os.chmod(directory, 0o700)
    return keyfiles.KeySet(directory=directory, envelope_key_id="", signing_key_id="")


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    os.replace(path.with_suffix(".tmp"), path)


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def prepare(opts: PrepareOptions, *, now: datetime | None = None) -> dict[str, Any]:
    """Run every step; returns the summary also written to ``prepared.json`` (no secret in it).

    Raises:
        EdgeLoopError: ``PrepareError``, ``StorageSetupError``, ``InitialModelError`` or
            ``KeyFileError``, each naming what was wrong.
    """
    now = now or datetime.now(UTC)
    account = parse_account(opts.connection_string)
    data = ensure_container(account, opts.data_container)
    sas = device_sas(account, data, now=now, valid=timedelta(days=opts.sas_days))
    secret = opts.secrets_dir / STORAGE_SECRET
    _write_secret(secret, sas.url)
    summary: dict[str, Any] = {
        "prepared_at": now.isoformat(),
        "storage": {
            "account": account.name,
            "container": data.name,
            "sas_permissions": sas.permissions,
            "sas_expires_at": sas.expires_at.isoformat(),
            "device_secret_file": str(secret),
        },
    }
    if opts.renew_sas_only:
        return summary
    keyset = _keys(opts.keys_dir)
    signing_private = keyset.signing_private.read_bytes()
    models = ensure_container(account, opts.models_container)
    model = initial_model(
        models,
        name=opts.model_name,
        model_file=opts.model_file,
        signing_private=signing_private,
        sas_valid=timedelta(days=opts.model_sas_days),
    )
    layer = device_layer(
        container=data.name,
        envelope_public=keyset.envelope_public.read_text(encoding="ascii"),
        signing_public=keyset.signing_public.read_text(encoding="ascii"),
        model=model.desired,
        deployment_id=opts.deployment_id,
        target_condition=opts.target_condition,
        priority=opts.priority,
    )
    _write_json(opts.out_dir / LAYER_FILE, layer)
    summary.update(
        keys={"folder": str(opts.keys_dir), **json.loads((opts.keys_dir / keyfiles.KEYS_JSON).read_text())},
        model={
            "name": model.desired["name"],
            "version": model.desired["version"],
            "sha256": model.desired["sha256"],
            "origin": model.origin,
            "url_expires_at": (now + timedelta(days=opts.model_sas_days)).isoformat(),
        },
        layered_deployment=str(opts.out_dir / LAYER_FILE),
    )
    if opts.template is not None:
        try:
            base = json.loads(opts.template.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PrepareError(f"cannot read --template {opts.template}: {exc}") from exc
        _write_json(opts.out_dir / PREPARED_TEMPLATE, apply_layer(base, layer))
        summary["prepared_template"] = str(opts.out_dir / PREPARED_TEMPLATE)
    _write_json(opts.out_dir / SUMMARY_FILE, summary)
    return summary
