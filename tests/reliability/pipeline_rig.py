"""The four modules of the pipeline as processes under one dev hub, uploading to Azurite.

    rig = PipelineRig(tmp_path, dev_hub, module_process, azurite, private_key, frames=240).start()
    rig.stream()                    # capture takes the folder of digit images at ``fps``
    rig.kill("filter"); rig.restart("filter")
    result = rig.settle()           # waits until everything announced is scored, decided, stored
    assert result.lost == 0

The hub's routes are the ones of ``deployment.template.json`` plus observation routes that copy
``frames``, ``predictions`` and ``selected`` to ``$upstream`` (``uploaded`` and ``summaries`` go
there already), so the test sees, by sample id, what each module handed on. The policy decides by
predicted class only (no random rule, no duplicate suppression), so a prediction decided again
after a kill is decided the same way and the test can tell what each sample was owed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from edgeloop.blobstore import parse_sample_blob_name
from edgeloop.devhub.control import ControlError
from edgeloop.devhub.testing import HubProcess, ModuleProcess
from edgeloop.devtools.azurite import Azurite
from edgeloop.envelope import EnvelopeContext, EnvelopeError
from tests import model_factory as mf
from tests.conftest import REPO_ROOT
from tests.integration.modules.manifests import manifest
from tests.reliability.rig import CloudSide
from tests.support import body_items

MODULES = ("capture", "inference", "filter", "uploader")
SOURCE = "stream"
#: Selected: predicted 0, 1 or 2 (about 30 %). Predicted 3: its strategy's budget is spent
#: (over_budget). Anything else: no_strategy_matched.
SELECTED_LABELS = frozenset({"0", "1", "2"})
SPENT_LABELS = frozenset({"3"})
POLICY = {
    "version": "pipeline-faults-1",
    "strategies": [
        {"name": "rare", "rules": [{"type": "classes", "labels": sorted(SELECTED_LABELS)}], "priority": 5},
        {"name": "spent", "rules": [{"type": "classes", "labels": sorted(SPENT_LABELS)}],
         "limits": {"per_day": 0}},
    ],
    "dedup": {"enabled": False},
    "audit": {"share": 0},  # a random draw would make what the policy owes a sample unpredictable
}  # fmt: skip
OBSERVED = {
    "framesObserved": "FROM /messages/modules/capture/outputs/frames INTO $upstream",
    "predictionsObserved": "FROM /messages/modules/inference/outputs/predictions INTO $upstream",
    "selectedObserved": "FROM /messages/modules/filter/outputs/selected INTO $upstream",
}


def owed(prediction: dict[str, Any]) -> str:
    """What the policy owes a prediction: ``selected:<strategy>`` or ``dropped:<reason>``."""
    if prediction.get("status") != "ok":
        return "dropped:error_status"
    label = prediction.get("label")
    if label in SELECTED_LABELS:
        return "selected:rare"
    if label in SPENT_LABELS:
        return "dropped:over_budget"
    return "dropped:no_strategy_matched"


def template_routes() -> dict[str, Any]:
    doc = json.loads((REPO_ROOT / "deployment.template.json").read_text(encoding="utf-8"))
    routes: dict[str, Any] = doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    return dict(routes)


@dataclass
class Observed:
    """What reached ``$upstream``, by sample id."""

    frames: dict[str, dict[str, Any]] = field(default_factory=dict)
    frame_copies: Counter[str] = field(default_factory=Counter)
    frame_message: dict[str, int] = field(default_factory=dict)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction_copies: Counter[str] = field(default_factory=Counter)
    label_conflicts: set[str] = field(default_factory=set)
    selected: Counter[str] = field(default_factory=Counter)
    uploaded: Counter[str] = field(default_factory=Counter)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    after: int = 0

    def add(self, message: dict[str, Any]) -> None:
        self.after = max(self.after, int(message["id"]))
        for item in body_items(message.get("body")):
            if not isinstance(item, dict) or not isinstance(item.get("sample_id"), str):
                continue
            schema, sample_id = item.get("schema"), str(item["sample_id"])
            if schema == "edgeloop.frame/1":
                self.frames.setdefault(sample_id, item)
                self.frame_copies[sample_id] += 1
                self.frame_message.setdefault(sample_id, int(message["id"]))
            elif schema in ("edgeloop.prediction/1", "edgeloop.prediction/2"):
                first = self.predictions.setdefault(sample_id, item)
                if (first.get("status"), first.get("label")) != (item.get("status"), item.get("label")):
                    self.label_conflicts.add(sample_id)
                self.prediction_copies[sample_id] += 1
            elif schema == "edgeloop.selected/1":
                self.selected[sample_id] += 1
            elif schema == "edgeloop.uploaded/1" and item.get("strategy") != "prediction-log":
                self.uploaded[sample_id] += 1
            elif schema == "edgeloop.summary/1":
                self.summaries.append(item)

    def files(self) -> Counter[str]:
        """Announcements per input file, under any sample id."""
        return Counter(_file_name(f) for f in self.frames.values())

    def repeated_batches(self) -> list[list[str]]:
        """The files announced more than once, grouped by the message of their first
        announcement: each group is a batch announced again after a capture restart."""
        counts = self.files()
        groups: dict[int, list[str]] = {}
        for sample_id, frame in sorted(self.frames.items(), key=lambda kv: self.frame_message[kv[0]]):
            name = _file_name(frame)
            if counts[name] > 1 and not any(name in g for g in groups.values()):
                groups.setdefault(self.frame_message[sample_id], []).append(name)
        return list(groups.values())

    def owed(self) -> dict[str, str]:
        return {sample_id: owed(p) for sample_id, p in self.predictions.items()}


@dataclass
class Settled:
    files: list[str]
    observed: Observed
    blobs: Counter[str]
    opened: set[str]
    totals: dict[str, Any]
    predlog: Counter[str]
    problems: list[str] = field(default_factory=list)

    @property
    def announced(self) -> set[str]:
        return set(self.observed.frames)

    @property
    def scored(self) -> set[str]:
        return set(self.observed.predictions)

    @property
    def expected_selected(self) -> set[str]:
        return {s for s, decision in self.observed.owed().items() if decision.startswith("selected:")}

    @property
    def expected_dropped(self) -> Counter[str]:
        return Counter(
            d.removeprefix("dropped:") for d in self.observed.owed().values() if d.startswith("dropped:")
        )

    @property
    def unscored(self) -> set[str]:
        return self.announced - self.scored

    @property
    def unstored(self) -> set[str]:
        return self.expected_selected - self.opened

    @property
    def undecided(self) -> int:
        """Scored samples the filter's totals do not account for."""
        return max(0, len(self.scored) - int(self.totals.get("seen", 0)))

    @property
    def lost(self) -> int:
        missing_files = {f for f in self.files if f not in self.observed.files()}
        unselected = self.expected_selected - set(self.observed.selected)
        return len(missing_files) + len(self.unscored) + self.undecided + len(unselected | self.unstored)


