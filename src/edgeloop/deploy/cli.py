"""``edgeloop deploy prepare``: keys, containers, SAS, signed initial model, layered deployment."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeloop.errors import EdgeLoopError
from edgeloop.keys import DEFAULT_KEYS_DIR

CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"


def register(subparsers: Any) -> None:
    deploy = subparsers.add_parser("deploy", help="prepare what a device needs from the cloud")
    sub = deploy.add_subparsers(dest="deploy_command", metavar="COMMAND")
    prep = sub.add_parser(
        "prepare",
        help="keys, storage containers, a create/write-only SAS, the signed initial model and a "
        "layered deployment for the device",
    )
    prep.add_argument(
        "--connection-string",
        help=f"account-level storage connection string (default: ${CONNECTION_ENV})",
    )
    prep.add_argument("--out", default="edgeloop-deploy", help="folder for the deployment files")
    prep.add_argument(
        "--keys", default=str(DEFAULT_KEYS_DIR), help="the cloud's key folder: taken if present, else created"
    )
    prep.add_argument(
        "--secrets-dir",
        help="where to write the device's secret file storage-sas-url (default: <out>/device-secrets); "
        "copy it to the device's /var/lib/edgeloop/secrets",
    )
    prep.add_argument("--model", type=Path, help="initial model file, used when the registry has no champion")
    prep.add_argument("--model-name", default="digits", help="registry model name (default: digits)")
    prep.add_argument("--container", default="data", help="data container (default: data)")
    prep.add_argument("--models-container", default="models", help="models container (default: models)")
    prep.add_argument(
        "--sas-days", type=float, default=90.0, help="device SAS lifetime in days (default: 90)"
    )
    prep.add_argument("--model-sas-days", type=float, default=30.0, help="model URL lifetime (default: 30)")
    prep.add_argument(
        "--template",
        type=Path,
        help="base template to write with the layer applied as deployment.prepared.template.json "
        "(default: deployment.template.json when present)",
    )
    prep.add_argument("--deployment-id", default="edgeloop-device-setup", help="layered deployment id")
    prep.add_argument(
        "--target-condition", default="tags.edgeloop.ring='canary'", help="layered deployment target"
    )
    prep.add_argument("--priority", type=int, default=30, help="layered deployment priority (default: 30)")
    prep.add_argument(
        "--renew-sas", action="store_true", help="only sign a new device SAS and write the secret file"
    )
    prep.set_defaults(func=_prepare)
    deploy.set_defaults(func=lambda _a: deploy.print_help() or 2)


def _prepare(args: argparse.Namespace) -> int:
    from edgeloop.deploy.prepare import PrepareOptions, prepare

    connection = args.connection_string or os.environ.get(CONNECTION_ENV, "")
    if not connection.strip():
        print(f"edgeloop deploy prepare: give --connection-string or set {CONNECTION_ENV}", file=sys.stderr)
        return 2
    out = Path(args.out)
    template = args.template
    if template is None and Path("deployment.template.json").is_file():
        template = Path("deployment.template.json")
    options = PrepareOptions(
        connection_string=connection,
        out_dir=out,
        keys_dir=Path(args.keys),
        secrets_dir=Path(args.secrets_dir) if args.secrets_dir else out / "device-secrets",
        model_file=args.model,
        model_name=args.model_name,
        data_container=args.container,
        models_container=args.models_container,
        sas_days=args.sas_days,
        model_sas_days=args.model_sas_days,
        template=template,
        deployment_id=args.deployment_id,
        target_condition=args.target_condition,
        priority=args.priority,
        renew_sas_only=args.renew_sas,
    )
    try:
        summary = prepare(options)
    except EdgeLoopError as exc:
        print(f"edgeloop deploy prepare: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0
