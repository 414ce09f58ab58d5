"""The device side: containers run as a non-root user and never hold a private key.

- Every Dockerfile's final stage ends as a non-root user (no later ``USER root``).
- The manifests, the ``.env`` template, the IoT Edge configs, layers and twin patches carry no
  private key and name no private key file.
- The device code (each module's import closure, the shared package included) never calls a
  private-key loader or signer; and a running uploader, with every private-key loader of
  ``cryptography`` turned into a tripwire, seals and uploads samples with the public key alone.
"""

from __future__ import annotations

import ast
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from edgeloop import keys
from tests.conftest import REPO_ROOT
from tests.reliability.conftest import AreaLedger

MODULES = ("capture", "inference", "filter", "uploader")
ROOT_USERS = {"root", "0", "0:0", "root:root", "root:0", "0:root"}


def dockerfiles() -> list[Path]:
    return sorted(REPO_ROOT.glob("modules/*/Dockerfile*"))


def final_stage_user(text: str) -> str | None:
    """The user the final stage runs as: the last ``USER`` after the last ``FROM``."""
    user = None
    for raw in text.splitlines():
        line = raw.strip()
        if re.match(r"(?i)^FROM\s", line):
            user = None
        match = re.match(r"(?i)^USER\s+(\S+)", line)
        if match:
            user = match.group(1)
    return user


def test_there_are_dockerfiles_for_every_module() -> None:
    assert {p.parent.name for p in dockerfiles()} == set(MODULES)


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_container_runs_as_a_non_root_user(path: Path, ledger: AreaLedger) -> None:
    # when
    user = final_stage_user(path.read_text(encoding="utf-8"))
    ledger.record(inputs=1)
    # then
    assert user is not None, f"{path.name}: the final stage sets no USER (it would run as root)"
    assert user.lower() not in ROOT_USERS, f"{path.name}: the final stage runs as {user}"


@pytest.mark.parametrize(
    ("text", "user"),
    [
        ("FROM a AS b\nUSER 10001\nFROM c\nRUN x\n", None),
        ("FROM a\nUSER 10001\nUSER root\n", "root"),
        ("FROM a\nUSER 10001:10001\n", "10001:10001"),
    ],
)
def test_the_user_check_reads_the_final_stage(text: str, user: str | None) -> None:
    assert final_stage_user(text) == user


# -- no private key on the device -----------------------------------------------------------
PRIVATE_KEY_FILES = {keys.ENVELOPE_PRIVATE, keys.SIGNING_PRIVATE}
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def device_templates() -> list[Path]:
    paths = [
        REPO_ROOT / "deployment.template.json",
        REPO_ROOT / "deployment.debug.template.json",
        REPO_ROOT / ".env.template",
        *REPO_ROOT.glob("modules/*/module.json"),
        *(p for p in (REPO_ROOT / "edge-config").rglob("*") if p.is_file()),
    ]
    return [p for p in paths if p.is_file()]


