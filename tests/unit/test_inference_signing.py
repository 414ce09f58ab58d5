"""Signed models are required by default; ``allow_unsigned`` serves them with a warning; the
camelCase keys of earlier releases still work with a deprecation warning."""

from __future__ import annotations

from pathlib import Path

from edgeloop import signing
from tests import model_factory as mf
from tests.support import wait_for
from tests.unit.test_inference_module import Harness


def _warnings(h: Harness) -> list[str]:
    stats = h.hub.call_method("getStats")
    assert stats.status == 200
    return list(stats.payload["warnings"])


def test_an_unsigned_initial_model_is_refused_with_the_reason(tmp_path: Path) -> None:
    # given: an initial model without its .sig, and a public key in the twin
    with Harness(tmp_path, {}, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
    (tmp_path / "models" / "initial" / "model.onnx.sig").unlink()
    # when
    with Harness(tmp_path, {}) as h:
        model = h.wait_model(status="failed")
        warnings = _warnings(h)
        wait_for(lambda: h.hub.reported.get("warnings"), what="reported warnings")
        reported = h.hub.reported["warnings"]
    # then
    assert "has no signature and signed models are required" in model["error"]
    assert any("refused" in w and "no signature" in w for w in warnings)
    assert any("no signature" in w for w in reported)


def test_no_public_key_means_no_model_unless_unsigned_is_allowed(tmp_path: Path) -> None:
    with Harness(tmp_path, {"public_key": None}, initial=mf.digits_model()) as h:
        refused = h.wait_model(status="failed")
    assert "no public key is configured" in refused["error"]
    with Harness(tmp_path, {"allow_unsigned": True}, initial=mf.digits_model()) as h:
        loaded = h.wait_model(status="loaded")
        warnings = _warnings(h)
        wait_for(lambda: h.hub.reported.get("warnings"), what="reported warnings")
        reported = h.hub.reported["warnings"]
    assert loaded.get("keyId") is None
    assert any("allow_unsigned is true" in w for w in warnings)
    assert any("served unsigned" in w for w in warnings)
    assert any("allow_unsigned is true" in w for w in reported)


def test_a_model_signed_by_another_key_is_refused_even_when_unsigned_is_allowed(tmp_path: Path) -> None:
    # given: the initial model was signed with a key the twin does not name
    other_private, _ = signing.generate_keypair()
    mf.write_signed_initial(tmp_path / "models", mf.digits_model(), other_private)
    # when
    with Harness(tmp_path, {"public_key": mf.signing_public(), "allow_unsigned": True}) as h:
        model = h.wait_model(status="failed")
    # then
    assert "bad signature" in model["error"]
    assert signing.key_id(mf.signing_keys()[1]) in model["error"]


def test_camel_case_keys_still_apply_with_a_deprecation_warning(tmp_path: Path) -> None:
    desired = {"publicKey": mf.signing_public(), "batching": {"maxBatch": 4}, "topK": 2}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        config = h.hub.call_method("getConfig").payload
        warnings = _warnings(h)
    assert config["config"]["batching"]["max_batch"] == 4
    assert config["config"]["top_k"] == 2
    assert any("'batching.maxBatch' is deprecated: write 'batching.max_batch'" in w for w in warnings)
    assert any("'topK' is deprecated" in w for w in config["configWarnings"])


def test_a_refused_model_is_reported_with_its_warning_in_the_same_patch(tmp_path: Path) -> None:
    # given: an initial model without its .sig (refused after the module started, on its own
    # thread: the warning must not wait for the next periodic report, 30 s later)
    with Harness(tmp_path, {}, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
    (tmp_path / "models" / "initial" / "model.onnx.sig").unlink()
    # when
    with Harness(tmp_path, {}) as h:
        h.wait_model(status="failed")
        patches = list(h.hub.reported_patches)
    # then: the patch that reports the refusal carries the warning naming it
    failed = [p for p in patches if p.get("model", {}).get("status") == "failed"]
    assert failed, patches
    assert any("no signature" in w for w in failed[0].get("warnings", [])), failed[0]
