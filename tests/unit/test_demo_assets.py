"""What ``edgeloop dev up`` creates so the repository's manifest runs out of the box."""

from __future__ import annotations

from pathlib import Path

from edgeloop_demo.assets import INITIAL_MODEL, STREAM_FOLDER, ensure_dev_assets

from edgeloop import signing


def test_missing_assets_are_created_once_and_kept(tmp_path: Path) -> None:
    # given an empty dev state folder
    said: list[str] = []
    # when
    env = ensure_dev_assets(tmp_path, say=said.append)
    model = tmp_path / "volumes" / INITIAL_MODEL
    first = model.stat().st_mtime_ns
    again = ensure_dev_assets(tmp_path, say=said.append)
    # then: the stream, keys and a signed initial model exist, and a second call changes nothing
    frames = sorted((tmp_path / "volumes" / STREAM_FOLDER).glob("frame_*.png"))
    assert len(frames) == 800
    public = tmp_path / "keys" / "signing-public.pem"
    signing.verify(public.read_bytes(), model.read_bytes(), model.with_name("model.onnx.sig").read_text())
    assert Path(env["EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE"]).read_text().startswith("-----BEGIN PUBLIC KEY")
    assert again == env
    assert model.stat().st_mtime_ns == first
    assert len(said) == 3


def test_only_the_repositorys_own_manifest_gets_demo_assets() -> None:
    import json

    from edgeloop_demo.assets import uses_demo_assets

    from tests.conftest import REPO_ROOT

    own = json.loads((REPO_ROOT / "deployment.template.json").read_text())
    assert uses_demo_assets(own)
    other = json.loads(json.dumps(own))
    other["modulesContent"]["capture"]["properties.desired"]["sources"][0]["path"] = "cams/door"
    assert not uses_demo_assets(other)
    assert not uses_demo_assets({"modulesContent": {"echo": {"properties.desired": {}}}})