def _strings(doc: Any) -> Iterator[tuple[str, str]]:
    """(key path, string) for every key and string value in a JSON document."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{where}/{key}", str(key)
                stack.append((f"{where}/{key}", value))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, str):
            yield where, node


@pytest.mark.parametrize("path", device_templates(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_device_templates_carry_and_name_no_private_key(path: Path, ledger: AreaLedger) -> None:
    # given
    text = path.read_text(encoding="utf-8")
    ledger.record(inputs=1)
    # then: no PEM private key, no private key file, no setting that is a private key
    assert not PEM_PRIVATE.search(text), f"{path.name} holds a PEM private key"
    for name in PRIVATE_KEY_FILES:
        assert name not in text, f"{path.name} names the private key file {name}"
    if path.suffix == ".json":
        for where, value in _strings(json.loads(text)):
            assert not re.search(r"(?i)private.?key", value), f"{path.name}{where}: {value[:80]!r}"


# Calls that only a holder of a private key makes.
PRIVATE_KEY_CALLS = {
    "load_pem_private_key",
    "load_der_private_key",
    "load_ssh_private_key",
    "load_private_key",  # edgeloop.signing
    "PrivateKeyring",
    "from_private_bytes",
    "private_bytes",
    "generate_private_key",
    "open_envelope",
    "open_file",
    "open_bytes",
    "sign",
    "sign_file",
    "init_keys",
}


def _module_source(name: str) -> Path | None:
    top = name.split(".")[0]
    roots = {"edgeloop": REPO_ROOT / "src"} | {f"edgeloop_{m}": REPO_ROOT / "modules" / m for m in MODULES}
    base = roots.get(top)
    if base is None:
        return None
    path = base.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(tree: ast.AST, package: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def import_closure(package: str) -> dict[str, Path]:
    """First-party modules reachable from ``package`` (every file of the package itself)."""
    seen: dict[str, Path] = {}
    root = REPO_ROOT / "modules" / package.removeprefix("edgeloop_") / package
    queue = [f"{package}.{p.stem}" if p.stem != "__init__" else package for p in root.glob("*.py")]
    while queue:
        name = queue.pop()
        source = _module_source(name)
        if source is None or name in seen:
            continue
        seen[name] = source
        pkg = name if source.name == "__init__.py" else name.rpartition(".")[0]
        queue.extend(_imported(ast.parse(source.read_text(encoding="utf-8")), pkg))
    return seen


def private_key_calls(source: Path, root: Path = REPO_ROOT) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in PRIVATE_KEY_CALLS:
                calls.append(f"{source.relative_to(root)}:{node.lineno} {name}()")
    return calls


# Shared files the closure reaches whose private-key functions device code never calls: they
# hold both halves (sealing and opening, signing and verifying); what matters is that no
# device-side caller reaches the private half, which the tripwire test below runs.
BOTH_HALVES = {"edgeloop.envelope", "edgeloop.signing", "edgeloop.keys"}


@pytest.mark.parametrize(
    "module", [m for m in MODULES if (REPO_ROOT / "modules" / m / f"edgeloop_{m}").is_dir()]
)
def test_device_code_never_loads_or_uses_a_private_key(module: str, ledger: AreaLedger) -> None:
    # given
    closure = import_closure(f"edgeloop_{module}")
    ledger.record(inputs=len(closure))
    # when
    scanned = {name: path for name, path in closure.items() if name not in BOTH_HALVES}
    found = [call for path in scanned.values() for call in private_key_calls(path)]
    # then
    assert f"edgeloop_{module}.module" in closure or f"edgeloop_{module}" in closure
    assert not found, "device code calls private-key functions:\n" + "\n".join(found)
    assert "edgeloop.keycli" not in closure, "a device module imports the key-management CLI"


def test_the_call_scan_finds_private_key_use(tmp_path: Path) -> None:
    # given: code that would load a private key
    source = tmp_path / "probe.py"
    source.write_text(
        "from cryptography.hazmat.primitives import serialization as s\ns.load_pem_private_key(b'', None)\n"
    )
    # then
    assert private_key_calls(source, tmp_path) == ["probe.py:2 load_pem_private_key()"]


class PrivateKeyTouched(AssertionError):
    pass


@pytest.fixture
def device_public_pem() -> str:
    """The cloud's public key, made (with its private half) before the tripwire is set."""
    from tests.unit.uploader_support import public_pem

    return public_pem(0)


@pytest.fixture
def private_key_tripwire(monkeypatch: pytest.MonkeyPatch, device_public_pem: str) -> list[str]:
    """Every private-key loader and generator of ``cryptography`` records and raises."""
    touched: list[str] = []

    def wire(owner: Any, name: str) -> None:
        def tripped(*_args: Any, **_kwargs: Any) -> Any:
            touched.append(name)
            raise PrivateKeyTouched(f"device code called {name}")

        monkeypatch.setattr(owner, name, tripped)

    for name in ("load_pem_private_key", "load_der_private_key", "load_ssh_private_key"):
        wire(serialization, name)
    wire(rsa, "generate_private_key")
    wire(ed25519.Ed25519PrivateKey, "generate")
    wire(ed25519.Ed25519PrivateKey, "from_private_bytes")
    return touched


def test_a_running_uploader_seals_with_the_public_key_alone(
    tmp_path: Path, private_key_tripwire: list[str], device_public_pem: str, ledger: AreaLedger
) -> None:
    # given: the key pair made before the tripwire; the device gets only the public PEM
    from edgeloop_uploader.module import UploaderModule

    from edgeloop.blobstore import MemoryContainer
    from edgeloop.runtime import ModuleRuntime
    from edgeloop.runtime.fake import FakeHubClient
    from tests.unit.uploader_support import selected

    pem = device_public_pem
    store = MemoryContainer()
    samples = tmp_path / "samples"
    samples.mkdir()
    hub = FakeHubClient({"encryption": {"public_key_pem": pem}})
    module = UploaderModule(
        samples_dir=samples, outbox_dir=tmp_path / "outbox", store_factory=lambda _c, _cfg: store,
        env_credential="AccountName=a;AccountKey=x",
    )  # fmt: skip
    runtime = ModuleRuntime(module, client=hub, device_id="dev-1", tick_interval=0.05)
    thread = threading.Thread(target=runtime.run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while module.uploader is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # when
        hub.push_input("selected", [selected(samples, f"01K{i}") for i in range(5)])
        while len([n for n in store.blobs if n.endswith(".elenv")]) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runtime.request_stop("test over")
        thread.join(30)
    sealed = [n for n in store.blobs if n.endswith(".elenv")]
    ledger.record(inputs=5, lost=5 - len(sealed))
    # then
    assert private_key_tripwire == []
    assert len(sealed) == 5
