"""Checks of the IoT Edge deployment manifests, as a library and as ``edgeloop manifest``.

The same checks run on a template (``deployment.template.json``, with ``$schema-template``,
createOptions as JSON objects and ``${MODULES.<name>}`` image placeholders) and on a manifest
generated from it by ``iotedgedev genconfig`` (createOptions stringified and split into chunks,
every placeholder expanded):

- every route names a module of the manifest and an output/input that the module declares in
  its ``module.json`` (``"edgeloop": {"inputs": [...], "outputs": [...]}``);
- every module built from this repository has a Dockerfile for every platform in its
  ``module.json``, the amd64 and arm64v8 platforms with their ``.debug`` variants, and a build
  context holding what the Dockerfiles copy;
- every createOptions fits IoT Edge's limits: at most 8 chunks of 512 characters (4 KB), as the
  tooling splits it into ``createOptions``, ``createOptions01`` .. ``createOptions07``; every
  module twin's desired properties fit the 32 KB twin limit;
- every ``${...}`` is resolved after generation; in a template, every variable is named in
  ``.env.template`` and every ``${MODULES...}`` names a module folder and one of its platforms.

``edgeloop manifest debug-template`` derives ``deployment.debug.template.json`` from the
template (``.debug`` images and each module's debugger port), so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeloop.errors import ConfigError
from edgeloop.manifest_schema import load_schema

#: IoT Edge limits: one twin string value holds 512 characters of createOptions, split over at
#: most 8 properties (4 KB in all); a twin's desired properties hold at most 32 KB.
CHUNK_CHARS = 512
MAX_CHUNKS = 8
MAX_CREATE_OPTIONS = CHUNK_CHARS * MAX_CHUNKS
MAX_TWIN_DESIRED = 32 * 1024
#: Platforms every module must build for (arm32v7 only where its dependencies install).
REQUIRED_PLATFORMS = ("amd64", "arm64v8", "amd64.debug", "arm64v8.debug")
#: Port debugpy listens on inside the .debug images.
DEBUG_CONTAINER_PORT = 5678

DEFAULT_TEMPLATE = Path("deployment.template.json")
DEFAULT_DEBUG_TEMPLATE = Path("deployment.debug.template.json")

_ROUTE = re.compile(r"^\s*FROM\s+(?P<source>\S+)(?:\s+WHERE\s+.+?)?\s+INTO\s+(?P<sink>.+?)\s*$", re.I | re.S)
_SOURCE = re.compile(r"^/messages/modules/(?P<module>[^/]+)(?:/outputs/(?P<output>[^/]+)|/\*)?$")
_SINK = re.compile(
    r'^BrokeredEndpoint\(\s*"/modules/(?P<module>[^/"]+)/inputs/(?P<input>[^/"]+)"\s*\)$', re.I
)
_PLACEHOLDER = re.compile(r"\$\{(?P<name>[^}]*)\}")
#: The platform suffix iotedgedev appends to an image tag.
_PLATFORM_TAG = re.compile(r"-(?P<platform>amd64|arm64v8|arm32v7)(?:\.debug)?$")
_VARIABLE = re.compile(r"\$(?P<name>[A-Z][A-Z0-9_]*)\b")
_MODULE_IMAGE = re.compile(r"^MODULES\.(?P<module>[^.]+)(?:\.(?P<platform>.+))?$")
_CHUNK_KEY = re.compile(r"^createOptions(?P<index>\d\d)?$")
_COPY = re.compile(r"^\s*COPY\s+(?P<args>.+)$", re.I | re.M)


@dataclass(frozen=True)
class Problem:
    """One finding: where in the manifest (a dotted path) and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class ModuleSpec:
    """What a module folder's ``module.json`` declares."""

    name: str
    folder: Path
    platforms: dict[str, str]
    context: Path
    inputs: frozenset[str] = field(default_factory=frozenset)
    outputs: frozenset[str] = field(default_factory=frozenset)
    debug_port: int | None = None


