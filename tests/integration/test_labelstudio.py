"""The labelling round trip against a real Label Studio and Azurite.

Sealed samples go into the data container; ``edgeloop cloud label export`` (as a process)
writes the tasks with decrypted images in a local folder; a Label Studio server started here
(its own virtual environment, made by ``scripts/setup-env`` with ``EDGELOOP_WITH_LABELSTUDIO=1``)
gets a project with the classes, the tasks, and an annotator's answers through its SDK (run by
that environment's interpreter, ``labelstudio_driver.py``: the SDK's dependencies do not fit the
project's pins); its JSON export goes back through ``edgeloop cloud label import`` and the cloud
then loads exactly the answers. No decrypted image ever lands in the data container.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from edgeloop_cloud.factory import services_from_env
from edgeloop_cloud.labels import load_labels
from edgeloop_demo.scenario import ScenarioConfig, build

from edgeloop import envelope
from edgeloop.devtools.azurite import Azurite, free_port
from edgeloop.keys import KeySet
from tests.cloud_support import cloud_test_config, upload_sealed
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.azurite_fixtures import azurite  # noqa: F401

pytestmark = pytest.mark.integration

LS_VENV = Path(os.environ.get("EDGELOOP_LABELSTUDIO_VENV", REPO_ROOT / ".edgeloop" / "labelstudio-venv"))
if not LS_VENV.is_absolute():
    LS_VENV = REPO_ROOT / LS_VENV
TOKEN = "edgeloop-test-token-0123456789"
CLASSES = [str(n) for n in range(10)]
START_TIMEOUT_S = 420.0


@dataclass
class LabelStudio:
    url: str
    token: str
    python: Path


def _label_studio_installed() -> Path:
    """Label Studio's interpreter; a skip only when its install failed, with pip's reason."""
    failed = Path(f"{LS_VENV}.failed")
    if failed.exists():
        pytest.skip(f"Label Studio cannot be installed here: {failed.read_text(encoding='utf-8').strip()}")
    executable = LS_VENV / "bin" / "label-studio"
    if not executable.exists() or not (LS_VENV / ".edgeloop-installed").exists():
        pytest.fail(
            f"Label Studio is not installed in {LS_VENV}: run `EDGELOOP_WITH_LABELSTUDIO=1 "
            "source scripts/setup-env` (scripts/test does)"
        )
    return executable


@pytest.fixture
def label_studio(tmp_path: Path) -> Iterator[LabelStudio]:
    executable = _label_studio_installed()
    port = free_port()
    root = tmp_path / "ls-files"
    root.mkdir()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path / "ls-data"),
        "LABEL_STUDIO_USERNAME": "annotator@example.com",
        "LABEL_STUDIO_PASSWORD": "edgeloop-test-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(root),
        "LATEST_VERSION_CHECK": "false",  # no call to the package index at start
        "COLLECT_ANALYTICS": "false",
    }
    log = (tmp_path / "label-studio.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(executable), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
         "--enable-legacy-api-token"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, tmp_path / "label-studio.log")
        print(f"Label Studio answered after {time.monotonic() - started:.0f} s", file=sys.stderr)
        yield LabelStudio(url=url, token=TOKEN, python=LS_VENV / "bin" / "python")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Label Studio exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2.0)
    pytest.fail(f"Label Studio did not answer within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def env(azurite: Azurite, keys: KeySet, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    config = tmp_path / "cloud.json"
    settings = cloud_test_config(tmp_path / "base")
    settings["training"].pop("base_data")  # labelling reads no base data
    config.write_text(json.dumps(settings), encoding="utf-8")
    return {
        "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "EDGELOOP_SAMPLE_KEYS": str(keys.envelope_private),
        "EDGELOOP_SIGNING_KEY": str(keys.signing_private),
        "EDGELOOP_CLOUD_CONFIG": str(config),
    }


def _cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "edgeloop", "cloud", "label", *args],
        env=subprocess_env(env), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert (done.returncode == 0) == ok, done.stderr[-3000:]
    return done


def _frames(count: int) -> list[np.ndarray]:
    scenario = build(ScenarioConfig(seed=3))
    return [scenario.stream.frames[i] for i in range(count)]


def test_label_studio_round_trip(
    env: dict[str, str], keys: KeySet, label_studio: LabelStudio, tmp_path: Path
) -> None:
    # given: four sealed samples, one of them labelled already
    svc = services_from_env(env)
    public = envelope.PublicKey.from_file(keys.envelope_public)
    plaintexts: dict[str, bytes] = {}
    for n, frame in enumerate(_frames(4)):
        name = upload_sealed(svc.data, public_key=public, sample_id=f"s{n:03d}", frame=frame)
        plaintexts[f"s{n:03d}"] = svc.opener.open(svc.data.read(name)[0], _ref(svc, name))
    svc.data.write("labels/0-round.csv", b"sample_id,label\ns003,4\n")
    root = tmp_path / "ls-files"
    out = tmp_path / "labelling"
    classes = ",".join(CLASSES)
    # when: the queue is exported as a user does, with images in Label Studio's document root
    exported = json.loads(
        _cli(env, "export", "--out", str(out), "--images-dir", str(root / "images"),
             "--document-root", str(root), "--classes", classes).stdout
    )  # fmt: skip
    assert exported["exported"] == 3
    # and an annotator answers in Label Studio: s001 changes its mind, s002 is skipped
    answers = {"s000": ["3"], "s001": ["5", "7"], "s002": ["skip"]}
    (tmp_path / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
    driven = subprocess.run(
        [str(label_studio.python), str(Path(__file__).parent / "labelstudio_driver.py"),
         "--url", label_studio.url, "--token", label_studio.token,
         "--config", str(out / "label_config.xml"), "--tasks", str(out / "tasks.json"),
         "--answers", str(tmp_path / "answers.json"), "--local-root", str(root / "images"),
         "--out", str(tmp_path / "ls-out")],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert driven.returncode == 0, driven.stderr[-3000:]
    # then: Label Studio served each decrypted image to the labelling page
    seen = json.loads((tmp_path / "ls-out" / "images.json").read_text())
    assert seen == {sid: {"status": 200, "size": len(plaintexts[sid])} for sid in ("s000", "s001", "s002")}
    # when: its JSON export is imported
    report = json.loads(
        _cli(env, "import", str(tmp_path / "ls-out" / "export.json"), "--classes", classes).stdout
    )
    # then: the cloud loads exactly the answers (the latest for s001), the skip is listed
    assert report["imported"] == 2
    assert len(report["not_imported"]) == 1
    assert "'s002' was skipped" in report["not_imported"][0]
    loaded = load_labels(svc.data)
    assert {sid: e.label for sid, e in loaded.labels.items()} == {"s000": "3", "s001": "7", "s003": "4"}
    assert loaded.problems == []
    # and no decrypted image is in the data container
    _assert_no_plaintext(svc.data, plaintexts)
    svc.close()


def test_images_container_gives_read_only_urls_and_the_data_container_is_refused(
    env: dict[str, str], keys: KeySet, tmp_path: Path
) -> None:
    # given
    svc = services_from_env(env)
    public = envelope.PublicKey.from_file(keys.envelope_public)
    frame = _frames(1)[0]
    name = upload_sealed(svc.data, public_key=public, sample_id="s000", frame=frame)
    plaintext = svc.opener.open(svc.data.read(name)[0], _ref(svc, name))
    # when: the data container is named for the images
    refused = _cli(env, "export", "--out", str(tmp_path / "a"), "--images-container", "data",
                   "--classes", "0,1", ok=False)  # fmt: skip
    # then
    assert "is the data container" in refused.stderr
    # when: a separate container
    _cli(env, "export", "--out", str(tmp_path / "b"), "--images-container", "labelling-images",
         "--sas-minutes", "5", "--classes", "0,1")  # fmt: skip
    url = json.loads((tmp_path / "b" / "tasks.json").read_text())[0]["data"]["image"]
    # then: the URL reads the decrypted image, and only reads
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == plaintext
    put = urllib.request.Request(url, data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"})
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(put, timeout=10)
    denied.value.close()
    assert denied.value.code == 403
    _assert_no_plaintext(svc.data, {"s000": plaintext})
    svc.close()


def _ref(svc: object, name: str) -> object:
    from edgeloop_cloud.samples import parse_sample_name

    data = svc.data  # type: ignore[attr-defined]
    info = data.info(name)
    return parse_sample_name(info)


def _assert_no_plaintext(container: object, plaintexts: dict[str, bytes]) -> None:
    digests = {hashlib.sha256(p).hexdigest() for p in plaintexts.values()}
    for info in container.list():  # type: ignore[attr-defined]
        data, _ = container.read(info.name)  # type: ignore[attr-defined]
        assert hashlib.sha256(data).hexdigest() not in digests, (
            f"decrypted image in the data container: {info.name}"
        )
        assert not info.name.endswith((".png", ".jpg")), info.name
