"""One twin key style: snake_case, with the older camelCase spelling accepted for one release.

Every module's settings are snake_case (``max_batch``, ``public_key``). A desired document that
still spells a setting in camelCase (``maxBatch``) is read as the snake_case key, and a
deprecation warning naming both spellings is reported (reported properties ``configWarnings``
and ``getStats``) until the twin is rewritten. Keys that are not settings are left alone, so
``extra="forbid"`` still rejects them with their own name. Free-form sections (a ``dict`` field
such as capture's sources or the filter policy) are not rewritten.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


def to_snake(key: str) -> str:
    """``maxBatch`` -> ``max_batch``; a key without capitals is returned as it is."""
    return _CAMEL_BOUNDARY.sub(r"_\1", key).lower()


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested section (``Section`` or ``Section | None``), if the field is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1 and get_origin(annotation) is not list and get_origin(annotation) is not dict:
            return models[0]
    return None


def normalize_keys(
    model: type[BaseModel], doc: dict[str, Any], *, prefix: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """``doc`` with camelCase setting names rewritten to snake_case, and one warning per rewrite.

    When a document holds both spellings of one setting, the snake_case one wins and the
    warning says the other was ignored.
    """
    fields = model.model_fields
    out: dict[str, Any] = {}
    warnings: list[str] = []
    renamed: list[tuple[str, str]] = []
    for key, value in doc.items():
        name = key
        if key not in fields and to_snake(key) in fields:
            name = to_snake(key)
            renamed.append((key, name))
        if name in out and name != key:
            continue
        out[name] = value
    for old, new in renamed:
        where_old, where_new = f"{prefix}{old}", f"{prefix}{new}"
        if new in doc:
            out[new] = doc[new]
            warnings.append(f"key '{where_old}' ignored: '{where_new}' is also set (use snake_case only)")
        else:
            warnings.append(
                f"key '{where_old}' is deprecated: write '{where_new}' "
                "(camelCase is read for one more release)"
            )
    for name, value in list(out.items()):
        info = fields.get(name)
        section = _section_model(info.annotation) if info is not None else None
        if section is not None and isinstance(value, dict):
            out[name], inner = normalize_keys(section, value, prefix=f"{prefix}{name}.")
            warnings.extend(inner)
    return out, warnings
