"""Routes and manifests: forms edgeHub accepts, errors that name the route and the position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeloop.devhub.manifest import Bind, ManifestError, load_manifest
from edgeloop.devhub.routes import RouteError, Sink, Source, parse_route
from edgeloop.devhub.where import RoutedMessage
from tests.conftest import REPO_ROOT
from tests.integration.modules.manifests import manifest

MSG = RoutedMessage(b"{}", {"k": "v"}, {})


@pytest.mark.parametrize(
    ("text", "source", "sink"),
    [
        ("FROM /messages/* INTO $upstream", Source(None, None), Sink()),
        ("from /messages/modules/a/* into $UPSTREAM", Source("a", None), Sink()),
        ('FROM /messages/modules/a/outputs/* INTO BrokeredEndpoint("/modules/b/inputs/x")',
         Source("a", "*"), Sink("b", "x")),
        ('FROM /messages/modules/a/outputs/o1 INTO brokeredendpoint ( "/modules/b/inputs/x" )',
         Source("a", "o1"), Sink("b", "x")),
    ],
)  # fmt: skip
def test_sources_and_sinks_in_every_accepted_form(text: str, source: Source, sink: Sink) -> None:
    route = parse_route("r", text)
    assert (route.source, route.sink, route.condition) == (source, sink, None)


@pytest.mark.parametrize(
    ("source", "module", "output", "expected"),
    [
        (Source(None, None), "a", None, True),
        (Source("a", None), "a", None, True),
        (Source("a", None), "b", "o", False),
        (Source("a", "*"), "a", None, False),
        (Source("a", "*"), "a", "o", True),
        (Source("a", "o"), "a", "o", True),
        (Source("a", "o"), "a", "p", False),
    ],
)
def test_source_matching(source: Source, module: str, output: str | None, expected: bool) -> None:
    assert source.matches(module, output) is expected


def test_where_condition_filters_the_route() -> None:
    route = parse_route("r", "FROM /messages/* WHERE k = 'v' AND NOT IS_DEFINED(z) INTO $upstream")
    assert route.matches("a", "o", MSG)
    assert not route.matches("a", "o", RoutedMessage(b"{}", {"k": "w"}, {}))


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("SELECT * INTO $upstream", 0, "starts with 'FROM"),
        ("FROM /messages/modules/a/inputs/x INTO $upstream", 5, "unknown source"),
        ("FROM /messages/* INTO somewhere", 22, "expected INTO"),
        ('FROM /messages/* INTO BrokeredEndpoint("/modules/b/outputs/x")', 40, "unknown endpoint"),
        ("FROM /messages/* WHERE k = INTO $upstream", 27, "expected a value"),
        ("FROM /messages/* WHEN k = 1 INTO $upstream", 17, "expected WHERE"),
    ],
)
def test_route_errors_name_route_and_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(RouteError) as caught:
        parse_route("myRoute", text)
    assert caught.value.position == position
    assert "route 'myRoute'" in str(caught.value)
    assert fragment in str(caught.value)


def test_the_projects_manifest_loads() -> None:
    # when
    loaded = load_manifest(REPO_ROOT / "deployment.template.json", environ={})

    # then
    assert set(loaded.modules) == {"capture", "inference", "filter", "uploader"}
    assert loaded.ttl_secs == 7200
    assert {r.name: r.ttl_secs for r in loaded.routes}["filterToUploader"] == 86400
    assert loaded.modules["capture"].source_module == "capture"
    assert loaded.modules["inference"].binds[1] == Bind("/var/lib/edgeloop/models", "/models")


def test_unknown_module_in_a_route_names_the_manifest_file(tmp_path: Path) -> None:
    # given
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(manifest(["a"], {"bad": "FROM /messages/modules/ghost/* INTO $upstream"})))

    # when
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)

    # then
    assert str(path) in str(caught.value)
    assert "'ghost' is not in the manifest" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{", "not JSON"),
        ("[]", "not a deployment manifest"),
        (json.dumps(manifest(["a"], {"r": 5})), "a route is a string"),
        (json.dumps(manifest(["a"], {"r": "FROM /messages/* WHERE ( INTO $upstream"})), "position"),
    ],
)
def test_bad_manifests_are_refused_with_the_path(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ManifestError, match=str(path)) as caught:
        load_manifest(path)
    assert fragment in str(caught.value)


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "nope.json")


def test_env_values_expand_known_variables_only() -> None:
    doc = manifest(["a"], {}, env={"a": {"A": "${HOME_X}/x", "B": "$UNSET_Y"}})
    spec = load_manifest(doc, environ={"HOME_X": "/h"}).modules["a"]
    assert spec.env == {"A": "/h/x", "B": "$UNSET_Y"}
