"""The project's own deployment manifest checks (``edgeloop.manifest``) and the packaging files
they guard: module.json, Dockerfiles, requirements, .env.template, the debug template."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from edgeloop import cli, manifest
from edgeloop.manifest import MAX_CREATE_OPTIONS, Problem, check_manifest, load_module_specs
from tests.conftest import REPO_ROOT
from tests.packaging_layout import MODULES, copy_layout

Mutation = Callable[[dict[str, Any]], None]


def template_of(root: Path) -> dict[str, Any]:
    return json.loads((root / "deployment.template.json").read_text())


def generated(template: dict[str, Any]) -> dict[str, Any]:
    """What iotedgedev genconfig makes of a template (images, stringified createOptions)."""
    out = copy.deepcopy(template)
    del out["$schema-template"]
    creds = out["modulesContent"]["$edgeAgent"]["properties.desired"]["runtime"]["settings"]
    creds["registryCredentials"]["registry"] = {"username": "u", "password": "p", "address": "r.example"}
    for group in ("systemModules", "modules"):
        for name, module in out["modulesContent"]["$edgeAgent"]["properties.desired"][group].items():
            settings = module["settings"]
            if settings["image"].startswith("${"):
                settings["image"] = f"r.example/edgeloop-{name}:0.1.0-amd64"
            options = json.dumps(settings["createOptions"], separators=(",", ":"))
            chunks = [options[i : i + 512] for i in range(0, len(options), 512)]
            for index, chunk in enumerate(chunks):
                settings["createOptions" if index == 0 else f"createOptions{index:02d}"] = chunk
    return out


def agent(doc: dict[str, Any]) -> dict[str, Any]:
    desired: dict[str, Any] = doc["modulesContent"]["$edgeAgent"]["properties.desired"]
    return desired


def hub_routes(doc: dict[str, Any]) -> dict[str, Any]:
    routes: dict[str, Any] = doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    return routes


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return copy_layout(tmp_path)


def run_checks(root: Path, doc: dict[str, Any]) -> list[Problem]:
    specs = load_module_specs(root / "modules")
    env_names = manifest.load_env_names(root / ".env.template")
    return check_manifest(doc, specs=specs, env_names=env_names)


# -- the repository's own files ------------------------------------------------------------
def pending_module_code(problem: Problem) -> bool:
    """Dockerfiles copy modules/<name>/edgeloop_<name>, which may not be in this checkout yet."""
    match = re.search(r"COPY source 'modules/(\w+)/edgeloop_\1'", problem.message)
    return (
        bool(match) and not (REPO_ROOT / "modules" / match.group(1) / f"edgeloop_{match.group(1)}").is_dir()
    )


@pytest.mark.parametrize("name", ["deployment.template.json", "deployment.debug.template.json"])
def test_repository_templates_pass_every_check(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.chdir(REPO_ROOT)
    doc = manifest.load_json(Path(name))
    # when
    problems = run_checks(Path("."), doc)
    # then
    assert [str(p) for p in problems if not pending_module_code(p)] == []


def test_stand_in_layout_passes_every_check(layout: Path) -> None:
    # given: the repository's packaging with module code present
    for doc in (template_of(layout), generated(template_of(layout))):
        # when
        problems = run_checks(layout, doc)
        # then
        assert problems == []


def test_committed_debug_template_is_derived_from_the_template() -> None:
    # given
    specs = load_module_specs(REPO_ROOT / "modules")
    template = manifest.load_json(REPO_ROOT / "deployment.template.json")
    # when
    derived = manifest.dump_json(manifest.derive_debug_template(template, specs))
    # then
    committed = (REPO_ROOT / "deployment.debug.template.json").read_text()
    assert committed == derived, "stale: run `edgeloop manifest debug-template` after changing the template"


@pytest.mark.parametrize("module", MODULES)
def test_image_version_is_the_package_version(module: str) -> None:
    # given
    import edgeloop

    # when
    spec = json.loads((REPO_ROOT / "modules" / module / "module.json").read_text())
    # then
    assert spec["image"]["tag"]["version"] == edgeloop.__version__


def test_debug_template_uses_debug_images_and_one_host_port_per_module(layout: Path) -> None:
    # given
    specs = load_module_specs(layout / "modules")
    # when
    debug = manifest.derive_debug_template(template_of(layout), specs)
    # then
    modules = agent(debug)["modules"]
    assert {name: m["settings"]["image"] for name, m in modules.items()} == {
        name: f"${{MODULES.{name}.debug}}" for name in MODULES
    }
    ports = [
        m["settings"]["createOptions"]["HostConfig"]["PortBindings"]["5678/tcp"][0]["HostPort"]
        for m in modules.values()
    ]
    assert len(set(ports)) == len(MODULES)
    assert all(m["settings"]["createOptions"]["ExposedPorts"] == {"5678/tcp": {}} for m in modules.values())


# -- each check finds what it is for --------------------------------------------------------
def _set_route(name: str, text: str) -> Mutation:
    return lambda doc: hub_routes(doc).__setitem__(name, text)


def _big_create_options(doc: dict[str, Any]) -> None:
    options = agent(doc)["modules"]["filter"]["settings"]["createOptions"]
    options["Labels"] = {"padding": "x" * MAX_CREATE_OPTIONS}


def _big_twin(doc: dict[str, Any]) -> None:
    doc["modulesContent"]["filter"]["properties.desired"] = {"blob": "x" * 33_000}


def _image(module: str, image: str) -> Mutation:
    return lambda doc: agent(doc)["modules"][module]["settings"].__setitem__("image", image)


def _env(module: str, value: str) -> Mutation:
    return lambda doc: agent(doc)["modules"][module].setdefault("env", {}).__setitem__("X", {"value": value})


TEMPLATE_FAULTS: list[tuple[str, Mutation, str]] = [
    (
        "unknown module",
        _set_route("r", "FROM /messages/modules/nope/outputs/x INTO $upstream"),
        "'nope' is not in",
    ),
    (
        "undeclared output",
        _set_route("r", "FROM /messages/modules/capture/outputs/pixels INTO $upstream"),
        "output 'pixels' of module 'capture' is not declared",
    ),
    (
        "undeclared input",
        _set_route(
            "r",
            "FROM /messages/modules/capture/outputs/frames "
            'INTO BrokeredEndpoint("/modules/filter/inputs/frames")',
        ),
        "input 'frames' of module 'filter' is not declared",
    ),
    (
        "bad sink",
        _set_route("r", "FROM /messages/modules/capture/outputs/frames INTO nowhere"),
        "sink 'nowhere'",
    ),
    ("not a route", _set_route("r", "SEND everything"), "not a route"),
    ("createOptions over 4 KB", _big_create_options, "IoT Edge takes at most 4096"),
    ("twin over 32 KB", _big_twin, "a twin holds at most 32768"),
    ("unknown module folder", _image("capture", "${MODULES.camera}"), "no module folder with a module.json"),
    ("unknown platform", _image("capture", "${MODULES.capture.arm32v7}"), "platform 'arm32v7' is not in"),
    (
        "variable not in .env.template",
        _env("capture", "${EDGELOOP_SECRET_SAUCE}"),
        "EDGELOOP_SECRET_SAUCE is not in",
    ),
    ("bare variable not in .env.template", _env("capture", "$STORAGE_KEY"), "STORAGE_KEY is not in"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), TEMPLATE_FAULTS, ids=[c[0] for c in TEMPLATE_FAULTS])
def test_template_faults_are_found(layout: Path, case: str, mutate: Mutation, expected: str) -> None:
    # given
    doc = template_of(layout)
    mutate(doc)
    # when
    problems = run_checks(layout, doc)
    # then
    assert any(expected in str(p) for p in problems), problems


def _chunks(module: str, **chunks: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        settings = agent(doc)["modules"][module]["settings"]
        for key in [k for k in settings if k.startswith("createOptions")]:
            del settings[key]
        settings.update(chunks)

    return mutate


GENERATED_FAULTS: list[tuple[str, Mutation, str]] = [
    ("chunk over 512", _chunks("capture", createOptions="{" + " " * 600 + "}"), "a chunk holds at most 512"),
    (
        "chunk gap",
        _chunks("capture", createOptions="{", createOptions02="}"),
        "chunks must be createOptions, createOptions01",
    ),
    ("chunks not JSON", _chunks("capture", createOptions="{", createOptions01="]"), "do not join into JSON"),
    ("chunks not an object", _chunks("capture", createOptions="[]"), "must hold a JSON object"),
    (
        "too many chunks",
        _chunks(
            "capture",
            **{
                "createOptions": "{",
                **{f"createOptions{i:02d}": " " for i in range(1, 8)},
                "createOptions08": "}",
            },
        ),
        "at most 8",
    ),
    ("unresolved image", _image("capture", "${MODULES.capture}"), "${MODULES.capture} was not resolved"),
    (
        "unresolved variable",
        _env("capture", "$CONTAINER_REGISTRY_SERVER/x"),
        "$CONTAINER_REGISTRY_SERVER was not resolved",
    ),
]


@pytest.mark.parametrize(
    ("case", "mutate", "expected"), GENERATED_FAULTS, ids=[c[0] for c in GENERATED_FAULTS]
)
def test_generated_manifest_faults_are_found(
    layout: Path, case: str, mutate: Mutation, expected: str
) -> None:
    # given
    doc = generated(template_of(layout))
    mutate(doc)
    # when
    problems = run_checks(layout, doc)
    # then
    assert any(expected in str(p) for p in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.unlink(), "Dockerfile"),
        (
            lambda m: m.write_text(m.read_text().replace("COPY src/edgeloop", "COPY src/shared")),
            "COPY source 'src/shared/__init__.py'",
        ),
        (
            lambda m: m.write_text(m.read_text().replace("src/edgeloop/recent.py", "src/edgeloop/gone.py")),
            "COPY source 'src/edgeloop/gone.py'",
        ),
    ],
    ids=["missing Dockerfile", "COPY source outside the context", "missing source on a continued line"],
)
def test_dockerfile_faults_are_found(layout: Path, change: Callable[[Path], None], expected: str) -> None:
    # given
    change(layout / "modules" / "filter" / "Dockerfile.arm64v8")
    # when
    problems = run_checks(layout, template_of(layout))
    # then
    assert any(expected in str(p) and "filter" in str(p) for p in problems), problems


@pytest.mark.parametrize("platform", ["arm64v8", "amd64.debug"])
def test_module_json_without_a_required_platform_is_found(layout: Path, platform: str) -> None:
    # given
    path = layout / "modules" / "inference" / "module.json"
    doc = json.loads(path.read_text())
    del doc["image"]["tag"]["platforms"][platform]
    path.write_text(json.dumps(doc))
    # when
    problems = run_checks(layout, template_of(layout))
    # then
    assert any(
        f"no {platform!r} platform" in str(p) or f"no {platform} variant" in str(p) for p in problems
    ), problems


def test_generated_manifest_is_checked_against_a_schema(layout: Path) -> None:
    # given: a schema that asks for a field the manifest lacks
    schema = {"type": "object", "required": ["modulesContent", "extra"]}
    # when
    problems = check_manifest(generated(template_of(layout)), specs={}, schema=schema)
    # then
    assert [p.message for p in problems] == ["schema: 'extra' is a required property"]


# -- command line ---------------------------------------------------------------------------
def test_cli_check_passes_a_sound_template_and_fails_a_broken_one(
    layout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    monkeypatch.chdir(layout)
    broken = template_of(layout)
    hub_routes(broken)["r"] = "FROM /messages/modules/nope/outputs/x INTO $upstream"
    Path("broken.json").write_text(json.dumps(broken))
    # when
    good_rc = cli.main(["manifest", "check"])
    bad_rc = cli.main(["manifest", "check", "broken.json"])
    # then
    out = capsys.readouterr().out
    assert (good_rc, bad_rc) == (0, 1)
    assert "deployment.template.json: ok" in out
    assert "broken.json: $edgeHub.routes.r: module 'nope' is not in the manifest" in out


def test_cli_reports_an_unreadable_file(
    layout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    monkeypatch.chdir(layout)
    Path("bad.json").write_text("{not json")
    # when
    rc = cli.main(["manifest", "check", "bad.json"])
    # then
    assert rc == 1
    assert "bad.json is not JSON" in capsys.readouterr().out


def test_cli_debug_template_check_fails_when_stale(layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.chdir(layout)
    assert cli.main(["manifest", "debug-template", "--check"]) == 0
    template = template_of(layout)
    agent(template)["modules"]["capture"]["restartPolicy"] = "on-failure"
    Path("deployment.template.json").write_text(json.dumps(template))
    # when
    stale_rc = cli.main(["manifest", "debug-template", "--check"])
    write_rc = cli.main(["manifest", "debug-template"])
    # then
    assert (stale_rc, write_rc) == (1, 0)
    assert cli.main(["manifest", "debug-template", "--check"]) == 0


# -- packaging files ------------------------------------------------------------------------
def test_env_template_holds_no_secret_values() -> None:
    # given
    secret = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CONNECTION_STRING|SAS")
    lines = (REPO_ROOT / ".env.template").read_text().splitlines()
    # when
    assignments = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    # then
    assert [name for name, value in assignments if secret.search(name) and value.strip()] == []


def _pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return {r.name.lower(): r for r in requirements}


@pytest.mark.parametrize("module", MODULES)
def test_module_requirements_are_pinned_within_pyproject(module: str) -> None:
    # given
    declared = _pyproject_requirements()
    lines = (REPO_ROOT / "modules" / module / "requirements.txt").read_text().splitlines()
    # when
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    # then
    assert all(str(pin.specifier).startswith("==") for pin in pins), pins
    outside = [
        str(pin) for pin in pins if not declared[pin.name.lower()].specifier.contains(str(pin.specifier)[2:])
    ]
    assert outside == []


def _dockerfiles() -> list[Path]:
    return sorted((REPO_ROOT / "modules").glob("*/Dockerfile.*"))


@pytest.mark.parametrize("dockerfile", _dockerfiles(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_follows_the_image_conventions(dockerfile: Path) -> None:
    # given
    module, platform = dockerfile.parent.name, dockerfile.name.removeprefix("Dockerfile.")
    text = dockerfile.read_text()
    arch = platform.removesuffix(".debug")
    # when
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    # then
    assert bases
    assert all(re.fullmatch(rf"{arch}/python:3\.1[12](\.\d+)?-(slim-)?\w+", b) for b in bases), bases
    assert re.search(rf"^FROM {arch}/python:3\.1[12](\.\d+)?-slim-\w+$", text, re.M), "runtime stage is slim"
    assert "USER 10001:10001" in text
    assert "HEALTHCHECK" in text
    assert f"COPY modules/{module}/requirements.txt" in text
    if platform.endswith(".debug"):
        assert "debugpy==" in text
        assert "EXPOSE 5678" in text
        assert f'"--listen", "0.0.0.0:5678", "-m", "edgeloop_{module}"]' in text
    else:
        assert text.rstrip().endswith(f'CMD ["python", "-m", "edgeloop_{module}"]')