def load_json(path: Path) -> dict[str, Any]:
    """Read a JSON document; raises ``ConfigError`` naming the file and what is wrong."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(document).__name__}")
    return document


def load_module_specs(modules_dir: Path) -> dict[str, ModuleSpec]:
    """Folder name -> spec, for every ``modules_dir/<name>/module.json``."""
    specs: dict[str, ModuleSpec] = {}
    for module_json in sorted(modules_dir.glob("*/module.json")):
        folder = module_json.parent
        doc = load_json(module_json)
        image = doc.get("image", {})
        declared = doc.get("edgeloop", {})
        specs[folder.name] = ModuleSpec(
            name=folder.name,
            folder=folder,
            platforms=dict(image.get("tag", {}).get("platforms", {})),
            context=(folder / image.get("contextPath", ".")).resolve(),
            inputs=frozenset(declared.get("inputs", [])),
            outputs=frozenset(declared.get("outputs", [])),
            debug_port=declared.get("debugPort"),
        )
    return specs


def load_env_names(env_template: Path) -> set[str]:
    """Variable names defined (``NAME=...``) in a dotenv file such as ``.env.template``."""
    names = set()
    for line in env_template.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if match:
            names.add(match.group(1))
    return names


def is_template(manifest: Mapping[str, Any]) -> bool:
    return "$schema-template" in manifest


def agent_desired(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return manifest.get("modulesContent", {}).get("$edgeAgent", {}).get("properties.desired", {})


def user_modules(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return agent_desired(manifest).get("modules", {})


def all_modules(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """User and system modules, keyed by the dotted path of their definition."""
    desired = agent_desired(manifest)
    out = {}
    for group in ("systemModules", "modules"):
        for name, module in desired.get(group, {}).items():
            out[f"$edgeAgent.{group}.{name}"] = module
    return out


def routes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Route name -> route text (the string form or the object's ``route``)."""
    raw = manifest.get("modulesContent", {}).get("$edgeHub", {}).get("properties.desired", {})
    out = {}
    for name, value in raw.get("routes", {}).items():
        out[name] = value.get("route", "") if isinstance(value, dict) else str(value)
    return out


# -- routes ----------------------------------------------------------------------------------
def check_routes(manifest: Mapping[str, Any], specs: Mapping[str, ModuleSpec]) -> list[Problem]:
    """Every route parses and names existing modules and their declared outputs and inputs."""
    modules = user_modules(manifest)
    problems = []
    for name, text in routes(manifest).items():
        where = f"$edgeHub.routes.{name}"
        match = _ROUTE.match(text)
        if not match:
            problems.append(Problem(where, f"not a route 'FROM <source> [WHERE ...] INTO <sink>': {text!r}"))
            continue
        problems += _check_source(where, match.group("source"), modules, specs)
        problems += _check_sink(where, match.group("sink"), modules, specs)
    return problems


def _check_source(
    where: str, source: str, modules: Mapping[str, Any], specs: Mapping[str, ModuleSpec]
) -> list[Problem]:
    if source in ("/*", "/messages/*", "/messages/modules/*", "/twinChangeNotifications"):
        return []
    match = _SOURCE.match(source)
    if not match:
        return [Problem(where, f"source {source!r} is not /messages/modules/<module>/outputs/<output>")]
    return _check_port(where, match.group("module"), "output", match.group("output"), modules, specs)


def _check_sink(
    where: str, sink: str, modules: Mapping[str, Any], specs: Mapping[str, ModuleSpec]
) -> list[Problem]:
    if sink == "$upstream":
        return []
    match = _SINK.match(sink)
    if not match:
        expected = 'BrokeredEndpoint("/modules/<module>/inputs/<input>")'
        return [Problem(where, f"sink {sink!r} is neither $upstream nor {expected}")]
    return _check_port(where, match.group("module"), "input", match.group("input"), modules, specs)


def _check_port(
    where: str,
    module: str,
    kind: str,
    port: str | None,
    modules: Mapping[str, Any],
    specs: Mapping[str, ModuleSpec],
) -> list[Problem]:
    if module not in modules:
        known = ", ".join(sorted(modules))
        return [Problem(where, f"module {module!r} is not in the manifest (modules: {known})")]
    spec = specs.get(_module_folder(module, modules[module]) or "")
    if spec is None or port in (None, "*"):
        return []
    declared = spec.inputs if kind == "input" else spec.outputs
    if port not in declared:
        listed = ", ".join(sorted(declared)) or "none"
        message = f"{kind} {port!r} of module {module!r} is not declared in {spec.folder}/module.json"
        return [Problem(where, f"{message} ({kind}s: {listed})")]
    return []


