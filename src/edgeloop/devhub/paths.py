"""Where the dev hub keeps its files under a state dir (default ``.edgeloop/dev``)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path(".edgeloop/dev")
#: What marks the root of a solution: its manifest or a dev hub's state.
_ROOT_MARKERS = ("deployment.template.json", DEFAULT_STATE_DIR)
#: Unix socket paths are limited to 107 bytes; longer state dirs put sockets in a short tmp dir.
_MAX_SOCKET_PATH = 100


def solution_root(start: Path | None = None) -> Path | None:
    """The nearest folder, from ``start`` (the current directory) upwards, that holds a dev hub
    state dir or a ``deployment.template.json`` (as git finds ``.git``); None when none does."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_STATE_DIR).is_dir():
            return folder
    for folder in (here, *here.parents):
        if (folder / _ROOT_MARKERS[0]).is_file():
            return folder
    return None


def find_state_dir(start: Path | None = None) -> Path:
    """``<solution root>/.edgeloop/dev``; ``./.edgeloop/dev`` outside any solution."""
    root = solution_root(start)
    return (root or (start or Path.cwd()).absolute()) / DEFAULT_STATE_DIR


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @classmethod
    def of(cls, state_dir: Path | str) -> StatePaths:
        return cls(Path(state_dir).absolute())

    @property
    def db(self) -> Path:
        return self.root / "hub.db"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def env_dir(self) -> Path:
        return self.root / "env"

    def env_file(self, module: str) -> Path:
        return self.env_dir / f"{module}.env"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log_file(self, module: str) -> Path:
        return self.logs / f"{module}.log"

    @property
    def upstream_log(self) -> Path:
        return self.root / "upstream.jsonl"

    @property
    def info(self) -> Path:
        """JSON written by a running hub: bind address, names, pid, socket paths."""
        return self.root / "hub.json"

    @property
    def up_log(self) -> Path:
        """The output of a detached ``edgeloop dev up``."""
        return self.logs / "up.log"

    @property
    def azurite(self) -> Path:
        return self.root / "azurite"

    @property
    def socket_dir(self) -> Path:
        if len(str(self.root / "control.sock")) <= _MAX_SOCKET_PATH:
            return self.root
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"edgeloop-dev-{digest}"

    @property
    def workload_socket(self) -> Path:
        return self.socket_dir / "workload.sock"

    @property
    def control_socket(self) -> Path:
        return self.socket_dir / "control.sock"
