"""``uploaded`` notices: one per uploaded entry, sent once it is recorded done; the ones the hub
did not take are sent again later (the outbox remembers which were sent)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from edgeloop.contracts import UploadedNotice
from edgeloop_uploader.core import Core
from edgeloop_uploader.outbox import DoneRecord

log = logging.getLogger(__name__)

Notify = Callable[[list[UploadedNotice]], None]


class Notices:
    """Sends the notices not sent yet; thread-safe, one sender at a time."""

    def __init__(self, core: Core, notify: Notify | None) -> None:
        self.core = core
        self.notify = notify
        self._lock = threading.Lock()
        self._due = threading.Event()

    def send(self) -> int:
        """Send ``uploaded`` notices not yet sent (the hub may have been away); returns how many
        this call sent. One sender at a time, so no notice goes twice; a caller that finds
        another one sending leaves its notices to it (the sender looks again before it stops)."""
        if self.notify is None:
            return 0
        self._due.set()
        sent = 0
        while self._due.is_set() and self._lock.acquire(blocking=False):
            try:
                while self._due.is_set():
                    self._due.clear()
                    sent += self._send_unnotified(self.notify)
            finally:
                self._lock.release()
        return sent

    def _send_unnotified(self, notify: Notify) -> int:
        core = self.core
        pending = core.db.unnotified_records()
        if not pending:
            return 0
        notices = [notice(entry) for entry in pending]
        try:
            notify(notices)
        except Exception as exc:
            core.count("notice_errors")
            log.warning("uploaded notices not sent yet (%s); will retry", exc)
            return 0
        core.db.mark_notified([entry.id for entry in pending])
        core.count("notices_sent", len(notices))
        return len(notices)


def notice(record: DoneRecord) -> UploadedNotice:
    return UploadedNotice(
        sample_id=record.id,
        blob_name=record.blob_name,
        bytes=record.size,
        plaintext_sha256=record.plaintext_sha256,
        key_id=record.key_id,
        strategy=record.strategy,
        uploaded_at=datetime.fromtimestamp(record.updated_at, UTC),
        traceparent=record.traceparent,
    )
