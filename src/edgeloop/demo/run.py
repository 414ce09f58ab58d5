"""``edgeloop demo``: the whole loop on one machine.

Sets up what is missing (keys, the scenario's frames, Azurite, an initial model trained on the
clean base data and registered as champion), runs the dev hub with the repository's manifest
and the four modules as processes, and plays the cloud: it labels uploaded samples from the
scenario's ground truth, runs the retrain trigger, training and gate, and rolls promoted models
out to the inference module through its twin. At the end it scores the initial and final
models on the drifted stream and writes a JSON report and a PNG plot.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from edgeloop.demo.labeller import Labeller
from edgeloop.demo.scenario import Scenario, ScenarioConfig, build, write_stream_folder
from edgeloop.errors import EdgeLoopError

log = logging.getLogger(__name__)

MODEL_NAME = "digits"
MARKER = ".edgeloop-demo"


class DemoError(EdgeLoopError):
    """The demo could not set up or run; the message says which step and why."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``edgeloop demo`` was asked for."""

    state_dir: Path
    repo_root: Path
    quick: bool = False
    seed: int = 7
    drift: str = "mixed"
    severity: str = "medium"
    budget: int | None = None
    fps: float | None = None
    bind: str = "127.0.0.1"
    report: Path | None = None
    plot: Path | None = None
    timeout_s: float | None = None

    @property
    def stream_size(self) -> int:
        return 480 if self.quick else 800

    @property
    def frames_per_second(self) -> float:
        return self.fps or (15.0 if self.quick else 8.0)

    @property
    def upload_budget(self) -> int:
        """Samples the filter may select over the whole stream (15% by default)."""
        return self.budget if self.budget is not None else int(self.stream_size * 0.15)

    @property
    def deadline_s(self) -> float:
        return self.timeout_s or (170.0 if self.quick else 600.0)


@dataclass
class Progress:
    """The figures the live display shows."""

    captured: int = 0
    scored: int = 0
    selected: int = 0
    uploaded: int = 0
    outbox: int = 0
    labelled: int = 0
    model: str = "-"
    decisions: list[str] = field(default_factory=list)

    def line(self, elapsed: float) -> str:
        last = self.decisions[-1] if self.decisions else "no gate decision yet"
        return (
            f"[{elapsed:5.0f}s] captured {self.captured}  scored {self.scored}  selected {self.selected}  "
            f"uploaded {self.uploaded}  outbox {self.outbox}  labelled {self.labelled}  "
            f"model {self.model}  | {last}"
        )


class _Display:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.out.write("\r\033[K" + text[:200])
            self.out.flush()
        elif force or now - self._last >= 5.0:
            self.out.write(text + "\n")
            self.out.flush()
            self._last = now

    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write(text + "\n")
        self.out.flush()


def prepare_state_dir(state_dir: Path) -> None:
    """Start from a clean demo folder; refuse to wipe a folder the demo did not create."""
    if state_dir.exists() and any(state_dir.iterdir()):
        if not (state_dir / MARKER).exists():
            raise DemoError(
                f"--state-dir {state_dir} is not empty and was not made by 'edgeloop demo'; "
                "choose another folder or empty it"
            )
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / MARKER).write_text("made by edgeloop demo; deleted at the next run\n", encoding="utf-8")


def demo_manifest(
    repo_root: Path, *, opts: DemoOptions, envelope_public: str, signing_public: str, storage: str
) -> dict[str, Any]:
    """The repository's deployment manifest with the demo's settings: the stream folder as
    capture's source, the cloud's public keys, the upload budget and the local storage."""
    path = repo_root / "deployment.template.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot read the manifest {path}: {exc}") from exc
    content = doc["modulesContent"]
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    capture = copy.deepcopy(content["capture"]["properties.desired"])
    for source in capture.get("sources", []):
        if source.get("kind") == "folder":
            source["fps"] = opts.frames_per_second
    content["capture"]["properties.desired"] = capture
    content["inference"]["properties.desired"]["publicKey"] = signing_public
    uploader = content["uploader"]["properties.desired"]
    uploader.setdefault("encryption", {})["public_key_pem"] = envelope_public
    uploader.setdefault("retry", {})["initial_backoff_s"] = 0.5
    modules["uploader"].setdefault("env", {})["EDGELOOP_STORAGE_CONNECTION_STRING"] = {"value": storage}
    policy = content["filter"]["properties.desired"].setdefault("policy", {})
    budget = opts.upload_budget
    policy["version"] = f"demo-budget-{budget}"
    policy["limits"] = {"per_hour": budget, "per_day": budget}
    for strategy in policy.get("strategies", []):
        strategy["limits"] = {"per_hour": budget, "per_day": budget}
    content["filter"]["properties.desired"]["summary_interval_s"] = 10
    return doc


