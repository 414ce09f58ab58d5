"""``edgeloop dev ...``: run the deployment manifest locally and talk to the running hub.

Every command finds its hub through ``--state-dir`` (default: ``.edgeloop/dev`` of the nearest
folder upwards that has one or a ``deployment.template.json``). The commands themselves live
in ``cli_lifecycle`` (hub, up, down) and ``cli_commands`` (everything that talks to a hub).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeloop.cliout import add_output_option
from edgeloop.devhub.cli_commands import (
    _connection_string,
    _invoke,
    _logs,
    _metrics,
    _status,
    _twin,
    _upstream,
)
from edgeloop.devhub.cli_lifecycle import DEFAULT_MANIFEST, _down, _run_hub, _run_up
from edgeloop.devhub.paths import DEFAULT_STATE_DIR


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the hub keeps its state and sockets (default: {DEFAULT_STATE_DIR} in the nearest "
        "folder upwards that has one or a deployment.template.json, as git finds .git)",
    )


def _command(sub: Any, name: str, func: Any, help_text: str, examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand with its examples under --help; errors are prefixed with its full name."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func, prog=parser.prog)
    return parser


def _hub_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help=f"deployment manifest (template); default: {DEFAULT_MANIFEST} of the solution folder",
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
    _register_run(sub)
    _register_module_commands(sub)
    _register_views(sub)
    dev.set_defaults(func=lambda _args: dev.print_help() or 2)


def _register_run(sub: Any) -> None:
    hub = _command(
        sub,
        "hub",
        _run_hub,
        "run the dev hub alone and write <state-dir>/env/<module>.env",
        ["edgeloop dev hub", "edgeloop dev hub --bind 127.0.0.2 --https-port 0"],
    )
    _hub_options(hub)
    _state_dir(hub)

    up = _command(
        sub,
        "up",
        _run_up,
        "run the dev hub, Azurite and every module of the manifest",
        ["edgeloop dev up", "edgeloop dev up --detach && edgeloop dev status -o table"],
    )
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
    up.add_argument(
        "--detach",
        "-d",
        action="store_true",
        help="run in the background (output in <state-dir>/logs/up.log); stop with 'edgeloop dev down'",
    )

    down = _command(
        sub,
        "down",
        _down,
        "stop a hub started by 'dev up' (--detach or not) or 'dev hub'",
        ["edgeloop dev down", "edgeloop dev down --timeout 60"],
    )
    down.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to stop")
    _state_dir(down)


def _register_module_commands(sub: Any) -> None:
    invoke = _command(
        sub,
        "invoke",
        _invoke,
        "call a module's direct method (exit 1 for status >= 400)",
        [
            "edgeloop dev invoke filter getStats -o table",
            "edgeloop dev invoke filter setPolicy --payload @policy.json",
        ],
    )
    invoke.add_argument("module")
    invoke.add_argument("method")
    invoke.add_argument("--payload", default="null", help="JSON payload, or @file.json (default null)")
    invoke.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    add_output_option(invoke)
    _state_dir(invoke)

    twin = _command(
        sub,
        "twin",
        _twin,
        "print a module twin, or patch its desired properties",
        [
            "edgeloop dev twin filter -o table",
            "edgeloop dev twin filter --desired '{\"summary_interval_s\": 30}' --wait",
            "edgeloop dev twin filter --desired @desired.json",
        ],
    )
    twin.add_argument("module")
    twin.add_argument(
        "--desired", default=None, help="JSON merge patch for the desired properties, or @file.json"
    )
    twin.add_argument(
        "--wait",
        action="store_true",
        help="after --desired, wait until the module reports the patch applied (exit 0) "
        "or its configError (exit 1)",
    )
    twin.add_argument("--wait-timeout", type=float, default=30.0, help="seconds --wait waits (default 30)")
    add_output_option(twin)
    _state_dir(twin)

    conn = _command(
        sub,
        "connection-string",
        _connection_string,
        "print a module's connection string (read-only; works while the hub runs)",
        ["edgeloop dev connection-string filter", "edgeloop dev connection-string filter -o json"],
    )
    conn.add_argument("module")
    add_output_option(conn, default="text")
    _state_dir(conn)


def _register_views(sub: Any) -> None:
    upstream = _command(
        sub,
        "upstream",
        _upstream,
        "print what reached $upstream, with system properties (one JSON line each)",
        ["edgeloop dev upstream", "edgeloop dev upstream --follow --after 120"],
    )
    upstream.add_argument("--follow", "-f", action="store_true", help="keep printing as messages arrive")
    upstream.add_argument("--after", type=int, default=0, help="only entries after this id")
    _state_dir(upstream)

    status = _command(
        sub,
        "status",
        _status,
        "print the hub (ports, Azurite's endpoint), module connections and sessions, counters",
        ["edgeloop dev status", "edgeloop dev status -o table"],
    )
    add_output_option(status)
    _state_dir(status)

    logs = _command(
        sub,
        "logs",
        _logs,
        "print a module's log (as run by 'dev up')",
        ["edgeloop dev logs filter --tail 50 -f"],
    )
    logs.add_argument("module")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument("--tail", type=int, default=0, help="only the last N lines")
    _state_dir(logs)

    metrics = _command(
        sub,
        "metrics",
        _metrics,
        "print a module's Prometheus metrics (as run by 'dev up')",
        ["edgeloop dev metrics filter"],
    )
    metrics.add_argument("module")
    _state_dir(metrics)
