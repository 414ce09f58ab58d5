"""``edgeloop dev ...``: run the deployment manifest locally and talk to the running hub.

Every command finds its hub through ``--state-dir`` (default ``.edgeloop/dev``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from edgeloop.devhub.paths import DEFAULT_STATE_DIR, StatePaths
from edgeloop.errors import EdgeLoopError

DEFAULT_MANIFEST = Path("deployment.template.json")


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"where the hub keeps its state and sockets (default {DEFAULT_STATE_DIR})",
    )


def _hub_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest", type=Path, default=DEFAULT_MANIFEST, help="deployment manifest (template)"
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="loopback address to listen on (port 8883, fixed by the SDK)"
    )
    parser.add_argument(
        "--gateway-host",
        default=None,
        help="gateway host name modules connect to, put in the certificate (default: the --bind address)",
    )
    parser.add_argument("--device-id", default=None, help="device id (default edgeloop-dev)")
    parser.add_argument(
        "--hub-name", default=None, help="IoT Hub host name (default edgeloop-dev.azure-devices.net)"
    )
    parser.add_argument(
        "--https-port",
        type=int,
        default=443,
        help="port for direct methods between modules and MQTT over WebSockets (default 443, "
        "fixed by the SDK; 0 turns it off)",
    )
    parser.add_argument(
        "--listen-fd",
        type=int,
        default=None,
        help="accept MQTT connections on this inherited listening socket (socket activation)",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")


def register(subparsers: Any) -> None:
    dev = subparsers.add_parser(
        "dev", help="run the manifest locally: dev hub, Azurite, modules as processes"
    )
    sub = dev.add_subparsers(dest="dev_command", metavar="COMMAND")

    hub = sub.add_parser("hub", help="run the dev hub alone and write <state-dir>/env/<module>.env")
    _hub_options(hub)
    _state_dir(hub)
    hub.set_defaults(func=_run_hub)

    up = sub.add_parser("up", help="run the dev hub, Azurite and every module of the manifest")
    _hub_options(up)
    _state_dir(up)
    up.add_argument("--no-azurite", action="store_true", help="do not start Azurite")
    up.add_argument(
        "--no-demo-assets",
        action="store_true",
        help=(
            "with the repository's own manifest, do not create the demo stream, keys and initial "
            "model when missing"
        ),
    )
    up.set_defaults(func=_run_up)

    invoke = sub.add_parser("invoke", help="call a module's direct method (exit 1 for status >= 400)")
    invoke.add_argument("module")
    invoke.add_argument("method")
    invoke.add_argument("--payload", default="null", help="JSON payload (default null)")
    invoke.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    _state_dir(invoke)
    invoke.set_defaults(func=_invoke)

    twin = sub.add_parser("twin", help="print a module twin, or patch its desired properties")
    twin.add_argument("module")
    twin.add_argument("--desired", default=None, help="JSON merge patch for the desired properties")
    _state_dir(twin)
    twin.set_defaults(func=_twin)

    upstream = sub.add_parser("upstream", help="print what reached $upstream (one JSON line each)")
    upstream.add_argument("--follow", "-f", action="store_true", help="keep printing as messages arrive")
    upstream.add_argument("--after", type=int, default=0, help="only entries after this id")
    _state_dir(upstream)
    upstream.set_defaults(func=_upstream)

    status = sub.add_parser("status", help="print the hub's module connections and counters")
    _state_dir(status)
    status.set_defaults(func=_status)

    logs = sub.add_parser("logs", help="print a module's log (as run by 'dev up')")
    logs.add_argument("module")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument("--tail", type=int, default=0, help="only the last N lines")
    _state_dir(logs)
    logs.set_defaults(func=_logs)

    metrics = sub.add_parser("metrics", help="print a module's Prometheus metrics (as run by 'dev up')")
    metrics.add_argument("module")
    _state_dir(metrics)
    metrics.set_defaults(func=_metrics)

    dev.set_defaults(func=lambda _args: dev.print_help() or 2)


def _client(args: argparse.Namespace) -> Any:
    from edgeloop.devhub.control import ControlClient

    return ControlClient(StatePaths.of(args.state_dir).control_socket)


def _fail(message: str) -> int:
    print(f"edgeloop dev: {message}", file=sys.stderr)
    return 1


def _settings(args: argparse.Namespace) -> Any:
    from edgeloop.devhub.app import DEFAULT_DEVICE_ID, DEFAULT_HUB_HOST, HubSettings

    return HubSettings(
        state_dir=args.state_dir,
        bind=args.bind,
        gateway_host=args.gateway_host,
        hub_host=args.hub_name or DEFAULT_HUB_HOST,
        device_id=args.device_id or DEFAULT_DEVICE_ID,
        listen_fd=args.listen_fd,
        https_port=args.https_port,
    )


async def _until_signalled(main: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def _run_hub(args: argparse.Namespace) -> int:
    from edgeloop.devhub.app import run_hub
    from edgeloop.devhub.manifest import load_manifest
    from edgeloop.logs import configure_logging

    configure_logging("devhub", args.log_level)
    try:
        manifest = load_manifest(args.manifest)
        settings = _settings(args)
        asyncio.run(_until_signalled(lambda stop: run_hub(settings, manifest, stop)))
    except EdgeLoopError as exc:
        return _fail(str(exc))
    return 0


def _run_up(args: argparse.Namespace) -> int:
    from edgeloop.devhub.manifest import load_manifest
    from edgeloop.devhub.supervisor import run_up

    try:
        manifest = load_manifest(args.manifest)
        settings = _settings(args)
        if args.manifest == DEFAULT_MANIFEST and not args.no_demo_assets:
            from edgeloop.demo.assets import ensure_dev_assets, uses_demo_assets

            if uses_demo_assets(json.loads(args.manifest.read_text(encoding="utf-8"))):
                os.environ.update(ensure_dev_assets(settings.state_dir))
        asyncio.run(
            _until_signalled(
                lambda stop: run_up(
                    settings, manifest, stop, azurite=not args.no_azurite, log_level=args.log_level
                )
            )
        )
    except EdgeLoopError as exc:
        return _fail(str(exc))
    return 0


def _invoke(args: argparse.Namespace) -> int:
    try:
        result = _client(args).invoke(args.module, args.method, args.payload.encode(), args.timeout)
    except EdgeLoopError as exc:
        return _fail(str(exc))
    print(json.dumps(result, indent=2))
    return 1 if int(result["status"]) >= 400 else 0


def _twin(args: argparse.Namespace) -> int:
    try:
        if args.desired is None:
            doc = _client(args).twin(args.module)
        else:
            try:
                patch = json.loads(args.desired)
            except ValueError as exc:
                return _fail(f"--desired is not JSON: {exc}")
            if not isinstance(patch, dict):
                return _fail("--desired must be a JSON object (a merge patch)")
            doc = _client(args).patch_desired(args.module, patch)
    except EdgeLoopError as exc:
        return _fail(str(exc))
    print(json.dumps(doc, indent=2))
    return 0


def _upstream(args: argparse.Namespace) -> int:
    after = args.after
    client = _client(args)
    try:
        while True:
            entries = client.upstream(after)
            for entry in entries:
                print(json.dumps(entry, ensure_ascii=False), flush=True)
                after = entry["id"]
            if not args.follow:
                return 0
            if not entries:
                time.sleep(0.5)
    except EdgeLoopError as exc:
        return _fail(str(exc))


def _status(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(_client(args).status(), indent=2))
    except EdgeLoopError as exc:
        return _fail(str(exc))
    return 0


def _logs(args: argparse.Namespace) -> int:
    path = StatePaths.of(args.state_dir).log_file(args.module)
    if not path.exists():
        return _fail(f"no log for module {args.module!r} at {path} (modules are logged by 'edgeloop dev up')")
    with open(path, encoding="utf-8", errors="replace") as log_file:
        lines = log_file.readlines()
        for line in lines[-args.tail :] if args.tail else lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        while args.follow:
            line = log_file.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.3)
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from edgeloop.telemetry.dev import read_url, scrape

    try:
        sys.stdout.write(scrape(read_url(StatePaths.of(args.state_dir).root, args.module)))
    except EdgeLoopError as exc:
        return _fail(str(exc))
    return 0
