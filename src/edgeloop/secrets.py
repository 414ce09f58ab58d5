"""Secrets kept out of module twins: read from a mounted secret file or an environment variable.

A twin names where a secret is (``url_secret_file: /run/secrets/camera-url``,
``credential_env: EDGELOOP_STORAGE_SAS_URL``), never the secret itself, so that twins, reported
properties and logs hold no credential. A file is read each time the secret is needed, so a
rotated secret is picked up without a restart. Errors name the file or variable, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from edgeloop.errors import EdgeLoopError

#: Folder a relative secret file name is read from (the deployment binds the host's
#: ``/var/lib/edgeloop/secrets`` there read-only); ``EDGELOOP_SECRETS_DIR`` overrides it.
DEFAULT_SECRETS_DIR = "/run/secrets/edgeloop"
#: Environment variable names a twin may point at.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretUnavailableError(EdgeLoopError):
    """A secret file is missing, unreadable or empty, or a named variable is unset or empty."""


def secret_path(path: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """An absolute path as it is; a relative one under ``EDGELOOP_SECRETS_DIR``."""
    given = Path(path)
    if given.is_absolute():
        return given
    env = os.environ if environ is None else environ
    return Path(env.get("EDGELOOP_SECRETS_DIR") or DEFAULT_SECRETS_DIR) / given


def read_secret_file(name: str | Path, environ: Mapping[str, str] | None = None) -> str:
    """The file's text, stripped; a relative ``name`` is read under ``EDGELOOP_SECRETS_DIR``.

    Raises:
        SecretUnavailableError: naming the file and the cause (missing, unreadable, empty).
    """
    path = secret_path(name, environ)
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise SecretUnavailableError(f"secret file {str(path)!r} does not exist (is it mounted?)") from exc
    except PermissionError as exc:
        raise SecretUnavailableError(
            f"secret file {str(path)!r} is not readable by this module's user (uid {os.getuid()})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretUnavailableError(f"secret file {str(path)!r} cannot be read: {exc}") from exc
    if not text:
        raise SecretUnavailableError(f"secret file {str(path)!r} is empty")
    return text


def read_secret_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, stripped. Raises ``SecretUnavailableError`` naming the variable."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise SecretUnavailableError(f"environment variable {name} is not set or empty")
    return value


def check_env_name(name: str | None) -> str | None:
    """For validators: a plausible variable name, else ValueError."""
    if name is not None and not ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name (letters, digits, _)")
    return name
