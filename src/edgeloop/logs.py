"""Structured logging: one JSON object a line on stdout, as Docker and the IoT Edge runtime collect it."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra={...}`` fields become top-level keys."""

    def __init__(self, module: str | None = None) -> None:
        super().__init__()
        self._module = module

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._module:
            entry["module"] = self._module
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str)


def configure_logging(module: str | None = None, level: str | None = None) -> None:
    """Send every log record to stdout as JSON lines.

    The level comes from ``level``, else ``EDGELOOP_LOG_LEVEL``, else INFO. The Azure SDK's
    chatty loggers are held at WARNING.
    """
    chosen = (level or os.environ.get("EDGELOOP_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(module))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    for noisy in ("azure", "paho", "urllib3", "opentelemetry"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