def _module_folder(name: str, module: Mapping[str, Any]) -> str | None:
    """The module folder a manifest module is built from: its ``${MODULES.<folder>}`` image
    in a template, its own name in a generated manifest."""
    image = str(module.get("settings", {}).get("image", ""))
    placeholder = _PLACEHOLDER.fullmatch(image)
    if placeholder:
        found = _MODULE_IMAGE.match(placeholder.group("name"))
        return found.group("module") if found else None
    return name


# -- Dockerfiles -----------------------------------------------------------------------------
def check_dockerfiles(manifest: Mapping[str, Any], specs: Mapping[str, ModuleSpec]) -> list[Problem]:
    """Every module built here has a Dockerfile for each platform of its module.json, the
    required platforms, and a build context holding what its Dockerfiles copy."""
    problems = []
    for name, module in user_modules(manifest).items():
        folder = _module_folder(name, module)
        if folder is None or folder not in specs:
            if _PLACEHOLDER.search(str(module.get("settings", {}).get("image", ""))):
                message = f"no module folder with a module.json for {folder!r}"
                problems.append(Problem(f"$edgeAgent.modules.{name}", message))
            continue
        problems += check_module_spec(specs[folder])
    return problems


def check_module_spec(spec: ModuleSpec) -> list[Problem]:
    where = f"{spec.folder}/module.json"
    problems = [
        Problem(where, f"no {platform!r} platform (every module builds {', '.join(REQUIRED_PLATFORMS)})")
        for platform in REQUIRED_PLATFORMS
        if platform not in spec.platforms
    ]
    for platform, dockerfile in spec.platforms.items():
        if not platform.endswith(".debug") and f"{platform}.debug" not in spec.platforms:
            problems.append(Problem(where, f"platform {platform!r} has no {platform}.debug variant"))
        path = spec.folder / dockerfile
        if not path.is_file():
            problems.append(Problem(where, f"platform {platform!r}: Dockerfile {path} does not exist"))
            continue
        problems += [Problem(str(path), message) for message in _missing_copy_sources(path, spec.context)]
    return problems


def _missing_copy_sources(dockerfile: Path, context: Path) -> Iterator[str]:
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")  # join continued lines
    for match in _COPY.finditer(text):
        words = match.group("args").split()
        if any(word.startswith("--from") for word in words):
            continue  # copies from another build stage, not from the context
        args = [word for word in words if not word.startswith("--")]
        for source in args[:-1]:
            if not list(context.glob(source.rstrip("/"))):
                yield f"COPY source {source!r} is not in the build context {context}"


# -- createOptions and twin sizes ------------------------------------------------------------
def check_create_options(manifest: Mapping[str, Any]) -> list[Problem]:
    """createOptions within IoT Edge's 8 x 512-character limit, as the tooling splits it."""
    problems = []
    for where, module in all_modules(manifest).items():
        settings = module.get("settings", {})
        chunks = {k: v for k, v in settings.items() if _CHUNK_KEY.match(k)}
        if not chunks:
            continue
        if isinstance(settings.get("createOptions"), dict | list):
            problems += _check_object_options(f"{where}.settings.createOptions", settings["createOptions"])
        else:
            problems += _check_chunked_options(f"{where}.settings", chunks)
    return problems


def _check_object_options(where: str, options: Any) -> list[Problem]:
    if not isinstance(options, dict):
        return [Problem(where, "createOptions must be a JSON object")]
    size = len(json.dumps(options, separators=(",", ":")))
    if size > MAX_CREATE_OPTIONS:
        message = f"{size} characters once minified; IoT Edge takes at most {MAX_CREATE_OPTIONS}"
        return [Problem(where, message)]
    return []


def _check_chunked_options(where: str, chunks: Mapping[str, Any]) -> list[Problem]:
    expected = ["createOptions"] + [f"createOptions{i:02d}" for i in range(1, len(chunks))]
    if sorted(chunks) != expected:
        found = ", ".join(sorted(chunks))
        return [Problem(where, f"createOptions chunks must be {', '.join(expected)}; found {found}")]
    problems = []
    if len(chunks) > MAX_CHUNKS:
        message = f"{len(chunks)} createOptions chunks; IoT Edge reads at most {MAX_CHUNKS}"
        problems.append(Problem(where, message))
    for key in expected:
        value = chunks[key]
        if not isinstance(value, str):
            problems.append(Problem(f"{where}.{key}", "must be a string in a generated manifest"))
        elif len(value) > CHUNK_CHARS:
            message = f"{len(value)} characters; a chunk holds at most {CHUNK_CHARS}"
            problems.append(Problem(f"{where}.{key}", message))
    if problems:
        return problems
    merged = "".join(chunks[key] for key in expected)
    try:
        if not isinstance(json.loads(merged), dict):
            problems.append(Problem(where, "createOptions must hold a JSON object"))
    except json.JSONDecodeError as exc:
        problems.append(Problem(where, f"createOptions chunks do not join into JSON: {exc}"))
    return problems


