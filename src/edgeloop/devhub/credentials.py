"""A module's connection string, read from the hub's state without changing it.

For tools and samples that take a connection string instead of the IoT Edge environment:
``HostName=...;DeviceId=...;ModuleId=...;SharedAccessKey=...;GatewayHostName=...`` plus the
CA certificate the SDK must trust (``server_verification_cert``). The key comes from the hub's
database, opened read-only (works while the hub runs); the names from the module's env file.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edgeloop.devhub.envfiles import read_env_file
from edgeloop.devhub.paths import StatePaths
from edgeloop.devhub.store import open_read_only
from edgeloop.errors import EdgeLoopError


class CredentialsError(EdgeLoopError):
    """The state dir holds no identity for that module (no hub ran there, or another manifest)."""


@dataclass(frozen=True)
class ModuleCredentials:
    module: str
    connection_string: str
    ca_certificate: str

    def as_dict(self) -> dict[str, str]:
        return {
            "module": self.module,
            "connectionString": self.connection_string,
            "caCertificate": self.ca_certificate,
        }


def module_credentials(paths: StatePaths, module: str) -> ModuleCredentials:
    """Raises ``CredentialsError`` naming what is missing."""
    env_path = paths.env_file(module)
    if not env_path.exists():
        known = sorted(p.stem for p in paths.env_dir.glob("*.env")) if paths.env_dir.is_dir() else []
        hint = f" (modules: {', '.join(known)})" if known else " (start 'edgeloop dev hub' or 'dev up' once)"
        raise CredentialsError(f"no module {module!r} in the dev hub state at {paths.root}{hint}")
    env = read_env_file(env_path)
    try:
        db = open_read_only(paths.db)
        try:
            row = db.execute("SELECT key FROM identities WHERE module = ?", (module,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CredentialsError(f"cannot read the hub database {paths.db}: {exc}") from exc
    if row is None:
        raise CredentialsError(f"the hub database {paths.db} has no identity for module {module!r}")
    text = (
        f"HostName={env['IOTEDGE_IOTHUBHOSTNAME']};DeviceId={env['IOTEDGE_DEVICEID']};ModuleId={module};"
        f"SharedAccessKey={row[0]};GatewayHostName={env['IOTEDGE_GATEWAYHOSTNAME']}"
    )
    return ModuleCredentials(module, text, str(paths.certs / "ca.pem"))
