"""Typed module configuration from twin desired properties.

The runtime keeps the full desired document: the twin's at start, merged with every patch
(JSON merge patch: ``null`` removes a key). After each change the whole document is validated
into the module's config model; a bad document is rejected with a reason naming the key, the
value and what is accepted, and the last good config stays in force. Replaying a document
already applied (the SDK hands a full desired patch on every reconnect) changes nothing.
Keys are snake_case; a camelCase spelling of a setting is read with a deprecation warning in
``configWarnings`` (see ``keystyle``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from edgeloop.errors import ConfigError
from edgeloop.runtime.keystyle import normalize_keys

C = TypeVar("C", bound=BaseModel)

#: Twin metadata keys that are not configuration.
_META_PREFIX = "$"
#: IoT Hub caps a twin's desired properties at 32 KB; a larger document (possible through
#: ``setConfig`` or a hub that does not enforce the cap) is refused before validation.
MAX_DESIRED_BYTES = 32 * 1024


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7396) to ``target`` in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def strip_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop ``$version``, ``$metadata`` and other ``$`` keys at every level."""
    return {
        k: strip_metadata(v) if isinstance(v, dict) else v
        for k, v in doc.items()
        if not k.startswith(_META_PREFIX)
    }


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One readable line per problem: ``key 'a.b' = 5: Input should be less than 3``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{path}" if prefix and path else (prefix or path or "(document)")
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{where}' (not a setting of this module)")
            continue
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"key '{where}' = {shown}: {err['msg']}")
    return "; ".join(lines)


def validate_config(model: type[C], doc: dict[str, Any]) -> C:
    """Validate a desired document (``$`` keys ignored) into ``model``.

    Raises:
        ConfigError: with every problem, each naming its key, value and what is accepted.
    """
    size = len(json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8"))
    if size > MAX_DESIRED_BYTES:
        raise ConfigError(
            f"desired document of {size} bytes is over the {MAX_DESIRED_BYTES}-byte limit of a twin's "
            "desired properties; nothing of it was applied"
        )
    normalized, _warnings = normalize_keys(model, strip_metadata(doc))
    try:
        return model.model_validate(normalized)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc


@dataclass(frozen=True)
class ConfigChange(Generic[C]):
    """What applying a document did: ``changed`` is False for a replay of the current one."""

    changed: bool
    config: C
    previous: C | None
    previous_version: int | None = None


class ConfigState(Generic[C]):
    """The effective config of a module and the desired document it came from."""

    def __init__(self, model: type[C], doc: dict[str, Any] | None = None) -> None:
        self.model = model
        self._doc: dict[str, Any] = strip_metadata(doc or {})
        self.config: C = validate_config(model, self._doc)
        self.version: int | None = None
        self.error: str | None = None
        self.rejected_version: int | None = None
        self.warnings: list[str] = normalize_keys(model, self._doc)[1]

    @property
    def document(self) -> dict[str, Any]:
        return copy.deepcopy(self._doc)

    def replace(self, doc: dict[str, Any], version: int | None) -> ConfigChange[C]:
        """Apply a full desired document (the twin at start)."""
        return self._apply(strip_metadata(doc), version)

    def patch(self, patch: dict[str, Any], version: int | None) -> ConfigChange[C]:
        """Apply a merge patch on top of the current desired document."""
        candidate = copy.deepcopy(self._doc)
        merge_patch(candidate, strip_metadata(patch))
        return self._apply(candidate, version)

    def _apply(self, doc: dict[str, Any], version: int | None) -> ConfigChange[C]:
        if doc == self._doc:
            if version is not None and self.error is None:
                self.version = version
            return ConfigChange(
                changed=False, config=self.config, previous=self.config, previous_version=self.version
            )
        try:
            config = validate_config(self.model, doc)
        except ConfigError as exc:
            self.error = exc.reason
            self.rejected_version = version
            raise
        previous, previous_version = self.config, self.version
        self._doc, self.config, self.version = doc, config, version
        self.warnings = normalize_keys(self.model, doc)[1]
        self.error = None
        self.rejected_version = None
        return ConfigChange(
            changed=config != previous, config=config, previous=previous, previous_version=previous_version
        )

    def rollback_to(self, change: ConfigChange[C], doc: dict[str, Any], reason: str) -> None:
        """Undo an applied change the module refused (its ``apply_config`` raised)."""
        if change.previous is not None:
            self.config = change.previous
        self.rejected_version = self.version
        self._doc, self.version, self.error = doc, change.previous_version, reason
        self.warnings = normalize_keys(self.model, doc)[1]

    def reported(self) -> dict[str, Any]:
        """The reported-properties view: effective config (secrets masked), version, error."""
        rejection = None
        if self.error is not None:
            rejection = {"version": self.rejected_version, "reason": self.error}
        return {
            "config": self.config.model_dump(mode="json"),
            "configVersion": self.version,
            "configError": rejection,
            "configWarnings": list(self.warnings),
        }