def check_twin_sizes(manifest: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for twin, content in manifest.get("modulesContent", {}).items():
        size = len(json.dumps(content.get("properties.desired", {}), separators=(",", ":")).encode())
        if size > MAX_TWIN_DESIRED:
            message = f"desired properties are {size} bytes; a twin holds at most {MAX_TWIN_DESIRED}"
            problems.append(Problem(twin, message))
    return problems


# -- placeholders ----------------------------------------------------------------------------
def check_placeholders(
    manifest: Mapping[str, Any], specs: Mapping[str, ModuleSpec], env_names: set[str] | None
) -> list[Problem]:
    """After generation nothing may be left to substitute; in a template every variable is
    in ``.env.template`` and every ``${MODULES...}`` names a module folder and platform."""
    template = is_template(manifest)
    platform = None if template else generated_platform(manifest)
    problems = []
    for where, text in _strings(manifest.get("modulesContent", {}), "modulesContent"):
        for match in _PLACEHOLDER.finditer(text):
            name = match.group("name")
            if not template:
                problems.append(Problem(where, _unresolved(match.group(), name, specs, platform)))
            elif _MODULE_IMAGE.match(name):
                problems += _check_module_placeholder(where, name, specs)
            elif env_names is not None and name not in env_names:
                problems.append(Problem(where, f"variable {name} is not in .env.template"))
        for match in _VARIABLE.finditer(_PLACEHOLDER.sub("", text)):
            name = match.group("name")
            if not template:
                problems.append(Problem(where, f"${name} was not resolved (is it set in .env?)"))
            elif env_names is not None and name not in env_names:
                problems.append(Problem(where, f"variable {name} is not in .env.template"))
    return problems


def generated_platform(manifest: Mapping[str, Any]) -> str | None:
    """The platform a generated manifest was made for, read from its resolved image tags
    (``...:0.1.0-arm32v7``); None when no image says."""
    found = set()
    for module in user_modules(manifest).values():
        match = _PLATFORM_TAG.search(str(module.get("settings", {}).get("image", "")))
        if match:
            found.add(match.group("platform"))
    return found.pop() if len(found) == 1 else None


def _unresolved(text: str, name: str, specs: Mapping[str, ModuleSpec], platform: str | None) -> str:
    """Why a placeholder is left in a generated manifest: for a module image, the platform its
    module.json does not build (arm32v7: numpy, OpenCV and ONNX Runtime have no armv7 wheels)."""
    image = _MODULE_IMAGE.match(name)
    spec = specs.get(image.group("module")) if image else None
    if spec is None or platform is None or platform in spec.platforms:
        return f"{text} was not resolved"
    built = " or ".join(p for p in spec.platforms if not p.endswith(".debug"))
    return (
        f"{text} was not resolved: {spec.folder}/module.json builds no {platform!r} image, so this "
        f"manifest cannot run on {platform}: use the {built} manifest, or leave the module out "
        "(docs/deploy.md, Platforms)"
    )


def _check_module_placeholder(where: str, name: str, specs: Mapping[str, ModuleSpec]) -> list[Problem]:
    match = _MODULE_IMAGE.match(name)
    assert match is not None
    folder, platform = match.group("module"), match.group("platform")
    spec = specs.get(folder)
    if spec is None:
        return [Problem(where, f"${{{name}}}: no modules/{folder}/module.json")]
    if platform and platform != "debug" and platform not in spec.platforms:
        return [Problem(where, f"${{{name}}}: platform {platform!r} is not in {spec.folder}/module.json")]
    return []


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key, path)
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")


