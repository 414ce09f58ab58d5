"""Where the uploader's credential and key come from, and how a sample file is claimed."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from edgeloop_uploader.claim import claim_file
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.sources import Credential, load_public_key, resolve_credential

from edgeloop.errors import ConfigError
from tests.unit.uploader_support import key_id, public_pem

SAS = "https://acct.blob.core.windows.net/data?sv=1&sig=S"
CS = "AccountName=a;AccountKey=K"


@pytest.mark.parametrize(
    ("storage", "override", "env", "source"),
    [
        ({}, None, None, None),
        ({}, None, CS, "env:EDGELOOP_STORAGE_CONNECTION_STRING"),
        ({"credentials_file": "FILE"}, None, CS, "file:FILE"),
        ({"connection_string": CS, "credentials_file": "FILE"}, None, CS, "twin:storage.connection_string"),
        ({"container_sas_url": SAS}, None, CS, "twin:storage.container_sas_url"),
        ({"container_sas_url": SAS}, Credential(SAS, "method:setCredentials"), CS, "method:setCredentials"),
    ],
)
def test_credential_precedence(
    tmp_path: Path, storage: dict[str, str], override: Credential | None, env: str | None, source: str | None
) -> None:
    # given
    secret_file = tmp_path / "credential"
    secret_file.write_text(SAS + "\n")
    storage = {k: (str(secret_file) if v == "FILE" else v) for k, v in storage.items()}
    config = UploaderConfig.model_validate({"storage": storage})
    # when
    found = resolve_credential(config, override=override, env_value=env).credential
    # then
    got = None if found is None else found.source.replace(str(secret_file), "FILE")
    assert got == source
    assert found is None or "sig=S" not in repr(found)


def test_an_empty_or_missing_secret_file_falls_through_with_the_reason(tmp_path: Path) -> None:
    config = UploaderConfig.model_validate({"storage": {"credentials_file": str(tmp_path / "none")}})
    found = resolve_credential(config, override=None, env_value=CS)
    assert found.credential is not None
    assert found.credential.source.startswith("env:")
    assert "does not exist (is it mounted?)" in found.problems[0]


def test_the_variable_named_in_the_twin_holds_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_STORAGE_SAS", SAS)
    config = UploaderConfig.model_validate({"storage": {"credential_env": "SITE_STORAGE_SAS"}})
    found = resolve_credential(config, override=None, env_value=None)
    assert found.credential is not None
    assert found.credential.source == "env:SITE_STORAGE_SAS"
    monkeypatch.delenv("SITE_STORAGE_SAS")
    missing = resolve_credential(config, override=None, env_value=None)
    assert missing.credential is None
    assert missing.problems == [
        "storage.credential_env: environment variable SITE_STORAGE_SAS is not set or empty"
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sp=cw&se=2030-01-01T00:00:00Z", []),
        ("sp=cw&se=2020-01-01T00:00:00Z", ["expired at 2020-01-01T00:00:00+00:00"]),
        ("sp=cw&se=2025-01-05T00:00:00Z", ["expires at 2025-01-05T00:00:00+00:00: renew it soon"]),
        ("sp=r&se=2030-01-01T00:00:00Z", ["has permissions 'r': uploads need create (c) and write (w)"]),
    ],
    ids=["fine", "expired", "expiring", "read-only"],
)
def test_sas_problems_are_named(query: str, expected: list[str]) -> None:
    from datetime import UTC, datetime

    credential = Credential(f"https://acct.blob.core.windows.net/data?{query}&sig=S", "file:/run/secrets/sas")
    problems = credential.sas_problems(datetime(2025, 1, 1, tzinfo=UTC))
    assert len(problems) == len(expected)
    for problem, text in zip(problems, expected, strict=True):
        assert text in problem
        assert "sig=S" not in problem


def test_public_key_from_twin_file_or_environment(tmp_path: Path) -> None:
    # given
    pem_file = tmp_path / "pub.pem"
    pem_file.write_text(public_pem(1))
    # when / then
    twin = UploaderConfig.model_validate({"encryption": {"public_key_pem": public_pem(0)}})
    assert load_public_key(twin, env_file=str(pem_file)).key_id == key_id(0)  # type: ignore[union-attr]
    assert load_public_key(UploaderConfig(), env_file=str(pem_file)).key_id == key_id(1)  # type: ignore[union-attr]
    assert load_public_key(UploaderConfig(), env_file=str(tmp_path / "missing.pem")) is None
    with pytest.raises(ConfigError, match="public_key_pem"):
        load_public_key(UploaderConfig.model_validate({"encryption": {"public_key_pem": "x"}}), env_file=None)


def test_both_twin_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        UploaderConfig.model_validate({"storage": {"connection_string": CS, "container_sas_url": SAS}})


def test_claim_links_or_copies_across_mounts(tmp_path: Path) -> None:
    # given
    source = tmp_path / "a.jpg"
    source.write_bytes(b"pixels")

    def cross_device(_src: Path, _dst: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    # when
    linked = claim_file(source, tmp_path / "linked.jpg")
    copied = claim_file(source, tmp_path / "copied.jpg", link=cross_device)
    source.unlink()  # the janitor
    # then
    assert (linked, copied) == ("link", "copy")
    assert (tmp_path / "linked.jpg").read_bytes() == b"pixels"
    assert (tmp_path / "copied.jpg").read_bytes() == b"pixels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copied.jpg", "linked.jpg"]
