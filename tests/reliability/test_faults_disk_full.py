"""A disk that really fills up: the uploader's outbox on a small tmpfs, so writes fail with
ENOSPC (not a byte budget refusing them first).

The tmpfs is mounted in a private mount namespace (``unshare -Urm``: a user namespace, so no
root is needed where the kernel allows unprivileged user namespaces); the test reads the outbox
through ``/proc/<pid>/root``. With storage down, samples arrive until the disk is full: the
uploader refuses the rest naming the full disk; then another writer takes the volume's last
byte. The uploader keeps running and answering, loses none of what it accepted (all uploaded
once when storage returns), and accepts again once uploads freed space.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub.testing import ModuleProcess
from edgeloop.devtools.azurite import Azurite
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.reliability.conftest import AreaLedger
from tests.reliability.rig import UploaderRig
from tests.support import wait_for

TMPFS_BYTES = 16 << 20  # the outbox's whole disk
SAMPLE_BYTES = 48_000


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as probe:
        command = f'mount -t tmpfs -o size=64k tmpfs "{probe}"'
        done = subprocess.run(["unshare", "-Urm", "sh", "-c", command], capture_output=True, timeout=10)
    return done.returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not _can_mount_tmpfs(), reason="needs `unshare -Urm` (user namespaces) to mount a small tmpfs"
    ),
]


def on_tmpfs(module: str, env: dict[str, str], mount_point: str, size: int, logs: Path) -> ModuleProcess:
    """Start ``edgeloop_<module>`` in its own mount namespace with a ``size``-byte tmpfs on
    ``mount_point`` (a path or a ``$VARIABLE`` of ``env``). The process's pid stays that of the
    module, so ``/proc/<pid>/root`` shows the tmpfs from outside."""
    script = (
        f'mount -t tmpfs -o size={size} tmpfs "{mount_point}" && exec "{sys.executable}" -m edgeloop_{module}'
    )
    proc = ModuleProcess(
        ["unshare", "-Urm", "sh", "-c", script],
        env=subprocess_env(env),
        log_path=logs / f"{module}-tmpfs.log",
        cwd=REPO_ROOT,
    )
    return proc.start()


class FullDiskRig(UploaderRig):
    """The uploader rig with the uploader's outbox on a tmpfs of ``TMPFS_BYTES``."""

    def start_module(self, name: str) -> None:
        if name != "uploader":
            super().start_module(name)
            return
        self.outbox.mkdir(parents=True, exist_ok=True)
        env = {**self.hub.module_env("uploader"), **self.env}
        proc = on_tmpfs("uploader", env, "$EDGELOOP_OUTBOX_DIR", TMPFS_BYTES, self.tmp / "logs")
        self.procs["uploader"] = proc

    def container_exists(self) -> bool:
        return bool(self.cloud.container().exists())

    @property
    def outbox_seen_from_outside(self) -> Path:
        return Path(f"/proc/{self.procs['uploader'].pid}/root") / str(self.outbox).lstrip("/")

    def accepted(self) -> set[str]:
        """Sample ids in the outbox. SQLite resolves ``/proc/<pid>/root`` to this namespace's
        root, so the database and its WAL are read from a copy."""
        import sqlite3

        with tempfile.TemporaryDirectory() as copy:
            for name in ("outbox.db", "outbox.db-wal"):
                source = self.outbox_seen_from_outside / name
                if source.exists():
                    shutil.copyfile(source, Path(copy) / name)
            conn = sqlite3.connect(Path(copy) / "outbox.db", timeout=10)
            try:
                return {row[0] for row in conn.execute("SELECT id FROM entries WHERE kind = 'sample'")}
            finally:
                conn.close()

    def stats(self) -> dict[str, Any]:
        response = self.hub.invoke("uploader", "getStats", timeout=20)
        assert response["status"] == 200, response
        stats: dict[str, Any] = response["payload"]["module"]
        return stats


