"""``edgeloop dev hub | up [--detach] | down``: start and stop the local hub.

``up --detach`` runs ``dev up`` as a background process of its own session (output in
``<state-dir>/logs/up.log``) and returns once the hub answers; ``down`` sends the process that
runs the hub (``pid`` in ``<state-dir>/hub.json``) SIGTERM, so modules and Azurite stop too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeloop.cliout import CliError, fail
from edgeloop.devhub.paths import StatePaths, find_state_dir, solution_root
from edgeloop.errors import EdgeLoopError

DEFAULT_MANIFEST = Path("deployment.template.json")
_DETACH_READY_SECS = 60.0


def state_dir(args: argparse.Namespace) -> Path:
    """``--state-dir``, or the solution's own (found from the current directory upwards)."""
    return Path(args.state_dir) if args.state_dir is not None else find_state_dir()


def manifest_path(args: argparse.Namespace) -> Path:
    if args.manifest is not None:
        return Path(args.manifest)
    return (solution_root() or Path.cwd()) / DEFAULT_MANIFEST


def _settings(args: argparse.Namespace) -> Any:
    from edgeloop.devhub.app import DEFAULT_DEVICE_ID, DEFAULT_HUB_HOST, HubSettings

    return HubSettings(
        state_dir=state_dir(args),
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
        manifest = load_manifest(manifest_path(args))
        settings = _settings(args)
        asyncio.run(_until_signalled(lambda stop: run_hub(settings, manifest, stop)))
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    return 0


def _run_up(args: argparse.Namespace) -> int:
    from edgeloop.devhub.manifest import load_manifest
    from edgeloop.devhub.supervisor import run_up

    if args.detach:
        return _detach(args)
    try:
        path = manifest_path(args)
        manifest = load_manifest(path)
        settings = _settings(args)
        if args.manifest is None and not args.no_demo_assets:
            from edgeloop_demo.assets import ensure_dev_assets, uses_demo_assets

            if uses_demo_assets(json.loads(path.read_text(encoding="utf-8"))):
                os.environ.update(ensure_dev_assets(settings.state_dir))
        asyncio.run(
            _until_signalled(
                lambda stop: run_up(
                    settings, manifest, stop, azurite=not args.no_azurite, log_level=args.log_level
                )
            )
        )
    except EdgeLoopError as exc:
        return fail(args, str(exc))
    return 0


def _child_args(args: argparse.Namespace, state: Path) -> list[str]:
    """The ``dev up`` command line a detached run executes (every choice made explicit)."""
    argv = ["--state-dir", str(state), "--bind", args.bind, "--https-port", str(args.https_port)]
    if args.manifest is not None:
        argv += ["--manifest", str(Path(args.manifest).absolute())]
    for option, value in (
        ("--gateway-host", args.gateway_host),
        ("--device-id", args.device_id),
        ("--hub-name", args.hub_name),
        ("--log-level", args.log_level),
    ):
        if value is not None:
            argv += [option, value]
    argv += ["--no-azurite"] if args.no_azurite else []
    argv += ["--no-demo-assets"] if args.no_demo_assets else []
    return argv


def _detach(args: argparse.Namespace) -> int:
    from edgeloop.devhub.control import ControlClient, ControlError

    state = state_dir(args).absolute()
    paths = StatePaths.of(state)
    client = ControlClient(paths.control_socket, timeout=5.0)
    running = _running_pid(paths)
    if running is not None:
        return fail(
            args, f"a dev hub already runs for {state} (pid {running}); stop it with 'edgeloop dev down'"
        )
    paths.logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "edgeloop", "dev", "up", *_child_args(args, state)]
    with open(paths.up_log, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + _DETACH_READY_SECS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return fail(
                args,
                f"'dev up' exited with {proc.returncode}; its output ({paths.up_log}):",
                *_tail(paths.up_log, 15),
            )
        try:
            info = client.status()["hub"]
        except ControlError:
            time.sleep(0.2)
            continue
        print(
            f"dev hub running in the background (pid {proc.pid}) on {info['bind']}:{info['port']}; "
            f"state in {state}"
        )
        print(f"output: {paths.up_log}; stop it with 'edgeloop dev down'")
        return 0
    return fail(args, f"the hub did not answer within {_DETACH_READY_SECS:g}s; see {paths.up_log}")


def _down(args: argparse.Namespace) -> int:
    paths = StatePaths.of(state_dir(args))
    pid = _running_pid(paths)
    if pid is None:
        print(f"no dev hub runs for {paths.root}")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"dev hub stopped (pid {pid})")
            return 0
        time.sleep(0.2)
    raise CliError(
        f"the dev hub (pid {pid}) did not stop within {args.timeout:g}s; 'kill -9 {pid}' ends it "
        "(messages it had not committed are redelivered at the next start)"
    )


def _running_pid(paths: StatePaths) -> int | None:
    """The pid of the live process running the hub of ``paths`` (from hub.json), else None."""
    try:
        pid = int(json.loads(paths.info.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid) and _is_edgeloop(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child of this process that exited is a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _is_edgeloop(pid: int) -> bool:
    """Whether ``pid`` still runs edgeloop (a stale hub.json may name a reused pid)."""
    try:
        return b"edgeloop" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []
