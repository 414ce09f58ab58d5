"""``edgeloop cloud label export|import``: the labelling round trip from the command line.

edgeloop cloud label export --out DIR --images-dir DIR [--document-root DIR]
edgeloop cloud label export --out DIR --images-container NAME [--sas-minutes 60]
edgeloop cloud label import FILE [--format labelstudio|csv] [--classes a,b,c]
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from edgeloop.cliout import add_output_option, emit, error_lines, fail, progress
from edgeloop.errors import EdgeLoopError


def register(sub: Any, *, services: Any, traced: Any) -> None:
    """Add ``label`` with its ``export`` and ``import`` steps to ``edgeloop cloud``'s steps."""
    label = sub.add_parser("label", help="the labelling queue out to Label Studio / CSV, and answers back")
    steps = label.add_subparsers(dest="label_command", metavar="ACTION", required=True)

    export = steps.add_parser("export", help="write the queue as Label Studio tasks and CSV, with images")
    export.add_argument(
        "--out", type=Path, required=True, help="folder for tasks.json, queue.csv, label_config.xml"
    )
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--images-dir", type=Path, help="write decrypted images here (Label Studio local files)"
    )
    where.add_argument(
        "--images-container",
        help="upload decrypted images to this private container (not the data container)",
    )
    export.add_argument(
        "--document-root",
        type=Path,
        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, at or above --images-dir (default: --images-dir)",
    )
    export.add_argument(
        "--sas-minutes", type=float, default=60.0, help="how long image SAS URLs read (default 60)"
    )
    export.add_argument("--classes", help="comma-separated classes (default: the champion's edgeloop.labels)")
    export.add_argument("--limit", type=int, help="export at most this many queued samples")
    export.set_defaults(func=traced(lambda args: _export(args, services)))

    imp = steps.add_parser("import", help="read Label Studio's JSON export or a CSV into labels/")
    imp.add_argument("file", type=Path, help="Label Studio JSON export, or CSV with sample_id,label")
    imp.add_argument(
        "--format", choices=("labelstudio", "csv"), help="default: csv for *.csv, else labelstudio"
    )
    imp.add_argument("--classes", help="comma-separated classes (default: the champion's edgeloop.labels)")
    imp.set_defaults(func=traced(lambda args: _import(args, services)))

    examples = {
        export: "edgeloop cloud label export --out labelling --images-dir labelling/images",
        imp: "edgeloop cloud label import project-1-export.json -o table",
    }
    for step, example in examples.items():
        add_output_option(step)
        step.epilog = f"example:\n  {example}"
        step.formatter_class = argparse.RawDescriptionHelpFormatter
        step.set_defaults(prog=step.prog)


def _classes(args: argparse.Namespace, svc: Any) -> list[str]:
    from edgeloop_cloud.labelling.classes import given_classes, resolve_classes

    given = given_classes(args.classes) if args.classes else None
    return resolve_classes(svc.registry, svc.config.model_name, given)


def _export(args: argparse.Namespace, services: Any) -> int:
    from edgeloop.blobstore import AzureContainer
    from edgeloop_cloud.labelling.export import export_for_labelling
    from edgeloop_cloud.labelling.images import ContainerImages, FolderImages, ImageSink

    try:
        svc = services(args)
        classes = _classes(args, svc)
        sink: ImageSink
        if args.images_dir:
            sink = FolderImages(args.images_dir, document_root=args.document_root)
        else:
            conn = os.environ.get("EDGELOOP_STORAGE_CONNECTION_STRING", "")
            sink = ContainerImages(
                AzureContainer.from_connection_string(conn, args.images_container),
                data_container=svc.config.data_container,
                expires_in=timedelta(minutes=args.sas_minutes),
            )
        with progress("decrypting queued samples for labelling"):
            report = export_for_labelling(svc, sink=sink, out_dir=args.out, classes=classes, limit=args.limit)
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))
    emit(report.as_dict(), args.output)
    return 0


def _import(args: argparse.Namespace, services: Any) -> int:
    from edgeloop_cloud.labelling.importer import import_labels

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(args, f"cannot read {args.file}: {exc}")
    try:
        svc = services(args)
        report = import_labels(
            svc, name=str(args.file), text=text, classes=_classes(args, svc), fmt=args.format
        )
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))
    emit(report.as_dict(), args.output)
    return 0
