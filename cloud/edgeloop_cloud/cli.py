"""``edgeloop cloud``: the cloud side run locally (against Azurite and the dev hub) or by hand.

    edgeloop cloud trigger --once | --watch [--interval S]   a trigger pass, or one every S seconds
    edgeloop cloud train                                      a run now, whatever the policy says
    edgeloop cloud gate --version vN                          gate a published version again
    edgeloop cloud rollout [--version vN] --device ID ...     set the model on devices (IoT Hub)
    edgeloop cloud rollout --staged                           canary then fleet, with rollback
    edgeloop cloud rollout --deployment-dir DIR               layered deployment files for az
    edgeloop cloud rollout --dev-hub                          the local dev hub's inference module
    edgeloop cloud label export --out DIR --images-dir DIR    the labelling queue as Label Studio tasks
    edgeloop cloud label import FILE                          Label Studio's export (or CSV) into labels/

Settings and secrets come from the environment (see ``edgeloop_cloud.factory``); each command
logs its progress on stderr (a live line while long work runs; the storage SDK's HTTP logs only
with ``--log-level DEBUG``), checks first that the storage endpoint answers, prints its outcome
on stdout (``-o json``, the default, or ``-o table``) and exits 0 when it did what was asked,
1 otherwise, with ``edgeloop cloud STEP: error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeloop.cliout import add_output_option, emit, error_lines, fail, progress
from edgeloop.errors import EdgeLoopError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cloud", help="retrain trigger, training, gate, registry and rollout")
    parser.add_argument("--config", type=Path, help="CloudConfig JSON file (default: $EDGELOOP_CLOUD_CONFIG)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level on stderr (default INFO); DEBUG adds the storage SDK's HTTP requests",
    )
    sub = parser.add_subparsers(dest="cloud_command", metavar="STEP", required=True)

    trigger = sub.add_parser("trigger", help="ask the retrain policy and run when it fires")
    mode = trigger.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass (the default)")
    mode.add_argument("--watch", action="store_true", help="a pass every --interval seconds until Ctrl-C")
    trigger.add_argument("--interval", type=float, default=60.0, help="seconds between passes with --watch")
    trigger.set_defaults(func=_traced(_trigger))

    train = sub.add_parser("train", help="train, gate and (if it passes) promote now, ignoring the policy")
    train.set_defaults(func=_traced(_train))

    gate = sub.add_parser(
        "gate", help="gate a published version against the champion and promote if it passes"
    )
    gate.add_argument("--version", required=True, help="registry version, e.g. v3")
    gate.set_defaults(func=_traced(_gate))

    rollout = sub.add_parser("rollout", help="send the champion (or --version) to devices")
    rollout.add_argument("--version", help="registry version (default: the champion)")
    where = rollout.add_mutually_exclusive_group(required=True)
    where.add_argument("--device", action="append", help="device id (repeatable); IoT Hub service SDK")
    where.add_argument("--staged", action="store_true", help="canary devices first, then the fleet")
    where.add_argument("--deployment-dir", type=Path, help="write layered deployment files here")
    where.add_argument("--dev-hub", action="store_true", help="the dev hub's inference module")
    rollout.add_argument("--hub", default="<hub-name>", help="IoT Hub name for the printed az commands")
    rollout.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the dev hub's state dir (--dev-hub; default: the solution's, found from the current folder up)",
    )
    rollout.add_argument("--wait", type=float, default=0.0, help="seconds to wait for devices to report")
    rollout.set_defaults(func=_traced(_rollout))

    from edgeloop_cloud.labelling import cli as label_cli

    label_cli.register(sub, services=_services, traced=_traced)
    _finish(
        sub,
        {
            "trigger": "edgeloop cloud trigger --once -o table",
            "train": "edgeloop cloud --log-level DEBUG train",
            "gate": "edgeloop cloud gate --version v3 -o table",
            "rollout": "edgeloop cloud rollout --dev-hub --wait 60",
        },
    )


def _finish(sub: Any, examples: dict[str, str]) -> None:
    """Give every step ``-o json|table``, an example under --help and its name in errors."""
    for name, example in examples.items():
        step = sub.choices[name]
        add_output_option(step)
        step.epilog = f"example:\n  {example}"
        step.formatter_class = argparse.RawDescriptionHelpFormatter
        step.set_defaults(prog=step.prog)


def _print(args: argparse.Namespace, doc: Any) -> None:
    emit(doc, args.output)


def _configure_logging(level: str) -> None:
    """``level`` on stderr; the Azure SDKs' per-request HTTP logs only at DEBUG."""
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger().setLevel(getattr(logging, level))
    logging.getLogger("azure").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def _services(args: argparse.Namespace) -> Any:
    from edgeloop_cloud.factory import services_from_env
    from edgeloop_cloud.storage_reach import check_reachable

    _configure_logging(getattr(args, "log_level", "INFO"))
    conn = os.environ.get("EDGELOOP_STORAGE_CONNECTION_STRING", "")
    if conn:
        check_reachable(conn)
    return services_from_env(config_path=args.config)


