"""The hub's input queues as an append-only file: a routed message costs one ``write``.

Each record is framed ``<length u32><crc32 u32><kind u8><payload>``: kind 1 adds a message
(id, expiry, module, input, property segment, body), kind 2 removes messages by id. Records
are buffered and written together by ``flush`` (one system call for everything a loop pass
routed or delivered); what ``flush`` returned from is in the operating system's hands, so it
survives the hub's crash as a committed SQLite transaction in WAL mode with
``synchronous=NORMAL`` does (neither waits for the disk).

On open the file is read back: a record cut short or not matching its checksum (a write torn
by a power loss) ends the log there and is cut off, so later records follow good ones. The
file is rewritten with only the messages still queued once removed ones make up most of it.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

_FRAME = struct.Struct("<IIB")  # payload length, crc32 of kind + payload, kind
_MESSAGE = struct.Struct("<qdHHI")  # id, expires, len(module), len(input), len(props)
_ID = struct.Struct("<q")
_ADD = 1
_REMOVE = 2
#: Rewrite the file when it is over this size and four times what is still queued.
_COMPACT_BYTES = 4 * 1024 * 1024


@dataclass
class QueuedMessage:
    id: int
    module: str
    input: str
    props: str  # the property segment of the input topic, already encoded
    body: bytes
    expires: float
    sent: bool = False  # delivered at least once (a redelivery carries the DUP flag)


def _frame(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes((kind,))))
    return _FRAME.pack(len(payload), crc, kind) + payload


def _encode(message: QueuedMessage) -> bytes:
    module, input_name = message.module.encode(), message.input.encode()
    props = message.props.encode()
    head = _MESSAGE.pack(message.id, message.expires, len(module), len(input_name), len(props))
    return _frame(_ADD, b"".join((head, module, input_name, props, message.body)))


def _decode(payload: bytes) -> QueuedMessage:
    message_id, expires, n_module, n_input, n_props = _MESSAGE.unpack_from(payload)
    pos = _MESSAGE.size
    module = payload[pos : pos + n_module].decode()
    pos += n_module
    input_name = payload[pos : pos + n_input].decode()
    pos += n_input
    props = payload[pos : pos + n_props].decode()
    pos += n_props
    return QueuedMessage(message_id, module, input_name, props, payload[pos:], expires)


def read(path: Path) -> tuple[dict[int, tuple[QueuedMessage, int]], int]:
    """What the file at ``path`` holds queued (id -> (message, size of its record)), and the
    length of its good part: reading stops at a record cut short or not matching its checksum."""
    live: dict[int, tuple[QueuedMessage, int]] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return live, 0
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc, kind = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(bytes((kind,)))) != crc:
            break
        if kind == _ADD:
            message = _decode(payload)
            live[message.id] = (message, _FRAME.size + length)
        elif kind == _REMOVE:
            for (message_id,) in _ID.iter_unpack(payload):
                live.pop(message_id, None)
        else:
            break
        pos = start + length
    return live, pos


class QueueLog:
    """Queued input messages, kept in ``path``; ``messages`` holds what is still queued."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[bytes] = []
        self._removed: list[int] = []
        #: Still queued: id -> (message, the size of its record).
        self._live, size = read(path)
        self._live_bytes = sum(n for _, n in self._live.values())
        if path.exists() and path.stat().st_size > size:  # a torn tail: later records follow good ones
            with open(path, "r+b") as handle:
                handle.truncate(size)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._size = size
        if size > 2 * self._live_bytes and size > 0:
            self._compact()

    @property
    def messages(self) -> list[QueuedMessage]:
        """What is queued (buffered changes included), in id order."""
        return [message for message, _ in sorted(self._live.values(), key=lambda item: item[0].id)]

    @property
    def pending(self) -> bool:
        """Changes wait for ``flush``."""
        return bool(self._pending or self._removed)

    def add(self, message: QueuedMessage) -> None:
        """Queue ``message`` (its id above every id before it); written by the next ``flush``."""
        record = _encode(message)
        self._live[message.id] = (message, len(record))
        self._live_bytes += len(record)
        self._pending.append(record)

    def remove(self, message_id: int) -> None:
        """Take a message off its queue; written by the next ``flush``, after its addition."""
        gone = self._live.pop(message_id, None)
        if gone is not None:
            self._live_bytes -= gone[1]
            self._removed.append(message_id)

    def flush(self) -> None:
        """Write every buffered change with one ``write``; returns once the OS has it."""
        if self._removed:
            self._pending.append(_frame(_REMOVE, b"".join(_ID.pack(i) for i in self._removed)))
            self._removed.clear()
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)
        if self._size > _COMPACT_BYTES and self._size > 4 * self._live_bytes:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with only what is queued (synced before it replaces the old one);
        with nothing queued, cut it to nothing."""
        if not self._live:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        records = [_encode(message) for message in self.messages]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            data = memoryview(b"".join(records))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = self._live_bytes

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
