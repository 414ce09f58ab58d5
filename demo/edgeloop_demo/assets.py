"""What ``edgeloop dev up`` needs to run the repository's own manifest out of the box.

The manifest's capture twin reads the folder ``input/stream`` on the sample volume and the
inference module starts from ``initial/model.onnx`` on the models volume; the uploader seals
with the cloud's public key. When any of these is missing under the dev state folder, it is
made here: the demo's digits stream, keys (``<state>/keys``), and an initial model trained on
the scenario's clean base frames and signed with the new signing key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeloop_demo.scenario import ScenarioConfig, build, write_stream_folder

log = logging.getLogger(__name__)

STREAM_FOLDER_IN_VOLUME = "input/stream"
STREAM_FOLDER = Path("samples") / STREAM_FOLDER_IN_VOLUME
INITIAL_MODEL = Path("models") / "initial" / "model.onnx"


def uses_demo_assets(manifest_doc: Mapping[str, Any]) -> bool:
    """Whether a manifest is the repository's own: capture reads the demo stream folder and
    there is an inference module to serve the initial model."""
    content = manifest_doc.get("modulesContent", {})
    sources = content.get("capture", {}).get("properties.desired", {}).get("sources", [])
    reads_stream = any(
        isinstance(src, Mapping)
        and src.get("kind") == "folder"
        and src.get("path") == STREAM_FOLDER_IN_VOLUME
        for src in sources
    )
    return reads_stream and "inference" in content


def ensure_dev_assets(
    state_dir: Path, *, say: Callable[[str], None] = print, seed: int = 7
) -> dict[str, str]:
    """Create what is missing; returns environment variables the module processes need."""
    from edgeloop.devhub.paths import StatePaths
    from edgeloop.keys import ENVELOPE_PUBLIC, SIGNING_PRIVATE, SIGNING_PUBLIC, init_keys

    volumes = StatePaths.of(state_dir).volumes
    keys_dir = state_dir / "keys"
    if not (keys_dir / ENVELOPE_PUBLIC).exists():
        init_keys(keys_dir)
        say(f"demo assets: keys created in {keys_dir}")
    stream = volumes / STREAM_FOLDER
    if not any(stream.glob("frame_*.png")):
        write_stream_folder(build(ScenarioConfig(seed=seed)), stream)
        say(f"demo assets: digits stream written to {stream}")
    model = volumes / INITIAL_MODEL
    if not model.exists():
        _initial_model(model, keys_dir / SIGNING_PRIVATE, seed)
        say(f"demo assets: initial model trained on clean frames at {model}")
    return {
        "EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE": str((keys_dir / ENVELOPE_PUBLIC).resolve()),
        "EDGELOOP_MODEL_PUBLIC_KEY_FILE": str((keys_dir / SIGNING_PUBLIC).resolve()),
    }


def _initial_model(path: Path, signing_key_file: Path, seed: int) -> None:
    from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train

    from edgeloop import signing
    from edgeloop_demo.basedata import digits_base_set

    base = digits_base_set(seed=seed)
    examples = [
        Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)
    ]
    trained = train(base=examples, new=[], preprocess=default_preprocess(), params=TrainingParams())
    data = trained.to_bytes(name="digits", version="v0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    key = signing.read_key_file(signing_key_file)
    path.with_name(path.name + ".sig").write_text(signing.sign(key, data), encoding="utf-8")
