"""Where the filter keeps budgets and dedup memory across restarts: an atomic JSON file in
``EDGELOOP_STATE_DIR`` (written to a temporary file, fsynced, renamed), or memory in tests."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class StateStore(Protocol):
    def load(self) -> dict[str, Any]: ...

    def save(self, doc: dict[str, Any]) -> None: ...


class MemoryStateStore:
    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self.doc: dict[str, Any] = json.loads(json.dumps(doc or {}))
        self.saves = 0

    def load(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.doc))

    def save(self, doc: dict[str, Any]) -> None:
        self.doc = json.loads(json.dumps(doc))
        self.saves += 1


class JsonFileStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("state file %s is unreadable; starting with empty budgets", self.path, exc_info=True)
            return {}
        return doc if isinstance(doc, dict) else {}

    def save(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".filter-state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
