"""The uploader as a process under the dev hub, fed by a feeder module, uploading to Azurite.

    rig = UploaderRig(tmp_path, dev_hub, module_process, azurite)
    rig.start()
    rig.feed(200, interval=0.01)
    rig.kill("uploader"); rig.restart("uploader")
    report = rig.settle(200)        # waits until every fed sample is in storage (or times out)
    assert report.lost == 0

What counts: every sample the feeder handed to the hub must end as exactly one sealed blob in
the container that opens, with the cloud's private key, to the bytes the feeder wrote, and be
announced on ``$upstream`` (at least once: QoS 1 may repeat a notice after a crash).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from edgeloop.devhub.testing import HubProcess, ModuleProcess
from edgeloop.devtools.azurite import Azurite
from edgeloop.envelope import EnvelopeContext, EnvelopeError, PrivateKeyring, PublicKey, open_bytes
from tests.integration.modules.manifests import manifest
from tests.reliability.modules.feeder import sample_bytes, sample_pixels

FEEDER = "tests.reliability.modules.feeder"
CONTAINER = "data"


@dataclass
class Settled:
    fed: list[str]
    blobs: Counter[str]
    opened: set[str]
    announced: Counter[str]
    accepted: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(set(self.fed) - self.opened)

    @property
    def lost_after_acceptance(self) -> int:
        """Samples the uploader had taken into its outbox that never reached storage."""
        return len(self.accepted - self.opened)

    @property
    def lost_in_flight(self) -> int:
        """Samples the hub delivered that the uploader never took in (killed between the SDK's
        acknowledgement and its outbox)."""
        return len(set(self.fed) - self.accepted - self.opened)

    @property
    def duplicated(self) -> int:
        return sum(1 for n in self.blobs.values() if n > 1)

    @property
    def unannounced(self) -> int:
        return len(set(self.fed) - set(self.announced))

    @property
    def repeated_notices(self) -> int:
        return sum(n - 1 for n in self.announced.values() if n > 1)


class CloudSide:
    """What the rigs check against: the uploader's storage and key settings for this Azurite and
    cloud key pair, the container's blobs, and opening them with the cloud's private key."""

    def __init__(self, azurite: Azurite, private_key: rsa.RSAPrivateKey) -> None:
        self.azurite = azurite
        self.keyring = PrivateKeyring()
        self.keyring.add(private_key)
        self.public_pem = PublicKey(private_key.public_key(), "").pem().decode("ascii")

    def uploader_desired(self) -> dict[str, Any]:
        """The uploader's twin sections: this key, this Azurite, quick retries, full durability."""
        return {
            "encryption": {"public_key_pem": self.public_pem},
            "storage": {
                "connection_string": self.azurite.connection_string,
                "container": CONTAINER,
                "timeout_s": 5,
            },
            "retry": {"initial_backoff_s": 0.2, "max_backoff_s": 1.0, "max_attempts": 1000},
            "outbox": {"durability": "full"},
        }

    def container(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.azurite.connection_string)
        return service.get_container_client(CONTAINER)

    def blob_names(self) -> list[str]:
        """Every blob's name; none while the container does not exist yet or Azurite is down."""
        try:
            return [b.name for b in self.container().list_blobs()]
        except Exception:
            return []

    def open(self, name: str, expected: EnvelopeContext) -> bytes:
        """The plaintext of blob ``name``. Raises ``EnvelopeError``."""
        return open_bytes(
            self.container().download_blob(name).readall(), keyring=self.keyring, expected=expected
        )


