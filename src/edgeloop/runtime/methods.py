"""Direct-method registry: handlers declared with a payload model, answered with HTTP-like
statuses (200 ok, 400 bad payload, 404 unknown method, 409 conflict, 500 handler failure)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeloop.errors import ConfigError, MethodError
from edgeloop.runtime.config import describe_validation_error
from edgeloop.runtime.hub import MethodResponse

log = logging.getLogger(__name__)


class NoPayload(BaseModel):
    """For methods that take no arguments; any field is rejected."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class _Entry:
    handler: Callable[[Any], Any]
    payload_model: type[BaseModel] | None
    description: str


class MethodRegistry:
    """Maps method names to handlers; ``dispatch`` never raises."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add(
        self,
        name: str,
        handler: Callable[[Any], Any],
        payload_model: type[BaseModel] | None = NoPayload,
        description: str = "",
    ) -> None:
        """Register ``handler``; it gets the validated payload model (or the raw JSON when
        ``payload_model`` is None) and returns a JSON-ready result or raises ``MethodError``."""
        if name in self._entries:
            raise ValueError(f"method {name!r} is already registered")
        self._entries[name] = _Entry(handler, payload_model, description)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: entry.description for name, entry in sorted(self._entries.items())}

    def dispatch(self, name: str, payload: Any) -> MethodResponse:
        entry = self._entries.get(name)
        if entry is None:
            return MethodResponse(404, {"error": f"unknown method {name!r}", "methods": self.names()})
        try:
            argument = self._argument(entry, name, payload)
        except MethodError as exc:
            return MethodResponse(exc.status, {"error": exc.reason})
        try:
            result = entry.handler(argument)
        except MethodError as exc:
            return MethodResponse(exc.status, {"error": exc.reason})
        except ConfigError as exc:
            return MethodResponse(400, {"error": exc.reason})
        except Exception as exc:
            log.exception("method %s failed", name)
            return MethodResponse(500, {"error": f"{name} failed: {exc.__class__.__name__}: {exc}"})
        return MethodResponse(200, result if result is not None else {})

    @staticmethod
    def _argument(entry: _Entry, name: str, payload: Any) -> Any:
        if entry.payload_model is None:
            return payload
        if payload is None or payload == "":
            payload = {}
        if not isinstance(payload, dict):
            raise MethodError(
                400, f"{name} takes a JSON object payload, got {type(payload).__name__}: {payload!r:.80}"
            )
        try:
            return entry.payload_model.model_validate(payload)
        except ValidationError as exc:
            raise MethodError(400, f"{name}: {describe_validation_error(exc)}") from exc
