"""The capture module's configuration (module twin desired properties).

Top-level settings are validated as a whole, as in every module: a bad value rejects the
patch and the last good config stays. Each entry of ``sources`` is validated on its own, so
one bad source definition never stops the others: a new source with a bad definition does not
start, a running source keeps its last good definition, and the reason (naming the source id
and the field) is reported under ``sources.<id>.configError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from edgeloop.runtime.config import describe_validation_error
from edgeloop_capture.sources import KINDS, SourceSettings
from edgeloop_capture.sources.stream import redact


class JanitorConfig(BaseModel):
    """Storage hygiene on the shared volume."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_s: float = Field(
        default=3600.0, gt=0, description="Delete samples nobody claimed once older than this (seconds)."
    )
    max_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Keep capture's files under this many bytes, dropping the oldest first; 0 = no limit.",
    )
    interval_s: float = Field(default=10.0, gt=0, le=3600, description="How often the janitor runs.")
    stale_temp_s: float = Field(
        default=300.0, gt=0, description="Delete temp files left this long (a writer died mid-write)."
    )


class FramesConfig(BaseModel):
    """Which path image frames take to inference (docs/capture.md, "Memory-backed frames")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Literal["jpeg", "raw"] = Field(
        default="jpeg",
        description="'jpeg': each frame is encoded (in its source's format, JPEG or PNG) and written "
        "under capture/ on the samples volume. 'raw': decoded pixels are written under frames/ (mount a "
        "memory-backed file system there); inference reads them without decoding and the uploader "
        "encodes only the frames it claims.",
    )
    max_bytes: int = Field(
        default=256 * 1024**2,
        ge=1,
        description="Byte budget of the raw frame ring, kept at every write: the oldest frames go "
        "first; one deleted before it was claimed is counted as evicted_unclaimed. Keep it below the "
        "size of the memory-backed mount.",
    )
    ttl_s: float = Field(
        default=600.0, gt=0, description="Delete raw frames nobody claimed once older than this (seconds)."
    )


class CaptureConfig(BaseModel):
    """Settings of the capture module."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Source definitions, each an object with 'id' and 'kind' (video, stream, usb, folder, "
        "sensor) and that kind's settings (see docs/capture.md). Each is validated on its own.",
    )
    janitor: JanitorConfig = Field(default_factory=JanitorConfig, description="Storage hygiene.")
    frames: FramesConfig = Field(
        default_factory=FramesConfig, description="The frame path: encoded files or raw frames in memory."
    )
    batch_max: int = Field(default=32, ge=1, le=256, description="Most frame references sent in one message.")
    batch_window_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="After the first reference of a message is ready, wait up to this long (ms) for more "
        "(up to batch_max) before sending: fuller messages cost every later module less, for at most "
        "this much latency. Only when references come fast enough for the window to bring two more (their "
        "average gap under half the window). 0 sends what is ready at once.",
    )
    queue_size: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="References waiting to be sent; when full, sources wait instead of dropping.",
    )
    retry_initial_s: float = Field(
        default=1.0, gt=0, le=600, description="First retry delay of a failed source."
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest retry delay (backoff doubles)."
    )
    report_interval_s: float = Field(
        default=10.0, gt=0, le=3600, description="How often source health goes to reported properties."
    )
    fsync: bool = Field(default=False, description="fsync each sample file before it is announced.")

    @field_serializer("sources")
    def _redacted(self, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Reported properties show a stream URL without its password."""
        return [
            {**s, "url": redact(s["url"])} if isinstance(s, dict) and isinstance(s.get("url"), str) else s
            for s in sources
        ]


@dataclass(frozen=True)
class ParsedSources:
    """Valid source settings by id, and the reason for each rejected definition."""

    valid: dict[str, SourceSettings] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def source_key(raw: Any, index: int) -> str:
    """The id a definition is reported under: its id, or ``#<index>`` when it has none."""
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) and raw["id"]:
        return str(raw["id"])
    return f"#{index}"


def parse_source(raw: Any, index: int) -> SourceSettings:
    """Validate one definition by its kind.

    Raises:
        ValueError: with the reason, naming the source and the field.
    """
    key = source_key(raw, index)
    prefix = f"sources.{key}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"'{prefix}' must be an object with id and kind, got {type(raw).__name__}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"key '{prefix}.kind' = {kind!r}: accepted kinds are {', '.join(KINDS)}")
    try:
        return KINDS[str(kind)].settings.model_validate(dict(raw))
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, prefix=prefix)) from exc


def parse_sources(raw_sources: list[Any]) -> ParsedSources:
    """Validate every definition on its own; an id defined twice is rejected (both entries)."""
    parsed = ParsedSources()
    for index, raw in enumerate(raw_sources):
        key = source_key(raw, index)
        if key in parsed.valid or key in parsed.errors:
            parsed.errors[key] = f"key 'sources.{key}.id' = {key!r}: id defined more than once"
            parsed.valid.pop(key, None)
            continue
        try:
            parsed.valid[key] = parse_source(raw, index)
        except ValueError as exc:
            parsed.errors[key] = str(exc)
    return parsed