class UploaderRig:
    def __init__(
        self,
        tmp_path: Path,
        hub_factory: Callable[..., HubProcess],
        module_factory: Callable[..., ModuleProcess],
        azurite: Azurite,
        private_key: rsa.RSAPrivateKey,
        *,
        desired: Mapping[str, Any] | None = None,
        frames_store: str = "jpeg",
    ) -> None:
        self.tmp = tmp_path
        self.frames_store = frames_store
        self.azurite = azurite
        self.module_factory = module_factory
        self.cloud = CloudSide(azurite, private_key)
        uploader_desired = self.cloud.uploader_desired()
        for section, values in (desired or {}).items():
            uploader_desired.setdefault(section, {}).update(values)
        doc = manifest(
            ["feeder", "uploader"],
            {
                "feed": "FROM /messages/modules/feeder/outputs/out "
                'INTO BrokeredEndpoint("/modules/uploader/inputs/selected")',
                "up": "FROM /messages/modules/uploader/outputs/* INTO $upstream",
            },
            desired={"uploader": uploader_desired},
        )
        self.hub = hub_factory(doc)
        self.samples = tmp_path / "samples"
        self.outbox = tmp_path / "outbox"
        self.record = tmp_path / "fed.jsonl"
        self.env = {"EDGELOOP_SAMPLES_DIR": str(self.samples), "EDGELOOP_OUTBOX_DIR": str(self.outbox)}
        self.procs: dict[str, ModuleProcess] = {}
        self.kills = 0
        self.size = 2048

    # -- processes -------------------------------------------------------------------------
    def start_module(self, name: str) -> None:
        if name == "feeder":
            env = {**self.env, "FEEDER_RECORD": str(self.record)}
            self.procs[name] = self.module_factory(self.hub, "feeder", package=FEEDER, env=env)
        else:
            self.procs[name] = self.module_factory(self.hub, name, env=self.env)

    def start(self) -> UploaderRig:
        self.start_module("uploader")
        self.start_module("feeder")
        self.hub.wait_connected("uploader", inputs=True, timeout=60)
        self.hub.wait_connected("feeder", timeout=60)
        return self

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.kills += 1

    def restart(self, name: str) -> None:
        self.start_module(name)
        self.hub.wait_connected(name, inputs=name == "uploader", timeout=60)

    def logs(self) -> str:
        """Everything every module process wrote to stdout and stderr, restarts included."""
        paths = sorted(self.tmp.glob("logs/*.log"))
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)

    # -- traffic ---------------------------------------------------------------------------
    def feed(self, count: int, *, start: int = 0, interval: float = 0.0, size: int = 2048) -> None:
        self.size = size
        raw = self.frames_store == "raw"
        body = {"count": count, "start": start, "interval": interval, "size": size, "raw": raw}
        response = self.hub.invoke("feeder", "feed", body, timeout=30)
        assert response["status"] == 200, response

    def fed(self) -> list[str]:
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["sample_id"] for line in lines if line.strip()]

    def blob_names(self) -> list[str]:
        return self.cloud.blob_names()

    def announced(self) -> Counter[str]:
        seen: Counter[str] = Counter()
        after = 0
        while True:
            batch = self.hub.upstream(after)
            if not batch:
                return seen
            for message in batch:
                after = max(after, int(message["id"]))
                body = message.get("body")
                items = body.get("items", [body]) if isinstance(body, dict) else []
                for item in items:
                    if isinstance(item, dict) and item.get("schema") == "edgeloop.uploaded/1":
                        seen[item["sample_id"]] += 1
            if len(batch) < 1000:
                return seen

    def settle(self, expected: int, timeout: float = 120.0, stall_s: float = 25.0) -> Settled:
        """Wait until ``expected`` samples were fed and each has its blob and notice; then check."""
        deadline = time.monotonic() + timeout
        progress, last_change = (-1, -1), time.monotonic()
        while time.monotonic() < deadline:
            fed = self.fed()
            sealed = {_sample_of(n) for n in self.blob_names() if n.endswith(".elenv")}
            announced = set(self.announced())
            if len(fed) >= expected and set(fed) <= sealed and set(fed) <= announced:
                break
            now = (len(sealed), len(announced))
            if now != progress:
                progress, last_change = now, time.monotonic()
            elif len(fed) >= expected and time.monotonic() - last_change > stall_s:
                break  # everything fed, nothing moving: what is missing will not come
            time.sleep(0.5)
        return self.check()

    def accepted(self) -> set[str]:
        """Sample ids in the uploader's outbox (what it took in, whatever their state)."""
        import sqlite3

        path = self.outbox / "outbox.db"
        if not path.exists():
            return set()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return {row[0] for row in conn.execute("SELECT id FROM entries")}
        finally:
            conn.close()

    def check(self) -> Settled:
        fed = self.fed()
        names = [n for n in self.blob_names() if n.endswith(".elenv")]
        blobs = Counter(_sample_of(n) for n in names)
        opened: set[str] = set()
        problems: list[str] = []
        for name in names:
            sample_id = _sample_of(name)
            raw = self.frames_store == "raw"
            expected = EnvelopeContext(
                sample_id=sample_id,
                device_id=_device_of(name),
                content_type="image/png" if raw else "image/jpeg",
            )
            try:
                plain = self.cloud.open(name, expected)
            except EnvelopeError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if raw:
                if not _decodes_to(plain, sample_pixels(sample_id)):
                    problems.append(f"{name}: does not decode to the raw frame the feeder wrote")
                    continue
            elif plain != sample_bytes(sample_id, self.size):
                problems.append(f"{name}: opened to other bytes than the feeder wrote")
                continue
            opened.add(sample_id)
        return Settled(
            fed=fed,
            blobs=blobs,
            opened=opened,
            announced=self.announced(),
            accepted=self.accepted(),
            problems=problems,
        )


def _decodes_to(data: bytes, pixels: Any) -> bool:
    """A raw frame encoded on claim (PNG, lossless) decodes to exactly its pixels."""
    import cv2
    import numpy as np

    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return decoded is not None and bool(np.array_equal(decoded, pixels))


def _sample_of(blob_name: str) -> str:
    return blob_name.rsplit("/", 1)[-1].split(".", 1)[0]


def _device_of(blob_name: str) -> str:
    from edgeloop.blobstore import parse_sample_blob_name

    return parse_sample_blob_name(blob_name).device_id
