"""Where the filter keeps budgets and dedup memory across restarts: an atomic JSON file in
``EDGELOOP_STATE_DIR`` (written to a temporary file, fsynced, renamed), or memory in tests."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from edgeloop.statefile import write_json_atomically

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
        write_json_atomically(self.path, doc)