@pytest.fixture
def rig(
    tmp_path: Path,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    azurite: Azurite,
    cloud_private_key: Any,
) -> Iterator[FullDiskRig]:
    # a budget far above the disk: the disk fills first, as on a volume shared with others
    desired = {"outbox": {"max_bytes": 512 << 20}}
    rig = FullDiskRig(tmp_path, dev_hub, module_process, azurite, cloud_private_key, desired=desired)
    try:
        rig.start()
        yield rig
    finally:
        uploader = rig.procs.get("uploader")
        if uploader is not None:
            uploader.stop()


def fill_up(path: Path) -> int:
    """Write ``path`` until the volume refuses (ENOSPC), as another writer on it would."""
    written = 0
    with open(path, "wb") as out:
        try:
            while True:
                out.write(bytes(64 * 1024))
                out.flush()
                written += 64 * 1024
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return written


def test_a_full_outbox_disk_refuses_new_samples_by_name_drains_and_loses_nothing_accepted(
    rig: FullDiskRig, ledger: AreaLedger
) -> None:
    # given: the uploader has made its container; then storage goes down, so everything
    # accepted stays in the outbox
    wait_for(rig.container_exists, 30, "the uploader to create its container")
    rig.azurite.stop()
    count = 300  # about 14 MB of samples for a 16 MB disk
    # when: the outbox's own samples fill the disk
    rig.feed(count, interval=0.005, size=SAMPLE_BYTES)
    wait_for(lambda: len(rig.fed()) == count, 60, "the feeder to hand over every sample")
    wait_for(
        lambda: len(rig.accepted()) + rig.stats()["counters"].get("rejected", 0) >= count,
        60,
        "every sample accepted or refused",
    )
    stats = rig.stats()
    accepted = rig.accepted()
    # then: the rest were refused naming the full disk
    refused = stats["counters"].get("rejected_disk_full", 0)
    assert refused > 0, f"the disk never filled: {stats['counters']}"
    assert 0 < len(accepted) < count
    assert len(accepted) + refused == count, stats["counters"]
    reasons = [r["reason"] for r in stats["recent_rejections"]]
    assert reasons
    assert all("disk is full" in r for r in reasons), reasons
    # when: another writer takes the last bytes of the volume, and more samples come
    filler = rig.outbox_seen_from_outside / "filler.bin"
    fill_up(filler)
    rig.feed(10, start=count, interval=0.01, size=SAMPLE_BYTES)
    wait_for(
        lambda: rig.stats()["counters"].get("rejected_disk_full", 0) >= refused + 10,
        60,
        "ten more refusals on the completely full disk",
    )
    # then: the module still runs and answers
    assert rig.procs["uploader"].running
    assert rig.hub.invoke("uploader", "getQueue", timeout=20)["status"] == 200
    # when: the other writer's file goes, storage returns: the outbox drains
    filler.unlink()
    rig.azurite.start()
    wait_for(lambda: rig.check().opened >= accepted, 120, "every accepted sample uploaded")
    # and samples are accepted again once there is room
    before = set(rig.fed())
    rig.feed(10, start=count + 10, interval=0.02, size=SAMPLE_BYTES)
    wait_for(lambda: len(rig.fed()) == count + 20, 60, "ten more samples handed over")
    later = set(rig.fed()) - before
    wait_for(lambda: later <= rig.check().opened, 90, "the later samples uploaded")
    result = rig.check()
    # then: accepted = uploaded, each once; the refusals are the only samples not stored
    lost = len((accepted | later) - result.opened)
    ledger.record(faults=2, inputs=count + 20, lost=lost, note=f"{refused + 10} refused: disk full")
    assert lost == 0
    assert result.problems == []
    assert result.duplicated == 0
    assert len(set(result.fed) - result.opened) == refused + 10
    assert rig.procs["uploader"].running


