"""W3C ``traceparent`` helpers and the per-sample stage span.

A sample's trace crosses processes: each module reads the ``traceparent`` of the item it
received, opens its stage span as a child of it, and writes the span's own ``traceparent`` into
the item it sends on (and the uploader into the blob's metadata for the cloud side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

# version-traceid-parentid-flags; version "ff" is forbidden; later versions may append fields.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def parse_traceparent(traceparent: str | None) -> SpanContext | None:
    """The remote span context in a W3C ``traceparent`` header, or None when absent or invalid."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16)))


def format_traceparent(span_context: SpanContext) -> str | None:
    """The W3C ``traceparent`` of ``span_context``, or None when it is not a valid context."""
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def context_from_traceparent(traceparent: str | None) -> Context | None:
    """An OpenTelemetry context whose parent is the remote span named by ``traceparent``."""
    span_context = parse_traceparent(traceparent)
    if span_context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


@dataclass(slots=True)
class Stage:
    """One sample's passage through one stage: the open span, and the ``traceparent`` to put
    on the item this stage sends on (None only when tracing is off and none came in)."""

    span: Span
    traceparent: str | None

    def set(self, key: str, value: str | int | float | bool) -> None:
        """Set one span attribute (e.g. ``confidence``, ``model_version``)."""
        self.span.set_attribute(key, value)

    def fail(self, reason: str) -> None:
        """Mark the stage failed without raising (a sample dropped for a reason)."""
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
