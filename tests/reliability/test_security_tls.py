"""TLS verification is on everywhere, shown by behaviour rather than by reading the code.

Each client the solution builds is pointed at a server whose certificate it has no reason to
trust (a private CA) or that carries another name: every one refuses. A positive control with
the right CA and name succeeds, so the refusal is the verification and not a broken server.

- the dev hub: a client that does not trust the hub's CA, or expects another name, is refused;
  the real SDK refuses a hub whose certificate does not name the gateway host it dialled;
- Blob Storage: the uploader's store, the shared ``AzureContainer`` and the cloud's container
  client against Azurite serving HTTPS with a private CA;
- model downloads: the inference fetcher against an HTTPS server with a private CA.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeloop.devhub.certs import CertPaths, ensure_certificates
from edgeloop.devhub.testing import HubProcess
from edgeloop.devtools.azurite import ACCOUNT_KEY, ACCOUNT_NAME, find_azurite, free_port
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest
from tests.reliability.conftest import AreaLedger

pytestmark = pytest.mark.integration


def _handshake(address: str, port: int, context: ssl.SSLContext, server_name: str) -> None:
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name),
    ):
        pass


@pytest.fixture
def hub(dev_hub: HubFactory) -> HubProcess:
    return dev_hub(manifest(["a"], {}))


def test_the_dev_hub_is_refused_by_a_client_that_does_not_trust_its_ca(
    hub: HubProcess, ledger: AreaLedger
) -> None:
    # given
    ca = CertPaths.under(hub.paths.certs).ca_cert
    trusting = ssl.create_default_context(cafile=str(ca))
    ledger.record(inputs=3)
    # then: the default trust store does not know the hub's CA
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _handshake(hub.address, 8883, ssl.create_default_context(), hub.address)
    # and: the right CA but another name is refused too
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn't match|not valid"):
        _handshake(hub.address, 8883, trusting, "edge.example.com")
    # and: the right CA and the right name pass (the control)
    _handshake(hub.address, 8883, trusting, hub.address)


def _short_form(address: str) -> str:
    """``127.21.0.5`` as ``127.21.5``: the same address to the resolver, another name to TLS."""
    a, b, c, d = (int(p) for p in address.split("."))
    return f"{a}.{b}.{c * 256 + d}"


def test_the_sdk_refuses_a_hub_certificate_that_does_not_name_the_gateway(
    hub: HubProcess, module_process: ModuleFactory, tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: the module dials the hub under a name its certificate does not carry
    other_name = _short_form(hub.address)
    assert socket.getaddrinfo(other_name, 8883)[0][4][0] == hub.address
    ledger.record(inputs=1)
    # when
    proc = module_process(hub, "a", package=PROBE, env={"IOTEDGE_GATEWAYHOSTNAME": other_name})
    deadline = time.monotonic() + 45
    refused = False
    while proc.running and not refused and time.monotonic() < deadline:
        assert not hub.status()["modules"]["a"]["connected"], "the SDK connected to a hub with a wrong name"
        refused = "certificate verify failed" in proc.log().lower()
        time.sleep(0.3)
    # then: the SDK refused the certificate and never connected
    assert not hub.status()["modules"]["a"]["connected"]
    assert "certificate verify failed" in proc.log().lower(), proc.log()[-2000:]


# -- Blob Storage over HTTPS ----------------------------------------------------------------
@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certificates(tmp_path_factory.mktemp("ca"), "127.0.0.1")


@pytest.fixture
def https_azurite(tmp_path: Path, private_ca: CertPaths) -> Iterator[str]:
    """Azurite serving HTTPS with a certificate from a private CA; yields a connection string."""
    port = free_port()
    command = [
        find_azurite(), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--location", str(tmp_path / "az"),
        "--cert", str(private_ca.server_cert), "--key", str(private_ca.server_key),
        "--skipApiVersionCheck", "--disableTelemetry", "--silent",
    ]  # fmt: skip
    (tmp_path / "az").mkdir()
    with open(tmp_path / "azurite.log", "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "azurite (https) exited"
                assert time.monotonic() < deadline, "azurite (https) did not start"
                time.sleep(0.1)
        yield (
            f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=https://127.0.0.1:{port}/{ACCOUNT_NAME};"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def test_blob_clients_refuse_a_storage_endpoint_they_do_not_trust(
    https_azurite: str, private_ca: CertPaths, ledger: AreaLedger
) -> None:
    from azure.storage.blob import BlobServiceClient, ContainerClient
    from edgeloop_uploader.config import UploaderConfig
    from edgeloop_uploader.service import azure_store_factory
    from edgeloop_uploader.sources import Credential

    from edgeloop.blobstore import AzureContainer, BlobStoreError

    # given: the control, a client told to trust the private CA, works
    control = ContainerClient.from_connection_string(
        https_azurite, "control", connection_verify=str(private_ca.ca_cert), retry_total=0
    )
    control.create_container()
    ledger.record(inputs=3)
    # when: the solution's clients try to create their containers (each in a thread: the cloud
    # client keeps the SDK's default retries, which take minutes to give up)
    outcomes: dict[str, BaseException | None] = {}

    def attempt(name: str, action: Callable[[], object]) -> None:
        try:
            action()
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    uploader_store = azure_store_factory(Credential(https_azurite, "test"), UploaderConfig())
    shared = AzureContainer.from_credential(https_azurite, container="shared", retry_total=0)
    actions: dict[str, Callable[[], object]] = {
        "uploader": uploader_store.ensure_container,  # container "data"
        "shared": shared.ensure_container,
        "cloud": lambda: AzureContainer.from_connection_string(https_azurite, "cloud"),
    }
    threads = [threading.Thread(target=attempt, args=item, daemon=True) for item in actions.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    # then: none got through; those that gave up already raised their own storage error
    service = BlobServiceClient.from_connection_string(
        https_azurite, connection_verify=str(private_ca.ca_cert), retry_total=0
    )
    created = {c.name for c in service.list_containers()}
    assert created == {"control"}, f"a client without the CA reached the storage: {created}"
    assert outcomes, "no client gave up within 15 s"
    for name, error in outcomes.items():
        assert isinstance(error, BlobStoreError), f"{name}: {error!r}"


# -- model downloads over HTTPS -------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_model_downloads_refuse_a_server_they_do_not_trust(
    tmp_path: Path, private_ca: CertPaths, ledger: AreaLedger
) -> None:
    from edgeloop_inference.store import FetchError, UrlFetcher

    # given: an HTTPS file server with a private CA
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "model.onnx").write_bytes(b"model bytes")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(tmp_path / "www"))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(private_ca.server_cert, private_ca.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/model.onnx"
    ledger.record(inputs=1)
    try:
        # then: the control with the CA works; the module's fetcher refuses
        import urllib.request

        trusting = ssl.create_default_context(cafile=str(private_ca.ca_cert))
        with urllib.request.urlopen(url, context=trusting, timeout=10) as response:
            assert response.read() == b"model bytes"
        with pytest.raises(FetchError, match=r"(?i)certificate"):
            UrlFetcher().fetch(url, tmp_path / "got.onnx", timeout=10, max_bytes=1000)
        assert not (tmp_path / "got.onnx").exists() or (tmp_path / "got.onnx").read_bytes() == b""
    finally:
        server.shutdown()
        server.server_close()
