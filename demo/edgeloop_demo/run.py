"""``edgeloop demo``: the whole loop on one machine.

Sets up what is missing (keys, the scenario's frames, its base data folder, Azurite, an initial
model trained on the clean base data and registered as champion), runs the dev hub with the
repository's manifest and the four modules as processes, and plays the cloud: it labels
uploaded samples from the scenario's ground truth, runs the retrain trigger, training and gate,
and rolls promoted models out to the inference module through its twin. At the end it scores
the initial and final models on the drifted stream and writes a JSON report and a PNG plot.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from edgeloop.errors import EdgeLoopError
from edgeloop_demo.basedata import BASE_FOLDER, base_data_setting, write_base_folder
from edgeloop_demo.display import Display, Progress
from edgeloop_demo.labeller import Labeller
from edgeloop_demo.rounds import AUDIT_SHARE, MODEL_NAME, CloudRounds, cloud_config
from edgeloop_demo.scenario import Scenario, ScenarioConfig, build, write_stream_folder

log = logging.getLogger(__name__)

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
    severity: str = "severe"
    budget: int | None = None
    fps: float | None = None
    bind: str = "127.0.0.1"
    report: Path | None = None
    plot: Path | None = None
    timeout_s: float | None = None

    @property
    def stream_size(self) -> int:
        return 800

    @property
    def frames_per_second(self) -> float:
        return self.fps or (20.0 if self.quick else 8.0)

    @property
    def upload_budget(self) -> int:
        """Samples the filter may select over the whole stream (15% by default)."""
        return self.budget if self.budget is not None else int(self.stream_size * 0.15)

    @property
    def deadline_s(self) -> float:
        return self.timeout_s or (200.0 if self.quick else 600.0)


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
    content["inference"]["properties.desired"]["public_key"] = signing_public
    uploader = content["uploader"]["properties.desired"]
    uploader.setdefault("encryption", {})["public_key_pem"] = envelope_public
    uploader.setdefault("retry", {})["initial_backoff_s"] = 0.5
    modules["uploader"].setdefault("env", {})["EDGELOOP_STORAGE_CONNECTION_STRING"] = {"value": storage}
    policy = content["filter"]["properties.desired"].setdefault("policy", {})
    budget = opts.upload_budget
    policy["version"] = f"demo-budget-{budget}"
    policy["limits"] = {"per_hour": budget, "per_day": budget}
    policy["audit"] = {"share": AUDIT_SHARE}
    # The scenario never repeats a frame, and on blurred 64x64 digits the dHash cannot tell
    # different digits apart (seed 7, severe blur: 581 of 800 frames within 4 bits of one of the
    # 200 before), so near-duplicate suppression would drop most of the uncertain picks.
    policy["dedup"] = {"enabled": False}
    for strategy in policy.get("strategies", []):
        strategy["limits"] = {"per_hour": budget, "per_day": budget}
        for rule in strategy.get("rules", []):
            if rule.get("type") == "top_share":  # spend the budget through the whole stream
                rule["share"] = round(budget / opts.stream_size, 4)
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
        self.display = Display(out or sys.stdout)
        self.progress = Progress()
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

        from edgeloop import signing
        from edgeloop.blobstore import AzureContainer

        base = write_base_folder(self.opts.state_dir / BASE_FOLDER, seed=self.opts.seed)
        settings = cloud_config(budget=self.opts.upload_budget, base_data=base_data_setting(base))
        config = CloudConfig.model_validate(settings)
        return CloudServices(
            data=AzureContainer.from_connection_string(connection_string, config.data_container),
            models=AzureContainer.from_connection_string(connection_string, config.models_container),
            runs=AzureContainer.from_connection_string(connection_string, config.runs_container),
            opener=EnvelopeOpener.from_files([keys.envelope_private]),
            signing_key=signing.read_key_file(keys.signing_private),
            config=config,
        )

    def _bootstrap_model(self, cloud: CloudRounds, models_dir: Path) -> Any:
        """Train the initial model on clean base data, register it as champion, and put it on
        the models volume as the inference module's initial model."""
        champion = cloud.bootstrap()
        if champion is None:
            raise DemoError("the initial model was not promoted; see the run record in the runs container")
        initial = models_dir / "initial" / "model.onnx"
        initial.parent.mkdir(parents=True, exist_ok=True)
        initial.write_bytes(cloud.svc.registry.read_model(MODEL_NAME, champion.version))
        initial.with_name("model.onnx.sig").write_text(champion.signature, encoding="utf-8")
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
            cloud = CloudRounds(svc, Labeller(truth), self.display.say)
            initial = self._bootstrap_model(cloud, paths.volumes / "models")
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
                final = self._drive(cloud, paths, initial)
            finally:
                self.display.say("stopping the modules and the hub ...")
                hub.stop()
            if hub.error is not None:
                raise DemoError(f"the dev hub failed: {hub.error}")
            report = self._report(cloud, scenario, initial, final)
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

    def _cloud_pass(self, cloud: CloudRounds, client: Any, champion: Any, *, force: bool = False) -> Any:
        """One round of the cloud; a promoted model goes to the inference module's twin."""
        from edgeloop_cloud.rollout import desired_model

        latest, promoted = cloud.finish() if force else cloud.step()
        self.progress.labelled = cloud.labelled
        last = cloud.rounds[-1] if cloud.rounds else None
        if last is not None:
            self.progress.decisions = [f"round {last['round']}: {last['version'] or '-'} {last['status']}"]
        if promoted and latest is not None:
            client.patch_desired(
                "inference", {"model": desired_model(cloud.svc.registry, latest, sas_hours=2)}
            )
            self.display.say(f"rollout: {latest.version} sent to the inference module's twin")
        return latest or champion

    def _drive(self, cloud: CloudRounds, paths: Any, initial: Any) -> Any:
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
                champion = self._cloud_pass(cloud, client, champion)
                next_cloud = time.monotonic() + 4
            if self._drained():
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 3:
                    break
            else:
                settled_since = None
            time.sleep(1.0)
        champion = self._cloud_pass(cloud, client, champion, force=True)
        self._wait_model(client, champion.version)
        self.display.show(self.progress.line(time.monotonic() - self.started), force=True)
        if self.display.tty:
            self.display.say("")
        return champion

    def _drained(self) -> bool:
        p = self.progress
        return p.captured >= self.opts.stream_size and p.scored >= p.captured and p.outbox == 0

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
    def _report(self, cloud: CloudRounds, scenario: Scenario, initial: Any, final: Any) -> dict[str, Any]:
        from edgeloop_demo.report import accuracy_table, decrypt_check, evaluate_models

        svc = cloud.svc
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
            "rounds": cloud.rounds,
            "duration_s": round(time.monotonic() - self.started, 1),
        }
        self.display.say(accuracy_table(report))
        return report
