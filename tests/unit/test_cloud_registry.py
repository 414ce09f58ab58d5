"""The model registry: immutable signed versions, cards, and the champion alias under a race."""

from __future__ import annotations

import hashlib
import threading

import pytest
from edgeloop_cloud.errors import PreconditionFailedError, RegistryError
from edgeloop_cloud.registry import Registry
from edgeloop_cloud.storage import MemoryContainer

from edgeloop import signing

KEY = signing.generate_private_key()


def _published(registry: Registry, model: bytes = b"onnx-bytes") -> str:
    version = registry.claim_version("digits")
    registry.publish("digits", version, model, private_key_pem=KEY, card={"metrics": {}})
    return version


def test_publish_signs_and_records_the_sha256() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    # when
    version = _published(registry, b"model-one")
    card = registry.card("digits", version)
    # then
    assert version == "v1"
    assert card["sha256"] == hashlib.sha256(b"model-one").hexdigest()
    signing.verify(signing.public_key_pem(KEY), b"model-one", card["signature"]["value"])
    assert registry.read_model("digits", version) == b"model-one"


def test_versions_are_immutable() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    version = _published(registry)
    # when / then
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish("digits", version, b"other", private_key_pem=KEY, card={})
    with pytest.raises(PreconditionFailedError):
        registry.container.write(Registry.card_blob("digits", version), b"{}", if_none_match="*")


def test_claimed_versions_never_collide() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    # when
    versions = [registry.claim_version("digits") for _ in range(3)]
    # then
    assert versions == ["v1", "v2", "v3"]


def test_tampered_model_is_refused() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    version = _published(registry, b"model-one")
    registry.container.write(Registry.model_blob("digits", version), b"evil")
    # when / then
    with pytest.raises(RegistryError, match="sha256"):
        registry.read_model("digits", version)


def test_first_promotion_creates_the_alias() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    version = _published(registry)
    # when
    won = registry.promote("digits", version, expected=None)
    # then
    champion = registry.champion("digits")
    assert won
    assert champion is not None
    assert champion.version == version
    assert champion.signature == registry.card("digits", version)["signature"]["value"]


def test_two_promoters_racing_from_the_same_champion_only_one_wins() -> None:
    # given: both gates compared against v1
    registry = Registry(MemoryContainer("models"))
    v1 = _published(registry, b"one")
    registry.promote("digits", v1, expected=None)
    seen = registry.champion("digits")
    v2, v3 = _published(registry, b"two"), _published(registry, b"three")
    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def promoter(version: str) -> None:
        barrier.wait()
        results[version] = registry.promote("digits", version, expected=seen)

    # when
    threads = [threading.Thread(target=promoter, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert sorted(results.values()) == [False, True]
    winner = next(v for v, won in results.items() if won)
    champion = registry.champion("digits")
    assert champion is not None
    assert champion.version == winner
    assert champion.doc["previous_version"] == v1


def test_two_first_promoters_only_one_wins() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    a, b = _published(registry, b"a"), _published(registry, b"b")
    # when
    first, second = registry.promote("digits", a, expected=None), registry.promote("digits", b, expected=None)
    # then
    assert (first, second) == (True, False)
