"""Module identities and SAS tokens, as IoT Hub and edgeHub check them.

Each module gets a random primary key; the workload API signs with it for the module, and the
hub verifies ``SharedAccessSignature sr=...&sig=...&se=...`` passwords against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import urllib.parse
from dataclasses import dataclass


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign(key: str, data: bytes) -> str:
    """Base64 HMAC-SHA256 of ``data`` under the base64 ``key``."""
    digest = hmac.new(base64.b64decode(key), data, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def resource_uri(hub_host: str, device_id: str, module_id: str) -> str:
    return f"{hub_host}/devices/{device_id}/modules/{module_id}"


def make_token(key: str, uri: str, expiry: int) -> str:
    """A SAS token for ``uri`` valid until the epoch second ``expiry`` (for tests and tools)."""
    sr = urllib.parse.quote(uri, safe="")
    sig = sign(key, f"{sr}\n{expiry}".encode())
    return f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    reason: str = ""


def check_token(password: str | None, *, key: str, uri: str, now: float) -> TokenCheck:
    """Verify a SAS token password for ``uri``; the reason says what was wrong."""
    if not password or not password.startswith("SharedAccessSignature "):
        return TokenCheck(False, "password is not a SharedAccessSignature token")
    fields: dict[str, str] = {}
    for part in password[len("SharedAccessSignature ") :].split("&"):
        name, _, value = part.partition("=")
        fields[name.strip()] = value
    missing = {"sr", "sig", "se"} - fields.keys()
    if missing:
        return TokenCheck(False, f"token lacks {', '.join(sorted(missing))}")
    if urllib.parse.unquote(fields["sr"]).lower() != uri.lower():
        return TokenCheck(False, f"token is for {urllib.parse.unquote(fields['sr'])!r}, not {uri!r}")
    try:
        expiry = int(fields["se"])
    except ValueError:
        return TokenCheck(False, f"token expiry {fields['se']!r} is not an integer")
    if expiry <= now:
        return TokenCheck(False, f"token expired at {expiry} (now {int(now)})")
    expected = sign(key, f"{fields['sr']}\n{fields['se']}".encode())
    if not hmac.compare_digest(expected, urllib.parse.unquote(fields["sig"])):
        return TokenCheck(False, "token signature does not match the module's key")
    return TokenCheck(True)