def _traced(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run ``command`` with telemetry from the ``OTEL_*`` variables (spans such as a ``decrypt``
    per sample continue the sample's trace from the device), shut down when it returns; a
    one-shot command serves no /metrics unless ``EDGELOOP_METRICS_PORT`` asks."""

    def run(args: argparse.Namespace) -> int:
        from edgeloop import telemetry

        env = {"EDGELOOP_METRICS_PORT": "0", **os.environ}
        telemetry.setup_from_env(os.environ.get("OTEL_SERVICE_NAME", "edgeloop-cloud"), env=env)
        try:
            return command(args)
        finally:
            telemetry.shutdown()

    return run


def _trigger(args: argparse.Namespace) -> int:
    from edgeloop_cloud.pipeline import run_trigger_once

    try:
        svc = _services(args)
        while True:
            with progress("trigger pass (training when the policy fires)"):
                outcome = run_trigger_once(svc)
            _print(args, outcome.as_dict())
            if not args.watch:
                return 1 if outcome.status == "failed" else 0
            time.sleep(max(1.0, args.interval))
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))


def _train(args: argparse.Namespace) -> int:
    from edgeloop_cloud.pipeline import run_trigger_once

    try:
        svc = _services(args)
        with progress("training, gating and promoting"):
            outcome = run_trigger_once(svc, force=True)
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))
    _print(args, outcome.as_dict())
    return 0 if outcome.status in ("promoted", "rejected", "waiting", "skipped") else 1


def _gate(args: argparse.Namespace) -> int:
    from edgeloop_cloud.pipeline import gate_version

    try:
        svc = _services(args)
        with progress(f"gating {args.version}"):
            outcome = gate_version(svc, args.version)
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))
    _print(args, outcome.as_dict())
    return 0 if outcome.status in ("promoted", "rejected", "waiting", "skipped") else 1


def _rollout(args: argparse.Namespace) -> int:
    from edgeloop_cloud import rollout as ro

    try:
        svc = _services(args)
        cfg = svc.config.rollout
        target, previous = _targets(svc, args.version)
        if args.deployment_dir:
            _print(args, _write_deployments(args.deployment_dir, target, cfg, hub=args.hub))
            return 0
        service = _twin_service(args)
        if args.staged or args.dev_hub:
            controller = ro.RolloutController(service, cfg, record=ro.state_recorder(svc.runs))
            state = controller.start(target, previous)
            deadline = time.monotonic() + args.wait
            with progress("waiting for devices to report the model"):
                while not state.finished and time.monotonic() < deadline:
                    time.sleep(1.0)
                    controller.step(state)
            _print(args, state.as_dict())
            return 0 if state.stage in ("done", "canary", "fleet") else 1
        for device in args.device:
            service.set_desired(device, cfg.module_id, {cfg.twin_key: target})
        _print(args, {"devices": args.device, "version": target["version"], "sha256": target["sha256"]})
        return 0
    except EdgeLoopError as exc:
        return fail(args, *error_lines(exc))


def _targets(svc: Any, version: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from edgeloop_cloud.errors import RegistryError
    from edgeloop_cloud.rollout import desired_model

    registry, name = svc.registry, svc.config.model_name
    champion = registry.champion(name)
    if champion is None:
        raise RegistryError(f"model {name!r} has no champion yet; train and promote one first")
    hours = svc.config.rollout.sas_hours
    if version and version != champion.version:
        chosen = registry.release(name, version)
        return desired_model(registry, chosen, sas_hours=hours), desired_model(
            registry, champion, sas_hours=hours
        )
    previous = champion.doc.get("previous_version")
    prev_spec = (
        desired_model(registry, registry.release(name, previous), sas_hours=hours) if previous else None
    )
    return desired_model(registry, champion, sas_hours=hours), prev_spec


def _write_deployments(directory: Path, target: dict[str, Any], cfg: Any, *, hub: str) -> dict[str, Any]:
    from edgeloop_cloud.rollout import deployment_command, layered_deployment

    directory.mkdir(parents=True, exist_ok=True)
    commands = []
    for canary in (True, False):
        deployment = layered_deployment(target, cfg, canary=canary)
        content = directory / f"{deployment['id']}.content.json"
        metrics = directory / f"{deployment['id']}.metrics.json"
        content.write_text(json.dumps({"content": deployment["content"]}, indent=2) + "\n", encoding="utf-8")
        metrics.write_text(json.dumps(deployment["metrics"], indent=2) + "\n", encoding="utf-8")
        commands.append(
            deployment_command(deployment, hub=hub, content_file=str(content), metrics_file=str(metrics))
        )
    return {
        "written": str(directory),
        "commands": commands,
        "note": "run the canary first; the fleet when ready",
    }


def _twin_service(args: argparse.Namespace) -> Any:
    if args.dev_hub:
        from edgeloop.devhub.paths import find_state_dir
        from edgeloop_cloud.devhub_twins import DevHubTwinService

        return DevHubTwinService.from_state_dir(args.state_dir or find_state_dir())
    from edgeloop_cloud.iothub import IoTHubTwinService

    conn = os.environ.get("EDGELOOP_IOTHUB_CONNECTION_STRING", "")
    if not conn:
        raise EdgeLoopError(
            "EDGELOOP_IOTHUB_CONNECTION_STRING is not set; it must be an IoT Hub service connection"
        )
    return IoTHubTwinService(conn)