class PipelineRig:
    def __init__(
        self,
        tmp_path: Path,
        hub_factory: Callable[..., HubProcess],
        module_factory: Callable[..., ModuleProcess],
        azurite: Azurite,
        private_key: rsa.RSAPrivateKey,
        *,
        frames: int = 240,
        fps: float = 20.0,
        frames_store: str = "jpeg",
    ) -> None:
        self.tmp = tmp_path
        self.azurite = azurite
        self.module_factory = module_factory
        self.count = frames
        self.fps = fps
        self.frames_store = frames_store
        self.cloud = CloudSide(azurite, private_key)
        self.samples = tmp_path / "samples"
        self.outbox = tmp_path / "outbox"
        models = tmp_path / "models"
        mf.write_signed_initial(models, mf.digits_model())
        self.files = [f"digit_{i:04d}.png" for i in range(frames)]
        for i, name in enumerate(self.files):
            mf.write_digit_image(self.samples / "input" / SOURCE / name, 1000 + i % 797, size=32)
        desired: dict[str, dict[str, Any]] = {
            "capture": {
                "sources": [
                    {"id": SOURCE, "kind": "folder", "path": f"input/{SOURCE}", "fps": fps,
                     "settle_s": 0, "poll_s": 0.2, "format": "png"}
                ],
                "frames": {"store": frames_store},
            },
            "inference": {
                "providers": ["cpu"],
                "batching": {"max_batch": 8, "max_wait_ms": 10},
                "public_key": mf.signing_public(),
            },
            "filter": {"policy": POLICY},
            "uploader": {**self.cloud.uploader_desired(), "prediction_log": {"enabled": True}},
        }  # fmt: skip
        doc = manifest(list(MODULES), {**template_routes(), **OBSERVED}, desired=desired)
        self.hub = hub_factory(doc)
        self.env = {
            "EDGELOOP_SAMPLES_DIR": str(self.samples),
            "EDGELOOP_MODELS_DIR": str(models),
            "EDGELOOP_STATE_DIR": str(tmp_path / "filter-state"),
            "EDGELOOP_OUTBOX_DIR": str(self.outbox),
        }
        self.state = {"capture": tmp_path / "capture-state", "filter": tmp_path / "filter-state"}
        self.procs: dict[str, ModuleProcess] = {}
        self.kills: Counter[str] = Counter()
        self.observed = Observed()

    # -- processes -------------------------------------------------------------------------
    def start_module(self, name: str) -> None:
        env = dict(self.env)
        if name in self.state:
            env["EDGELOOP_STATE_DIR"] = str(self.state[name])
        self.procs[name] = self.module_factory(self.hub, name, env=env)

    def start(self) -> PipelineRig:
        """Every module but capture, connected and ready for input."""
        for name in MODULES[1:]:
            self.start_module(name)
        for name in MODULES[1:]:
            self.hub.wait_connected(name, inputs=True, timeout=90)
        return self

    def stream(self) -> None:
        """Start capture: it takes the folder's files in name order at ``fps``."""
        self.start_module("capture")
        self.hub.wait_connected("capture", timeout=90)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.kills[name] += 1

    def restart(self, name: str) -> None:
        """Start the module again without waiting for it to connect."""
        self.start_module(name)

    def logs(self, tail: int = 3000) -> str:
        paths = sorted(self.tmp.glob("logs/*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in paths)

    # -- what came out ---------------------------------------------------------------------
    def observe(self) -> Observed:
        while True:
            batch = self.hub.upstream(self.observed.after)
            for message in batch:
                self.observed.add(message)
            if len(batch) < 1000:
                return self.observed

    def stats(self, name: str) -> dict[str, Any] | None:
        """The module's ``getStats`` counters, or None while it is not answering (restarting)."""
        try:
            response = self.hub.invoke(name, "getStats", timeout=5)
        except ControlError:
            return None
        if response.get("status") != 200:
            return None
        module: dict[str, Any] = response["payload"]["module"]
        return module

    def blob_names(self) -> list[str]:
        return [n for n in self.cloud.blob_names() if _is_sample_blob(n)]

    def settle(self, timeout: float = 150.0, stall_s: float = 30.0) -> Settled:
        """Wait until capture has announced every file, every frame announced is scored, every
        sample owed a selection is stored and announced, and the filter's totals account for
        every scored sample; then check."""
        deadline = time.monotonic() + timeout
        progress: tuple[int, ...] = ()
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            seen = self.observe()
            filtered = self.stats("filter") or {}
            decided = int(filtered.get("totals", {}).get("seen", -1))
            selected = {s for s, d in seen.owed().items() if d.startswith("selected:")}
            stored = {parse_sample_blob_name(n).sample_id for n in self.blob_names()}
            if (
                set(self.files) <= set(seen.files())
                and set(seen.frames) <= set(seen.predictions)
                and decided == len(seen.predictions)
                and selected <= stored
                and selected <= set(seen.uploaded)
            ):
                break
            now = (len(seen.frames), len(seen.predictions), decided, len(stored), len(seen.uploaded))
            if now != progress:
                progress, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                break  # nothing moving: what is missing will not come
            time.sleep(0.5)
        return self.check()

    def check(self) -> Settled:
        seen = self.observe()
        names = self.blob_names()
        opened: set[str] = set()
        problems: list[str] = []
        for name in names:
            parts = parse_sample_blob_name(name)
            frame = seen.frames.get(parts.sample_id)
            if frame is None:
                problems.append(f"{name}: no frame with this sample id was announced")
                continue
            expected = EnvelopeContext(parts.sample_id, parts.device_id, frame.get("content_type") or "")
            try:
                plain = self.cloud.open(name, expected)
            except EnvelopeError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if frame.get("raw") is not None:
                problem = self._raw_problem(name, frame, plain)
                if problem is not None:
                    problems.append(problem)
                    continue
            elif hashlib.sha256(plain).hexdigest() != frame.get("sha256"):
                problems.append(f"{name}: opened to other bytes than capture wrote")
                continue
            opened.add(parts.sample_id)
        filtered = self.stats("filter") or {}
        return Settled(
            files=list(self.files),
            observed=seen,
            blobs=Counter(parse_sample_blob_name(n).sample_id for n in names),
            opened=opened,
            totals=dict(filtered.get("totals", {})),
            predlog=self.prediction_log_lines(),
            problems=problems,
        )

    def _raw_problem(self, name: str, frame: dict[str, Any], plain: bytes) -> str | None:
        """A raw frame is uploaded encoded on claim (PNG here, lossless): it must decode to the
        pixels capture read from its input file."""
        import cv2
        import numpy as np

        if frame.get("content_type") != "image/png":
            return f"{name}: a raw frame uploaded as {frame.get('content_type')!r}, not image/png"
        uploaded = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
        source = self.samples / "input" / SOURCE / _file_name(frame)
        original = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if uploaded is None or original is None or not np.array_equal(uploaded, original):
            return f"{name}: does not decode to the pixels capture read from {source.name}"
        return None

    def prediction_log_lines(self) -> Counter[str]:
        """Prediction-log lines waiting in the uploader's outbox, by sample id."""
        path = self.outbox / "outbox.db"
        if not path.exists():
            return Counter()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return Counter(str(row[0]) for row in conn.execute("SELECT sample_id FROM predlog_pending"))
        except sqlite3.Error:
            return Counter()
        finally:
            conn.close()


def _file_name(frame: dict[str, Any]) -> str:
    return str(frame.get("attributes", {}).get("file_name", "?"))


def _is_sample_blob(name: str) -> bool:
    try:
        parse_sample_blob_name(name)
    except ValueError:
        return False
    return True
