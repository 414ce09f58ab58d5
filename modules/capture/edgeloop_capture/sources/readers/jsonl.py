"""JSON Lines sensor logs: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from edgeloop_capture.sources.base import SourceError
from edgeloop_capture.sources.readers.base import ReaderSettings, Reading, Skipped, to_reading


class JsonlReader:
    def read(self, path: Path, settings: ReaderSettings) -> Iterator[Reading | Skipped]:
        try:
            fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise SourceError(f"cannot open sensor log {str(path)!r}: {exc.strerror}") from exc
        try:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Skipped(number, f"line {number}: not JSON ({exc.msg})")
                    continue
                if not isinstance(row, dict):
                    yield Skipped(number, f"line {number}: not a JSON object")
                    continue
                yield to_reading(number, row, settings)
        except UnicodeDecodeError as exc:
            raise SourceError(f"sensor log {path.name} is not UTF-8: {exc}") from exc
        finally:
            fh.close()
