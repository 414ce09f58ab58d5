"""The raw frame ring under pressure: frames evicted before anyone claimed them are counted and
named by capture, and refused as ``evicted`` by the uploader; never silently missing.

Capture takes a folder of frames on the raw path with a ring that holds only a few of them;
nobody claims anything while they flow (an uploader behind, or the filter slow). Then every
frame is selected. Each one is either uploaded (and decodes to the pixels capture read) or
refused by the uploader as evicted, and the refused ones are exactly the ones capture reports
as ``evictedUnclaimed``, by id and by count.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from edgeloop_capture.testing import write_images

from edgeloop import rawframe
from edgeloop.contracts import FrameRef
from tests.reliability.conftest import AreaLedger
from tests.support import wait_for
from tests.unit.capture_support import Capture
from tests.unit.uploader_support import Harness, prediction, selected

FRAMES = 24
HELD = 5
FRAME_BYTES = rawframe.HEADER_SIZE + 64 * 48 * 3  # testing.pattern frames


def as_selected(h: Harness, frame: FrameRef):  # type: ignore[no-untyped-def]
    base = prediction(frame.sample_id, file_ref=frame.file_ref)
    item = selected(h.samples, frame.sample_id, write=False)
    return item.model_copy(update={"prediction": base.model_copy(update={"frame": frame})})


def test_frames_evicted_before_their_claim_are_counted_named_and_refused_as_evicted(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: capture on the raw path with a ring that holds HELD frames, nobody claiming
    h = Harness(tmp_path)
    write_images(h.samples / "in", FRAMES)
    desired = {
        "sources": [
            {"id": "dir", "kind": "folder", "path": "in", "poll_s": 0.05, "settle_s": 0, "format": "png"}
        ],
        "frames": {"store": "raw", "max_bytes": HELD * FRAME_BYTES},
    }
    with Capture(h.samples, desired) as capture:
        wait_for(lambda: len(capture.frames()) == FRAMES, timeout=30)
        frames = capture.frames()
        ring = capture.module.stats()["frames"]["ring"]
    # when: every frame is selected and offered to the uploader
    taken = {f.sample_id for f in frames if h.uploader.accept_selected(as_selected(h, f))}
    h.pump()
    # then: capture evicted all but the last HELD, and named each
    evicted = set(ring["evictedUnclaimedRecent"])
    assert ring["evictedUnclaimed"] == FRAMES - HELD == len(evicted)
    assert evicted == {f.sample_id for f in frames[: FRAMES - HELD]}
    # and the uploader refused exactly those, as evicted, with the reason
    counters = h.uploader.counters
    refused = {r["sample_id"] for r in h.uploader.core.recent_rejections}
    assert counters["rejected_evicted"] == len(evicted)
    assert counters["rejected"] == len(evicted)
    assert refused == evicted
    # and the others were uploaded, decoding (PNG, lossless) to the pixels capture read
    assert taken == {f.sample_id for f in frames} - evicted
    for frame in frames:
        if frame.sample_id not in taken:
            continue
        plain = h.open_sample(frame.sample_id)
        uploaded = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
        original = cv2.imread(str(h.samples / "in" / frame.attributes["file_name"]))
        assert np.array_equal(uploaded, original)
    # nothing silently missing: every frame is uploaded or refused by name
    lost = len({f.sample_id for f in frames} - taken - refused)
    ledger.record(faults=len(evicted), inputs=len(frames), lost=lost, note="raw ring evictions")
    assert lost == 0
