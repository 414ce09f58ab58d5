"""``edgeloop dev`` commands that talk to a running hub (or read its state): invoke, twin,
connection-string, upstream, status, logs, metrics. Output goes through ``edgeloop.cliout``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from edgeloop.cliout import CliError, Table, emit, fail, json_argument
from edgeloop.devhub.cli_lifecycle import state_dir
from edgeloop.devhub.paths import StatePaths
from edgeloop.errors import EdgeLoopError

_SUBSCRIPTION_NAMES = {
    "$iothub/twin/res/#": "twin",
    "$iothub/twin/PATCH/properties/desired/#": "desired",
    "$iothub/methods/POST/#": "methods",
}


def _client(args: argparse.Namespace) -> Any:
    from edgeloop.devhub.control import ControlClient

    return ControlClient(StatePaths.of(state_dir(args)).control_socket)


def _invoke(args: argparse.Namespace) -> int:
    payload = json_argument(args.payload, "--payload")
    try:
        result = _client(args).invoke(args.module, args.method, json.dumps(payload).encode(), args.timeout)
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    emit(result, args.output)
    status = int(result["status"])
    if status < 400:
        return 0
    payload = result.get("payload")
    reason = payload.get("error") if isinstance(payload, dict) else None
    return fail(args, f"{args.module}.{args.method} answered {status}:", *str(reason or payload).split("; "))


def _twin(args: argparse.Namespace) -> int:
    if args.wait and args.desired is None:
        raise CliError("--wait waits for a patch to apply: give --desired too")
    try:
        if args.desired is None:
            doc = _client(args).twin(args.module)
        else:
            patch = json_argument(args.desired, "--desired")
            if not isinstance(patch, dict):
                raise CliError(f"--desired must be a JSON object (a merge patch), got {type(patch).__name__}")
            doc = _client(args).patch_desired(args.module, patch)
            if args.wait:
                return _wait_applied(args, doc["properties"]["desired"]["$version"])
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    emit(doc, args.output, _twin_table)
    return 0


def _wait_applied(args: argparse.Namespace, version: int) -> int:
    """Until the module reports ``configVersion >= version`` (0) or a ``configError`` for it (1)."""
    client = _client(args)
    deadline = time.monotonic() + args.wait_timeout
    while True:
        doc = client.twin(args.module)
        reported = doc["properties"]["reported"]
        error = reported.get("configError") or {}
        if isinstance(error, dict) and int(error.get("version") or 0) >= version:
            emit(doc, args.output, _twin_table)
            reasons = str(error.get("reason")).split("; ")
            return fail(args, f"module {args.module!r} refused desired version {version}:", *reasons)
        if int(reported.get("configVersion") or 0) >= version:
            emit(doc, args.output, _twin_table)
            return 0
        if time.monotonic() > deadline:
            return fail(
                args,
                f"module {args.module!r} did not report desired version {version} within "
                f"{args.wait_timeout:g}s (is it running? 'edgeloop dev status -o table')",
            )
        time.sleep(0.2)


def _twin_table(doc: Any) -> Table:
    from edgeloop.cliout import flatten

    rows = [(key, value) for key, value in flatten(doc.get("properties", doc))]
    return ("PROPERTY", "VALUE"), rows


def _connection_string(args: argparse.Namespace) -> int:
    from edgeloop.devhub.credentials import module_credentials

    try:
        found = module_credentials(StatePaths.of(state_dir(args)), args.module)
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    if args.output in (None, "text"):
        print(found.connection_string)
    else:
        emit(found.as_dict(), args.output)
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
        return fail(args, str(exc))


def _status(args: argparse.Namespace) -> int:
    try:
        doc = _client(args).status()
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    if args.output == "table":
        sys.stdout.write(_hub_lines(doc["hub"]))
    emit(doc, args.output, _modules_table)
    return 0


def _hub_lines(hub: dict[str, Any]) -> str:
    https = (
        f"{hub['bind']}:{hub['httpsPort']}" if hub.get("httpsPort") else f"off ({hub.get('httpsProblem')})"
    )
    lines = [
        f"hub       {hub['bind']}:{hub['port']} (MQTT), {https} (HTTPS, WebSockets); pid {hub['pid']}",
        f"device    {hub['deviceId']} on {hub['iotHubHostName']}, gateway {hub['gatewayHostName']}",
        f"state     {hub['stateDir']}",
    ]
    azurite = (hub.get("services") or {}).get("azurite")
    if azurite and azurite.get("running"):
        lines.append(f"azurite   {azurite['blobEndpoint']} (modules get ${azurite['moduleEnv']})")
    elif azurite:
        lines.append(f"azurite   not running: {azurite.get('reason')}")
    return "\n".join(lines) + "\n\n"


def _modules_table(doc: Any) -> Table:
    rows = []
    for name, state in sorted(doc["modules"].items()):
        subs = [
            _SUBSCRIPTION_NAMES.get(s, "inputs" if s.endswith("/inputs/#") else s)
            for s in state["subscriptions"]
        ]
        session = "live" if state["connected"] else ("stored" if subs else "none")
        rows.append(
            (name, state["connected"], session, ", ".join(subs) or "-", state["queued"], state["inflight"])
        )
    return ("MODULE", "CONNECTED", "SESSION", "SUBSCRIPTIONS", "QUEUED", "INFLIGHT"), rows


def _logs(args: argparse.Namespace) -> int:
    path = StatePaths.of(state_dir(args)).log_file(args.module)
    if not path.exists():
        return fail(
            args, f"no log for module {args.module!r} at {path} (modules are logged by 'edgeloop dev up')"
        )
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
        sys.stdout.write(scrape(read_url(StatePaths.of(state_dir(args)).root, args.module)))
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    return 0
