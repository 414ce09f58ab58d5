"""CSV sensor logs with a header row."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from edgeloop_capture.sources.base import SourceError
from edgeloop_capture.sources.readers.base import ReaderSettings, Reading, Skipped, to_reading


class CsvReader:
    def read(self, path: Path, settings: ReaderSettings) -> Iterator[Reading | Skipped]:
        try:
            fh = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise SourceError(f"cannot open sensor log {str(path)!r}: {exc.strerror}") from exc
        try:
            rows = csv.DictReader(fh)
            try:
                for row in rows:
                    yield to_reading(rows.line_num, row, settings)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SourceError(f"sensor log {path.name} line {rows.line_num}: {exc}") from exc
        finally:
            fh.close()
