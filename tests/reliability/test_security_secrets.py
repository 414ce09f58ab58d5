"""Secrets never show: the uploader runs under the dev hub with a container SAS URL in its twin,
a connection string in its environment and another one given through ``setCredentials``; its
output, the hub's log, its reported properties and its method answers are searched for every
one of them, and for any SAS token (the modules' own hub credentials included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from edgeloop.devtools.azurite import ACCOUNT_KEY, Azurite
from tests.integration.azurite_fixtures import container_sas_url
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.reliability.conftest import AreaLedger
from tests.reliability.rig import CONTAINER, UploaderRig

pytestmark = pytest.mark.integration


def test_sas_urls_connection_strings_and_keys_never_show(
    tmp_path: Path,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    azurite: Azurite,
    cloud_private_key: Any,
    ledger: AreaLedger,
) -> None:
    # given: the container exists; the twin holds a SAS URL, the environment a connection string
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(CONTAINER)
    sas_url = container_sas_url(azurite, CONTAINER, expires_in=3600)
    signature = parse_qs(urlsplit(sas_url).query)["sig"][0]
    desired = {
        "storage": {"connection_string": None, "container_sas_url": sas_url, "create_container": False}
    }
    rig = UploaderRig(tmp_path, dev_hub, module_process, azurite, cloud_private_key, desired=desired)
    rig.env["EDGELOOP_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    rig.start()
    # when: samples flow with the SAS, then the credential is swapped through the method
    rig.feed(20)
    first = rig.settle(20)
    swapped = rig.hub.invoke("uploader", "setCredentials", {"connection_string": azurite.connection_string})
    rig.feed(20, start=20)
    second = rig.settle(40)
    answers = [rig.hub.invoke("uploader", m) for m in ("getConfig", "getStats", "getQueue")]
    ledger.record(inputs=40, lost=second.lost, note="SAS in twin, connection string in env and method")
    # then: everything arrived, and no secret is anywhere a person or the cloud can read
    assert (first.lost, second.lost) == (0, 0)
    assert swapped["status"] == 200, swapped
    places = {
        "module and hub output": rig.logs() + rig.hub.log_tail(1_000_000),
        "reported properties": json.dumps(rig.hub.twin("uploader")["properties"]["reported"]),
        "method answers": json.dumps([swapped, *answers]),
    }
    secrets = {
        "account key": ACCOUNT_KEY,
        "SAS signature": signature,
        "SAS signature (URL-encoded)": urlsplit(sas_url).query.split("sig=")[1].split("&")[0],
        "connection string": azurite.connection_string,
    }
    for where, text in places.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} shows in the {where}"
        assert "SharedAccessSignature sr=" not in text, f"a hub SAS token shows in the {where}"
        assert "sig=" not in text, f"a SAS token shows in the {where}"
    assert "twin:storage.container_sas_url" in places["module and hub output"] + places["method answers"]