def test_the_probe_mount_really_runs_out_of_space(tmp_path: Path) -> None:
    """The tmpfs the test relies on does refuse writes past its size (ENOSPC)."""
    target = tmp_path / "disk"
    target.mkdir()
    command = (
        f'mount -t tmpfs -o size=64k tmpfs "{target}" && '
        f"\"{sys.executable}\" -c \"open('{target}/f', 'wb').write(bytes(200_000))\""
    )
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", command], capture_output=True, timeout=30)
    assert done.returncode != 0
    assert b"No space left on device" in done.stderr


def upstream_frames(hub: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in hub.upstream():
        body = message["body"]
        items.extend(body["items"] if body.get("schema") == "edgeloop.batch/1" else [body])
    return items


@pytest.mark.parametrize(("store", "folder"), [("jpeg", "capture"), ("raw", "frames")])
def test_capture_on_a_full_volume_skips_frames_naming_it_and_resumes_when_space_returns(
    tmp_path: Path, dev_hub: HubFactory, ledger: AreaLedger, store: str, folder: str
) -> None:
    # given: capture writes its frames to a 4 MB tmpfs (the samples volume's capture/ folder, or
    # frames/ on the raw frame path); images arrive in a folder outside it
    from edgeloop_capture.testing import write_images

    from tests.integration.modules.manifests import manifest

    volume = tmp_path / "samples"
    drop = volume / "input" / "drop"
    drop.mkdir(parents=True)
    (volume / folder).mkdir()
    desired = {
        "sources": [{"id": "drop", "kind": "folder", "path": "input/drop", "poll_s": 0.1, "settle_s": 0}],
        "frames": {"store": store},
    }
    doc = manifest(
        ["capture"],
        {"framesUp": "FROM /messages/modules/capture/outputs/frames INTO $upstream"},
        desired={"capture": desired},
        env={"capture": {"EDGELOOP_SAMPLES_DIR": str(volume)}},
    )
    hub = dev_hub(doc)
    mount = f"$EDGELOOP_SAMPLES_DIR/{folder}"
    proc = on_tmpfs("capture", hub.module_env("capture"), mount, 4 << 20, tmp_path)
    try:
        hub.wait_connected("capture", timeout=60)
        inside = Path(f"/proc/{proc.pid}/root") / str(volume).lstrip("/")
        write_images(drop, 3)
        wait_for(lambda: len(upstream_frames(hub)) == 3, 30, "three frames before the disk fills")
        # when: another writer fills the volume, and five more images arrive
        filler = inside / folder / "filler.bin"
        fill_up(filler)
        write_images(drop, 5, start=3)

        def drop_health() -> dict[str, Any]:
            answer = hub.invoke("capture", "getStats", timeout=20)
            assert answer["status"] == 200, answer
            health: dict[str, Any] = answer["payload"]["module"]["sources"]["drop"]
            return health

        health = wait_for(
            lambda: (h := drop_health())["skipped"].get("write_failed", 0) >= 5 and h,
            30,
            "five frames skipped on the full volume",
        )
        # then: each is counted, the last reason names the full disk, the source keeps running
        assert "No space left on device" in (health["lastSkip"] or ""), health
        assert health["state"] == "running"
        assert len(upstream_frames(hub)) == 3
        # when: the space comes back and more images arrive
        filler.unlink()
        write_images(drop, 4, start=8)
        frames = wait_for(
            lambda: len(upstream_frames(hub)) == 7 and upstream_frames(hub), 30, "four more frames"
        )
        # then: every frame announced has its file, none for the skipped ones
        assert all((inside / f["file_ref"]).is_file() for f in frames)
        assert all(f["file_ref"].startswith(f"{folder}/") for f in frames)
        assert all(("raw" in f) == (store == "raw") for f in frames)
        names = sorted(f["attributes"]["file_name"] for f in frames)
        assert names == [f"img_{i:04d}.png" for i in (0, 1, 2, 8, 9, 10, 11)]
        note = f"5 frames skipped and counted: volume full ({store})"
        ledger.record(faults=1, inputs=12, lost=0, note=note)
        assert proc.running
    finally:
        proc.stop()
