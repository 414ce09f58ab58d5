"""Sensor readers: each turns one kind of input into ``Reading`` items.

A reader is one file here with a class that has ``read(path, settings)``; register it in
``READERS`` under the name users give as ``format``. A serial or Modbus reader would take its
port from ``path`` the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from edgeloop_capture.sources.readers.base import ReaderSettings, Reading, Skipped
from edgeloop_capture.sources.readers.csvfile import CsvReader
from edgeloop_capture.sources.readers.jsonl import JsonlReader


class SensorReader(Protocol):
    def read(self, path: Path, settings: ReaderSettings) -> Iterator[Reading | Skipped]:
        """Yield readings in order (and ``Skipped`` for bad rows).

        Raises:
            SourceError: the input cannot be opened.
        """
        ...


READERS: dict[str, SensorReader] = {"csv": CsvReader(), "jsonl": JsonlReader()}
#: File suffixes that pick a reader when ``format`` is ``auto``.
SUFFIXES: dict[str, str] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


__all__ = ["READERS", "SUFFIXES", "ReaderSettings", "Reading", "SensorReader", "Skipped"]
