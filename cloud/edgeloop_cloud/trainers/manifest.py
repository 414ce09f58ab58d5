"""The trainer contract's input folder: ``manifest.json``, the sample files and the champion.

Layout (what every trainer kind receives)::

    <inputs>/manifest.json        this module's ``Manifest``
    <inputs>/samples/<file>       each decrypted sample file, named in the manifest
    <inputs>/champion.onnx        the current champion, when there is one

The trainer writes ``model.onnx`` (ONNX carrying ``edgeloop.preprocess``, ``edgeloop.labels`` and
optionally ``edgeloop.embedding``) and ``metrics.json`` (a JSON object) into its outputs folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.samples import LabelledSample

SCHEMA: Literal["edgeloop.training-manifest/1"] = "edgeloop.training-manifest/1"
MANIFEST_FILE = "manifest.json"
SAMPLES_DIR = "samples"
CHAMPION_FILE = "champion.onnx"
MODEL_FILE = "model.onnx"
METRICS_FILE = "metrics.json"

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ManifestEntry(BaseModel):
    """One labelled sample in the manifest."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str = Field(description="The sample's id (as the device named it).")
    label: str = Field(description="The class the labeller gave it.")
    file: str = Field(description="Path of the decrypted sample file, relative to the inputs folder.")
    device: str = Field(default="", description="The device that uploaded it.")
    strategy: str = Field(default="", description="The filter strategy that selected it ('audit' ...).")
    audit: bool = Field(
        default=False, description="Part of the random audit share: evaluate on it, never train on it."
    )
    sha256: str = Field(default="", description="SHA-256 of the decrypted file.")


class ChampionInfo(BaseModel):
    """The model the candidate will be compared with."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(default=CHAMPION_FILE, description="The champion's ONNX, relative to the inputs.")
    version: str = Field(description="The champion's registry version.")
    labels: list[str] = Field(description="Its class names, in output order; the candidate keeps them.")
    preprocess: dict[str, Any] | None = Field(default=None, description="Its edgeloop.preprocess.")


class Manifest(BaseModel):
    """Everything a trainer is given, besides the files themselves."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal["edgeloop.training-manifest/1"] = Field(
        default=SCHEMA, alias="schema", description="The manifest format: " + SCHEMA + "."
    )
    model_name: str = Field(description="Registry name of the model being trained.")
    run_id: str = Field(default="", description="The cloud run this training belongs to.")
    seed: int = Field(description="Seed for every random choice the trainer makes.")
    base_data: str | None = Field(default=None, description="Base data reference from configuration.")
    champion: ChampionInfo | None = Field(default=None, description="The champion, when there is one.")
    samples: list[ManifestEntry] = Field(default_factory=list, description="The labelled samples.")

    def training_samples(self) -> list[ManifestEntry]:
        """The samples to train on (every sample outside the audit share)."""
        return [s for s in self.samples if not s.audit]


@dataclass(frozen=True)
class TrainerRequest:
    """What a trainer gets: its inputs folder (with the parsed manifest) and its outputs folder."""

    inputs: Path
    outputs: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.outputs / MODEL_FILE

    @property
    def metrics_path(self) -> Path:
        return self.outputs / METRICS_FILE

    @property
    def champion_path(self) -> Path | None:
        return self.inputs / self.manifest.champion.file if self.manifest.champion else None

    def sample_path(self, entry: ManifestEntry) -> Path:
        return self.inputs / entry.file


def write_inputs(
    folder: Path,
    *,
    model_name: str,
    run_id: str,
    samples: Sequence[LabelledSample],
    seed: int,
    base_data: str | None,
    champion: bytes | None,
    champion_info: ChampionInfo | None,
) -> Manifest:
    """Lay out the inputs folder and return its manifest.

    Raises:
        TrainerFailed: a sample id cannot be used as a file name, or an id appears twice.
    """
    (folder / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    entries, seen = [], set()
    for sample in sorted(samples, key=lambda s: s.sample_id):
        name = sample.file_name
        if not _SAFE_NAME.match(name) or sample.sample_id in seen:
            raise TrainerFailed(f"sample id {sample.sample_id!r} is repeated or unusable as a file name")
        seen.add(sample.sample_id)
        (folder / SAMPLES_DIR / name).write_bytes(sample.data)
        entries.append(
            ManifestEntry(
                sample_id=sample.sample_id, label=sample.label, file=f"{SAMPLES_DIR}/{name}",
                device=sample.device, strategy=sample.strategy, audit=sample.audit, sha256=sample.sha256,
            )
        )  # fmt: skip
    if champion is not None and champion_info is not None:
        (folder / champion_info.file).write_bytes(champion)
    manifest = Manifest(
        model_name=model_name, run_id=run_id, seed=seed, base_data=base_data,
        champion=champion_info if champion is not None else None, samples=entries,
    )  # fmt: skip
    (folder / MANIFEST_FILE).write_text(dump_manifest(manifest), encoding="utf-8")
    return manifest


def dump_manifest(manifest: Manifest) -> str:
    return json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=1, sort_keys=True)


def read_request(inputs: Path, outputs: Path) -> TrainerRequest:
    """The request a trainer process sees, from its inputs folder.

    Raises:
        ValueError: the manifest is missing, not JSON, or not a valid manifest (the message names
            the field).
    """
    path = inputs / MANIFEST_FILE
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"{path} is not a valid {SCHEMA} manifest: {exc}") from exc
    return TrainerRequest(inputs=inputs, outputs=outputs, manifest=manifest)