# -- all together ----------------------------------------------------------------------------
def check_manifest(
    manifest: Mapping[str, Any],
    *,
    specs: Mapping[str, ModuleSpec],
    env_names: set[str] | None = None,
    schema: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Every finding about a template or generated manifest; empty when it is sound.

    ``schema`` (the official deployment manifest JSON Schema) is applied to generated
    manifests only: a template's createOptions are objects, which the schema refuses.
    """
    problems = check_routes(manifest, specs)
    problems += check_dockerfiles(manifest, specs)
    problems += check_create_options(manifest)
    problems += check_twin_sizes(manifest)
    problems += check_placeholders(manifest, specs, env_names)
    if schema is not None and not is_template(manifest):
        problems += check_schema(manifest, schema)
    return problems


def check_schema(manifest: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Problem]:
    """Validate against a JSON Schema (needs the ``jsonschema`` package, a dev dependency)."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    return [
        Problem(".".join(str(p) for p in error.absolute_path) or "(root)", f"schema: {error.message}")
        for error in validator.iter_errors(manifest)
    ]


# -- the debug template ----------------------------------------------------------------------
def derive_debug_template(template: Mapping[str, Any], specs: Mapping[str, ModuleSpec]) -> dict[str, Any]:
    """The template with each module's ``.debug`` image and its debugger port published on the
    host port named by ``debugPort`` in its module.json."""
    debug = copy.deepcopy(dict(template))
    for module in user_modules(debug).values():
        settings = module.get("settings", {})
        placeholder = _PLACEHOLDER.fullmatch(str(settings.get("image", "")))
        image = _MODULE_IMAGE.match(placeholder.group("name")) if placeholder else None
        if image is None or image.group("platform") or image.group("module") not in specs:
            continue  # not built here, or pinned to one platform on purpose
        folder = image.group("module")
        settings["image"] = f"${{MODULES.{folder}.debug}}"
        port = specs[folder].debug_port
        if port is None:
            continue
        options = settings.setdefault("createOptions", {})
        options.setdefault("ExposedPorts", {})[f"{DEBUG_CONTAINER_PORT}/tcp"] = {}
        bindings = options.setdefault("HostConfig", {}).setdefault("PortBindings", {})
        bindings[f"{DEBUG_CONTAINER_PORT}/tcp"] = [{"HostPort": str(port)}]
    return debug


def dump_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# -- command line ----------------------------------------------------------------------------
def _check_command(args: argparse.Namespace) -> int:
    specs = load_module_specs(Path(args.modules_dir))
    env_template = Path(args.env_template)
    env_names = load_env_names(env_template) if env_template.is_file() else None
    try:
        schema = load_schema(args.schema) if args.schema else None
    except ConfigError as exc:
        print(f"edgeloop manifest check: {exc.reason}")
        return 2
    failed = 0
    for file in args.files or [str(DEFAULT_TEMPLATE)]:
        try:
            problems = check_manifest(load_json(Path(file)), specs=specs, env_names=env_names, schema=schema)
        except ConfigError as exc:
            print(f"{file}: {exc.reason}")
            failed += 1
            continue
        for problem in problems:
            print(f"{file}: {problem}")
        print(f"{file}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        failed += bool(problems)
    return 1 if failed else 0


def _debug_template_command(args: argparse.Namespace) -> int:
    specs = load_module_specs(Path(args.modules_dir))
    expected = dump_json(derive_debug_template(load_json(Path(args.template)), specs))
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != expected:
            print(f"{out} is out of date with {args.template} (run: edgeloop manifest debug-template)")
            return 1
        print(f"{out} is current")
        return 0
    out.write_text(expected, encoding="utf-8")
    print(out)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("manifest", help="check deployment manifests; derive the debug template")
    commands = parser.add_subparsers(dest="manifest_command", metavar="COMMAND", required=True)

    modules_help = "folder of the module folders (default: modules)"
    check = commands.add_parser("check", help="check templates or generated manifests")
    check.add_argument("files", nargs="*", metavar="FILE", help="default: deployment.template.json")
    check.add_argument("--modules-dir", default="modules", help=modules_help)
    check.add_argument("--env-template", default=".env.template", help="dotenv file naming the variables")
    check.add_argument(
        "--schema",
        help="JSON Schema for generated manifests: a file, or the shipped azure-iot-edge-deployment-2.0.json",
    )
    check.set_defaults(func=_check_command)

    debug = commands.add_parser("debug-template", help="derive deployment.debug.template.json")
    debug.add_argument("--template", default=str(DEFAULT_TEMPLATE), help="source template")
    debug.add_argument("--out", default=str(DEFAULT_DEBUG_TEMPLATE), help="debug template to write")
    debug.add_argument("--modules-dir", default="modules", help=modules_help)
    debug.add_argument("--check", action="store_true", help="fail if the file is not current")
    debug.set_defaults(func=_debug_template_command)
