"""``edgeloop keys init`` and ``edgeloop decrypt``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgeloop.blobstore import parse_sample_blob_name
from edgeloop.envelope import EnvelopeContext, EnvelopeError, PrivateKeyring, open_envelope, open_file
from edgeloop.keys import DEFAULT_KEYS_DIR, ENVELOPE_PRIVATE, KeyFileError, init_keys


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="create the envelope and model-signing key pairs")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    init = keys_sub.add_parser("init", help="write both key pairs (private keys mode 0600)")
    init.add_argument("--dir", default=str(DEFAULT_KEYS_DIR), help=f"folder (default: {DEFAULT_KEYS_DIR})")
    init.add_argument("--force", action="store_true", help="replace key files already there")
    init.set_defaults(func=_init)
    keys.set_defaults(func=lambda _a: keys.print_help() or 2)

    dec = subparsers.add_parser("decrypt", help="open a sealed sample (an ELENV file) with the private key")
    dec.add_argument("source", help="the sealed file (.elenv)")
    dec.add_argument("-o", "--output", help="where to write the plaintext (default: stdout)")
    dec.add_argument(
        "--key",
        action="append",
        help="envelope private key PEM; repeat for rotated keys "
        f"(default: {DEFAULT_KEYS_DIR / ENVELOPE_PRIVATE})",
    )
    dec.add_argument(
        "--blob-name",
        help="the blob name the file was downloaded from: its sample and device ids must match the envelope",
    )
    dec.add_argument("--sample-id", help="expected sample id")
    dec.add_argument("--device-id", help="expected device id")
    dec.add_argument("--content-type", help="expected content type")
    dec.set_defaults(func=_decrypt)


def _init(args: argparse.Namespace) -> int:
    try:
        keyset = init_keys(Path(args.dir), force=args.force)
    except KeyFileError as exc:
        print(f"edgeloop keys init: {exc}", file=sys.stderr)
        return 1
    envelope = f"{keyset.envelope_private} (private), {keyset.envelope_public}"
    print(f"envelope key {keyset.envelope_key_id}: {envelope}")
    print(
        f"signing key  {keyset.signing_key_id}: {keyset.signing_private} (private), {keyset.signing_public}"
    )
    print("give devices the public envelope key; keep the private keys in the cloud")
    return 0


def _expected(args: argparse.Namespace, found: EnvelopeContext) -> EnvelopeContext | None:
    sample_id, device_id = args.sample_id, args.device_id
    if args.blob_name:
        parsed = parse_sample_blob_name(args.blob_name)
        sample_id, device_id = sample_id or parsed.sample_id, device_id or parsed.device_id
    if not (sample_id or device_id or args.content_type):
        return None
    return EnvelopeContext(
        sample_id=sample_id or found.sample_id,
        device_id=device_id or found.device_id,
        content_type=args.content_type or found.content_type,
    )


def _decrypt(args: argparse.Namespace) -> int:
    from edgeloop.envelope import read_header

    key_paths = args.key or [str(DEFAULT_KEYS_DIR / ENVELOPE_PRIVATE)]
    source = Path(args.source)
    try:
        keyring = PrivateKeyring.from_files(*key_paths)
        with open(source, "rb") as fin:
            header = read_header(fin)
        expected = _expected(args, header.context)
        if expected is None:
            print(
                "edgeloop decrypt: no --blob-name/--sample-id given: the envelope's binding to its "
                f"sample is not checked (it says sample {header.context.sample_id!r}, "
                f"device {header.context.device_id!r})",
                file=sys.stderr,
            )
        if args.output:
            result = open_file(source, Path(args.output), keyring=keyring, expected=expected)
        else:
            with open(source, "rb") as fin:
                result = open_envelope(fin, sys.stdout.buffer, keyring=keyring, expected=expected)
    except (EnvelopeError, ValueError, OSError) as exc:
        print(f"edgeloop decrypt: {source}: {exc}", file=sys.stderr)
        return 1
    print(
        f"opened {result.context.sample_id} ({result.context.content_type}, {result.plaintext_bytes} bytes, "
        f"sha256 {result.plaintext_sha256}, key {result.key_id})",
        file=sys.stderr,
    )
    return 0