class _HubThread:
    """``edgeloop dev up`` (hub and modules as processes) on a thread of its own."""

    def __init__(self, manifest: Any, settings: Any, say: Callable[[str], None]) -> None:
        self._manifest = manifest
        self._settings = settings
        self._say = say
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dev-up", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise DemoError("the dev hub did not start within 30 s")

    def _run(self) -> None:
        from edgeloop.devhub.supervisor import run_up

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await run_up(self._settings, self._manifest, self._stop, azurite=False, say=self._say)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def _stat(doc: Any, *path: str) -> int:
    for key in path:
        if not isinstance(doc, dict):
            return 0
        doc = doc.get(key)
    return int(doc) if isinstance(doc, int | float) else 0


def _reported(client: Any, module: str) -> dict[str, Any]:
    """The module's reported properties, as the dev hub's control API shows its twin."""
    reported = client.twin(module).get("properties", {}).get("reported", {})
    return reported if isinstance(reported, dict) else {}


class DemoRun:
    """One run of the demo in a state folder ``prepare_state_dir`` made; ``run()`` returns the report."""

    def __init__(self, opts: DemoOptions, out: TextIO | None = None) -> None:
        self.opts = opts
        self.display = _Display(out or sys.stdout)
        self.progress = Progress()
        self.rounds: list[dict[str, Any]] = []
        self.hub_lines: list[str] = []
        self.started = time.monotonic()

    # -- set-up --------------------------------------------------------------------------
    def _scenario(self, volumes: Path) -> tuple[Scenario, dict[str, Any]]:
        cfg = ScenarioConfig(
            seed=self.opts.seed,
            drift=self.opts.drift,  # type: ignore[arg-type]
            severity=self.opts.severity,  # type: ignore[arg-type]
            stream_size=self.opts.stream_size,
            clean_share=0.2,
        )
        scenario = build(cfg)
        truth_path = write_stream_folder(scenario, volumes / "samples" / "input" / "stream")
        return scenario, json.loads(truth_path.read_text(encoding="utf-8"))

    def _cloud(self, connection_string: str, keys: Any) -> Any:
        from edgeloop_cloud.config import CloudConfig
        from edgeloop_cloud.opener import EnvelopeOpener
        from edgeloop_cloud.pipeline import CloudServices
        from edgeloop_cloud.storage import AzureContainer

        from edgeloop import signing

        rounds_wanted = 3
        config = CloudConfig.model_validate(
            {
                "model_name": MODEL_NAME,
                "trigger": {
                    "min_new_labels": max(8, self.opts.upload_budget // (rounds_wanted + 1)),
                    "cooldown_minutes": 0,
                },
                "training": {"base_seed": self.opts.seed},
            }
        )
        return CloudServices(
            data=AzureContainer.from_connection_string(connection_string, config.data_container),
            models=AzureContainer.from_connection_string(connection_string, config.models_container),
            runs=AzureContainer.from_connection_string(connection_string, config.runs_container),
            opener=EnvelopeOpener.from_files([keys.envelope_private]),
            signing_key=signing.read_key_file(keys.signing_private),
            config=config,
        )

    def _bootstrap_model(self, svc: Any, models_dir: Path) -> Any:
        """Train the initial model on clean base data, register it as champion, and put it on
        the models volume as the inference module's initial model."""
        from edgeloop_cloud.pipeline import run_trigger_once

        outcome = run_trigger_once(svc, force=True)
        champion = svc.registry.champion(MODEL_NAME)
        if champion is None:
            raise DemoError(f"the initial model was not promoted: {'; '.join(outcome.reasons)}")
        initial = models_dir / "initial" / "model.onnx"
        initial.parent.mkdir(parents=True, exist_ok=True)
        initial.write_bytes(svc.registry.read_model(MODEL_NAME, champion.version))
        initial.with_name("model.onnx.sig").write_text(champion.signature, encoding="utf-8")
        self.rounds.append({"round": 0, "version": champion.version, "status": outcome.status,
                            "reasons": outcome.reasons, "labelled": 0})  # fmt: skip
        return champion

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from edgeloop.devhub.app import HubSettings
        from edgeloop.devhub.manifest import load_manifest
        from edgeloop.devhub.paths import StatePaths
        from edgeloop.devtools.azurite import Azurite
        from edgeloop.keys import init_keys

        opts = self.opts
        paths = StatePaths.of(opts.state_dir)
        self.display.say(f"edgeloop demo: state in {opts.state_dir} (drift {opts.drift}/{opts.severity})")
        scenario, truth = self._scenario(paths.volumes)
        keys = init_keys(opts.state_dir / "keys")
        self.display.say(
            f"scenario: {len(scenario.stream)} frames, drift after {int(len(scenario.stream) * 0.2)}"
        )
        with Azurite(opts.state_dir / "azurite-data", host="127.0.0.1") as azurite:
            svc = self._cloud(azurite.connection_string, keys)
            initial = self._bootstrap_model(svc, paths.volumes / "models")
            self.display.say(
                f"initial model {initial.version} trained on clean frames and registered as champion"
            )
            doc = demo_manifest(
                opts.repo_root,
                opts=opts,
                envelope_public=keys.envelope_public.read_text(encoding="utf-8"),
                signing_public=keys.signing_public.read_text(encoding="utf-8"),
                storage=azurite.connection_string,
            )
            manifest = replace(load_manifest(doc), folder=opts.repo_root)
            hub = _HubThread(
                manifest, HubSettings(state_dir=opts.state_dir, bind=opts.bind), self.hub_lines.append
            )
            hub.start()
            try:
                final = self._drive(svc, paths, Labeller(truth), initial)
            finally:
                self.display.say("stopping the modules and the hub ...")
                hub.stop()
            if hub.error is not None:
                raise DemoError(f"the dev hub failed: {hub.error}")
            report = self._report(svc, scenario, initial, final)
            svc.close()
        return report

    def _client(self, paths: Any) -> Any:
        from edgeloop.devhub.control import ControlClient

        deadline = time.monotonic() + 30
        while not paths.control_socket.exists():
            if time.monotonic() > deadline:
                raise DemoError(f"the dev hub's control socket {paths.control_socket} did not appear")
            time.sleep(0.1)
        return ControlClient(paths.control_socket, timeout=15)

    def _poll(self, client: Any, stats: dict[str, Any]) -> None:
        for module in ("capture", "inference", "filter", "uploader"):
            try:
                answer = client.invoke(module, "getStats", b"{}", timeout=10)
            except EdgeLoopError:
                continue
            if answer.get("status") == 200:
                stats[module] = answer.get("payload", {}).get("module", {})
        p = self.progress
        sources = stats.get("capture", {}).get("sources", {})
        p.captured = sum(_stat(s, "frames") for s in sources.values()) if isinstance(sources, dict) else 0
        p.scored = _stat(stats.get("inference", {}), "scored")
        by_strategy = stats.get("filter", {}).get("selected_by_strategy", {})
        p.selected = sum(int(v) for v in by_strategy.values()) if isinstance(by_strategy, dict) else 0
        uploader = stats.get("uploader", {})
        p.uploaded = _stat(uploader, "counters", "uploaded")
        p.outbox = _stat(uploader, "queue", "depth")
        model = _reported(client, "inference").get("model", {})
        if isinstance(model, dict):
            p.model = f"{model.get('version', '-')} ({model.get('status', '?')})"

    def _cloud_pass(self, svc: Any, client: Any, labeller: Labeller, *, force: bool = False) -> Any:
        from edgeloop_cloud.pipeline import run_trigger_once
        from edgeloop_cloud.rollout import desired_model

        self.progress.labelled += labeller.label_new(svc.data)
        outcome = run_trigger_once(svc, force=force)
        if outcome.version is None:  # the trigger waited: nothing was trained
            return None
        entry = {"round": len(self.rounds), "version": outcome.version, "status": outcome.status,
                 "reasons": outcome.reasons, "labelled": self.progress.labelled}  # fmt: skip
        self.rounds.append(entry)
        self.progress.decisions.append(f"{outcome.version}: {outcome.status}")
        self.display.say(f"gate: {outcome.version} {outcome.status} ({'; '.join(outcome.reasons)[:120]})")
        champion = svc.registry.champion(MODEL_NAME)
        if outcome.status == "promoted" and champion is not None:
            client.patch_desired("inference", {"model": desired_model(svc.registry, champion, sas_hours=2)})
            self.display.say(f"rollout: {champion.version} sent to the inference module's twin")
        return champion

    def _drive(self, svc: Any, paths: Any, labeller: Labeller, initial: Any) -> Any:
        client = self._client(paths)
        stats: dict[str, Any] = {}
        champion = initial
        next_cloud = time.monotonic() + 4
        settled_since: float | None = None
        while True:
            elapsed = time.monotonic() - self.started
            if elapsed > self.opts.deadline_s:
                self.display.say(f"time is up after {elapsed:.0f}s; finishing with what has arrived")
                break
            self._poll(client, stats)
            self.display.show(self.progress.line(elapsed))
            if time.monotonic() >= next_cloud:
                champion = self._cloud_pass(svc, client, labeller) or champion
                next_cloud = time.monotonic() + 4
            if self._drained():
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 3:
                    break
            else:
                settled_since = None
            time.sleep(1.0)
        champion = self._final_round(svc, client, labeller, champion)
        self._wait_model(client, champion.version)
        self.display.show(self.progress.line(time.monotonic() - self.started), force=True)
        if self.display.tty:
            self.display.say("")
        return champion

    def _drained(self) -> bool:
        p = self.progress
        return p.captured >= self.opts.stream_size and p.scored >= p.captured and p.outbox == 0

    def _final_round(self, svc: Any, client: Any, labeller: Labeller, champion: Any) -> Any:
        """Label what is left and retrain once more if labels arrived since the last run."""
        labeller.label_new(svc.data)
        last_labelled = self.rounds[-1]["labelled"] if self.rounds else 0
        self.progress.labelled = len(labeller.labelled)
        if self.progress.labelled > last_labelled:
            return self._cloud_pass(svc, client, labeller, force=True) or champion
        return champion

    def _wait_model(self, client: Any, version: str, timeout: float = 45.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = _reported(client, "inference").get("model", {})
            if (
                isinstance(model, dict)
                and model.get("version") == version
                and model.get("status") == "loaded"
            ):
                self.progress.model = f"{version} (loaded)"
                return
            time.sleep(0.5)
        self.display.say(f"the inference module did not report {version} loaded within {timeout:.0f}s")

    # -- the report ----------------------------------------------------------------------
    def _report(self, svc: Any, scenario: Scenario, initial: Any, final: Any) -> dict[str, Any]:
        from edgeloop.demo.report import accuracy_table, decrypt_check, evaluate_models

        models = evaluate_models(svc, scenario, {"initial": initial.version, "final": final.version})
        check = decrypt_check(svc)
        p = self.progress
        report: dict[str, Any] = {
            "scenario": {
                "seed": self.opts.seed,
                "drift": self.opts.drift,
                "severity": self.opts.severity,
                "stream_frames": len(scenario.stream),
                "drifted_frames": int(scenario.stream.drifted.sum()),
                "budget": self.opts.upload_budget,
            },
            "counts": {
                "captured": p.captured,
                "scored": p.scored,
                "selected": p.selected,
                "uploaded": check["samples"],
                "labelled": p.labelled,
                "captured_bytes_estimate": round(p.captured * check["mean_plaintext_bytes"]),
                "uploaded_bytes": check["ciphertext_bytes"],
            },
            "decrypt": {"checked": check["samples"], "ok": check["ok"], "failures": check["failures"]},
            "models": models,
            "initial_version": initial.version,
            "final_version": final.version,
            "promoted": final.version != initial.version,
            "inference_reports": p.model,
            "rounds": self.rounds,
            "duration_s": round(time.monotonic() - self.started, 1),
        }
        self.display.say(accuracy_table(report))
        return report
