"""What every command shares on its way out: error shape, ``@file`` JSON, tables, progress; and
how ``edgeloop dev`` finds its state and a module's connection string."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeloop.cli import main
from edgeloop.cliout import CliError, emit, fail, json_argument, progress, validation_lines
from edgeloop.devhub.credentials import CredentialsError, module_credentials
from edgeloop.devhub.envfiles import write_env_file
from edgeloop.devhub.paths import StatePaths, find_state_dir, solution_root
from edgeloop.devhub.store import Store, UpstreamEntry


def test_errors_have_one_prefix_and_one_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    # given
    text_args = argparse.Namespace(prog="edgeloop dev twin", output=None)
    json_args = argparse.Namespace(prog="edgeloop dev twin", output="json")

    # when
    fail(text_args, "first problem", "second problem")
    text = capsys.readouterr().err
    fail(json_args, "first problem", "second problem")
    shaped = json.loads(capsys.readouterr().err)

    # then
    assert text.splitlines() == [
        "edgeloop dev twin: error: first problem",
        "edgeloop dev twin: error: second problem",
    ]
    assert shaped == {"error": "first problem", "details": ["second problem"]}


def test_validation_errors_are_one_line_per_field() -> None:
    class Limits(BaseModel):
        model_config = ConfigDict(extra="forbid")
        per_hour: int = Field(ge=0)
        share: float = Field(le=1)

    with pytest.raises(ValidationError) as raised:
        Limits.model_validate({"per_hour": -1, "share": 3, "other": 1})

    lines = validation_lines(raised.value)

    assert len(lines) == 3
    assert lines[0].startswith("per_hour: Input should be greater than or equal to 0 (got -1)")
    assert lines[1].startswith("share: ")
    assert lines[2].startswith("other: Extra inputs are not permitted")


def test_json_arguments_read_at_files_and_name_what_is_wrong(tmp_path: Path) -> None:
    # given
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    (tmp_path / "bad.json").write_text('{"a": ')

    # then
    assert json_argument(f"@{tmp_path / 'ok.json'}", "--payload") == {"a": [1, 2]}
    assert json_argument("[1]", "--payload") == [1]
    with pytest.raises(CliError, match=r"--desired .*bad.json is not JSON: .*line 1 column 7"):
        json_argument(f"@{tmp_path / 'bad.json'}", "--desired")
    with pytest.raises(CliError, match="cannot read"):
        json_argument(f"@{tmp_path / 'missing.json'}", "--payload")


def test_tables_flatten_nested_documents() -> None:
    out = io.StringIO()
    emit({"status": 200, "payload": {"echo": {"x": 1}, "tags": ["a", "b"]}}, "table", stream=out)
    assert out.getvalue().splitlines() == [
        "KEY             VALUE",
        "status          200",
        "payload.echo.x  1",
        "payload.tags    a, b",
    ]


def test_progress_line_appears_only_for_long_work() -> None:
    quick, slow = io.StringIO(), io.StringIO()
    with progress("quick", after=0.5, stream=quick):
        pass
    with progress("training", after=0.05, stream=slow):
        time.sleep(0.2)
    assert quick.getvalue() == ""
    assert slow.getvalue().startswith("training ... 0s")


def test_a_cli_error_raised_by_a_command_exits_1_with_the_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dev", "twin", "a", "--wait", "--state-dir", str(tmp_path)])
    assert code == 1
    assert (
        capsys.readouterr().err
        == "edgeloop dev twin: error: --wait waits for a patch to apply: give --desired too\n"
    )


def test_state_dir_is_found_from_a_subfolder_like_git(tmp_path: Path) -> None:
    # given
    solution = tmp_path / "solution"
    deep = solution / "modules" / "filter"
    deep.mkdir(parents=True)
    (solution / "deployment.template.json").write_text("{}")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    # then
    assert solution_root(deep) == solution
    assert find_state_dir(deep) == solution / ".edgeloop" / "dev"
    assert find_state_dir(outside) == outside / ".edgeloop" / "dev"
    (deep / ".edgeloop" / "dev").mkdir(parents=True)  # an existing state dir nearer wins
    assert find_state_dir(deep) == deep / ".edgeloop" / "dev"


def test_connection_string_is_read_while_the_store_is_open(tmp_path: Path) -> None:
    # given: a hub's store, open and written to, and the module's env file
    paths = StatePaths.of(tmp_path)
    store = Store(paths.db)
    store.set_identity("filter", "a2V5", "gen1")
    store.commit()
    write_env_file(paths.env_file("filter"), {"IOTEDGE_IOTHUBHOSTNAME": "h.example", "IOTEDGE_DEVICEID": "d",
                                               "IOTEDGE_GATEWAYHOSTNAME": "127.0.0.5"})  # fmt: skip

    # when
    found = module_credentials(paths, "filter")
    store.set_identity("other", "b3RoZXI=", "gen2")  # the writer goes on
    store.commit()

    # then
    assert found.connection_string == (
        "HostName=h.example;DeviceId=d;ModuleId=filter;SharedAccessKey=a2V5;GatewayHostName=127.0.0.5"
    )
    assert found.ca_certificate == str(paths.certs / "ca.pem")
    with pytest.raises(CredentialsError, match=r"no module 'ghost'.*modules: filter"):
        module_credentials(paths, "ghost")
    store.close()


def test_an_old_upstream_table_gains_system_properties(tmp_path: Path) -> None:
    # given: a database from before system properties were kept
    db = sqlite3.connect(tmp_path / "hub.db")
    db.execute("CREATE TABLE upstream (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
               "module TEXT NOT NULL, output TEXT, props TEXT NOT NULL, body BLOB NOT NULL)")  # fmt: skip
    db.execute("INSERT INTO upstream (ts, module, output, props, body) VALUES (1, 'a', 'out', '{}', x'7b7d')")
    db.commit()
    db.close()

    # when
    store = Store(tmp_path / "hub.db")
    store.add_upstream(UpstreamEntry(2.0, "a", "out", {"k": "v"}, {"messageId": "m1"}, b"{}"))
    rows = store.upstream()
    store.close()

    # then
    assert [(r.id, r.system) for r in rows] == [(1, {}), (2, {"messageId": "m1"})]
