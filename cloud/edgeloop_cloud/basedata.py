"""The base data every candidate trains on, loaded from the ``training.base_data`` setting.

The files are images or sensor vector documents (``.json``, ``{"vector": [...]}`` as the
uploader ships a vector sample), one kind per set, and go through the same decode -> preprocess
path as uploaded samples. Its hold-out part
(marked in the data, or a seeded share of each class) is the fixed part of the gate's held-out
set. With no setting there is no base set: the built-in trainer trains on the labelled samples
alone and the gate judges on the audit items alone.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from edgeloop.blobstore import BlobContainer, BlobNotFoundError, BlobStoreError
from edgeloop_cloud.basedata_config import SETTING, BaseDataConfig
from edgeloop_cloud.errors import CloudError, SampleError
from edgeloop_cloud.samples import decode_sample

log = logging.getLogger(__name__)

#: File endings read as images (OpenCV decodes the first four; ``.npy`` is an array).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".npy")
#: File ending of a sensor vector document (``{"vector": [...], ...}``).
VECTOR_SUFFIX = ".json"
SAMPLE_SUFFIXES = (*IMAGE_SUFFIXES, VECTOR_SUFFIX)
MANIFEST_NAME = "labels.csv"
HOLDOUT_FOLDER = "holdout"
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no", "")


class BaseDataError(CloudError):
    """The configured base data cannot be used; the message names the setting and the problem."""


@dataclass(frozen=True)
class BaseSet:
    """Samples (images, or one-axis float32 vectors) with their labels, split into train and
    fixed held-out parts."""

    train_images: list[np.ndarray]
    train_labels: list[str]
    holdout_images: list[np.ndarray]
    holdout_labels: list[str]
    description: dict[str, object]

    @classmethod
    def none(cls) -> BaseSet:
        """No base data configured."""
        return cls([], [], [], [], {"source": None, "note": NO_BASE_NOTE})


NO_BASE_NOTE = (
    f"no {SETTING} configured: the built-in trainer trains on the labelled samples alone and the "
    "gate judges on the audit items alone"
)


@dataclass(frozen=True)
class _Item:
    file: str
    label: str
    holdout: bool | None  # None: the data does not say


def load_base_data(
    config: BaseDataConfig | None, *, data: BlobContainer | None = None, data_container: str = "data"
) -> BaseSet:
    """The base set ``config`` names (``data`` is the data container, for ``blob_prefix``).

    Raises:
        BaseDataError: a missing folder or file, an unknown class, an unreadable image or vector
            file, images mixed with vectors, vectors of different lengths, bad manifest rows or
            no samples at all; the message starts with the setting's name.
    """
    if config is None:
        return BaseSet.none()
    ref = config.reference(container=data_container)
    names, read = _source(config, data)
    if config.manifest is not None or MANIFEST_NAME in names:
        items = _manifest(read, Path(config.manifest).name if config.manifest else MANIFEST_NAME, ref)
    else:
        items = _class_folders(names, ref)
    if not items:
        raise BaseDataError(
            f"{SETTING} {ref!r} holds no images or vector files (expected <class>/<file> or {MANIFEST_NAME})"
        )
    _check_classes(items, config, ref)
    _check_one_kind(items, ref)
    marked = any(i.holdout is not None for i in items)
    held = [bool(i.holdout) for i in items] if marked else _draw(items, config)
    images = [_decode(read, i.file, ref) for i in items]
    _check_vector_lengths(items, images, ref)
    train = [k for k in range(len(items)) if not held[k]]
    hold = [k for k in range(len(items)) if held[k]]
    if not train:
        raise BaseDataError(f"{SETTING} {ref!r}: every sample is in the hold-out, none is left to train on")
    unknown = sorted({items[k].label for k in hold} - {items[k].label for k in train})
    if unknown:
        raise BaseDataError(f"{SETTING} {ref!r}: hold-out classes {unknown} have no training samples")
    digest = hashlib.sha256(b"".join(images[k].tobytes() for k in train + hold)).hexdigest()
    description: dict[str, object] = {
        "source": ref,
        "train": len(train),
        "holdout": len(hold),
        "holdout_from": "the data" if marked else f"share {config.holdout_share} seed {config.holdout_seed}",
        "classes": sorted({i.label for i in items}),
        "sha256": digest,
    }
    log.info("base data %s: %d train + %d hold-out samples", ref, len(train), len(hold))
    return BaseSet(
        train_images=[images[k] for k in train],
        train_labels=[items[k].label for k in train],
        holdout_images=[images[k] for k in hold],
        holdout_labels=[items[k].label for k in hold],
        description=description,
    )


def _source(config: BaseDataConfig, data: BlobContainer | None) -> tuple[list[str], Callable[[str], bytes]]:
    """The data's file names (relative, '/'-separated) and a reader for one of them."""
    if config.blob_prefix is not None:
        if data is None:
            raise BaseDataError(f"{SETTING}.blob_prefix needs the data container")
        prefix = config.blob_prefix
        base = prefix if prefix.endswith("/") else prefix + "/"
        try:
            names = sorted(b.name[len(base) :] for b in data.list(base))
        except BlobStoreError as exc:
            raise BaseDataError(f"{SETTING}.blob_prefix {prefix!r}: cannot list: {exc}") from exc

        def read_blob(name: str) -> bytes:
            return data.read(base + name)[0]

        if not names:
            raise BaseDataError(f"{SETTING}.blob_prefix {prefix!r}: no blobs under it in the data container")
        return names, read_blob
    root = Path(config.folder) if config.folder else Path(str(config.manifest)).parent
    what = "folder" if config.folder else "manifest"
    if not root.is_dir() or (config.manifest and not Path(config.manifest).is_file()):
        missing = config.folder or config.manifest
        raise BaseDataError(f"{SETTING}.{what} {missing!r} does not exist")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def read_file(name: str) -> bytes:
        return (root / name).read_bytes()

    return names, read_file


def _manifest(read: Callable[[str], bytes], name: str, ref: str) -> list[_Item]:
    try:
        text = read(name).decode("utf-8-sig")
    except (OSError, BlobStoreError) as exc:
        raise BaseDataError(f"{SETTING} {ref!r}: cannot read {name}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise BaseDataError(f"{SETTING} {ref!r}: {name} is not UTF-8 text") from exc
    rows = csv.DictReader(io.StringIO(text))
    columns = set(rows.fieldnames or ())
    if not {"file", "label"} <= columns:
        raise BaseDataError(f"{SETTING} {ref!r}: {name} needs a header with columns file,label[,holdout]")
    items = []
    for line, row in enumerate(rows, start=2):
        file, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
        if not file or not label:
            raise BaseDataError(f"{SETTING} {ref!r}: {name} line {line} lacks a file or a label")
        holdout = None
        if "holdout" in columns:
            flag = (row.get("holdout") or "").strip().lower()
            if flag not in _TRUE + _FALSE:
                raise BaseDataError(
                    f"{SETTING} {ref!r}: {name} line {line}: holdout {flag!r} is not "
                    "1/0, true/false or yes/no"
                )
            holdout = flag in _TRUE
        items.append(_Item(file, label, holdout))
    return items


def _class_folders(names: Sequence[str], ref: str) -> list[_Item]:
    """``<class>/<file>`` to train on and ``holdout/<class>/<file>`` held out; other files are ignored."""
    has_holdout = any(n.startswith(HOLDOUT_FOLDER + "/") for n in names)
    items = []
    for name in names:
        parts = PurePosixPath(name).parts
        if not name.lower().endswith(SAMPLE_SUFFIXES) or any(p.startswith(".") for p in parts):
            continue
        if len(parts) == 3 and parts[0] == HOLDOUT_FOLDER:
            items.append(_Item(name, parts[1], True))
        elif len(parts) == 2 and parts[0] != HOLDOUT_FOLDER:
            items.append(_Item(name, parts[0], False if has_holdout else None))
        else:
            log.warning(
                "%s %r: %s is not <class>/<file> nor holdout/<class>/<file>; ignored", SETTING, ref, name
            )
    return items


def _check_classes(items: Sequence[_Item], config: BaseDataConfig, ref: str) -> None:
    if config.classes is None:
        return
    unknown = sorted({i.label for i in items} - set(config.classes))
    if unknown:
        first = next(i.file for i in items if i.label in unknown)
        raise BaseDataError(
            f"{SETTING} {ref!r}: unknown classes {unknown} (e.g. {first}); {SETTING}.classes allows "
            f"{config.classes}"
        )


def _draw(items: Sequence[_Item], config: BaseDataConfig) -> list[bool]:
    """``holdout_share`` of each class, drawn with ``holdout_seed``."""
    rng = np.random.default_rng(config.holdout_seed)
    held = [False] * len(items)
    for label in sorted({i.label for i in items}):
        members = [k for k, i in enumerate(items) if i.label == label]
        count = round(len(members) * config.holdout_share)
        for k in rng.permutation(members)[:count]:
            held[int(k)] = True
    return held


def _decode(read: Callable[[str], bytes], name: str, ref: str) -> np.ndarray:
    try:
        data = read(name)
    except (FileNotFoundError, BlobNotFoundError) as exc:
        raise BaseDataError(f"{SETTING} {ref!r}: {name} does not exist") from exc
    except (OSError, BlobStoreError) as exc:
        raise BaseDataError(f"{SETTING} {ref!r}: cannot read {name}: {exc}") from exc
    try:
        return decode_sample(data, sample_id=name)
    except SampleError as exc:
        kind = "vector file" if _is_vector(name) else "image"
        raise BaseDataError(f"{SETTING} {ref!r}: unreadable {kind} {name}: {exc}") from exc


def _is_vector(name: str) -> bool:
    return name.lower().endswith(VECTOR_SUFFIX)


def _check_one_kind(items: Sequence[_Item], ref: str) -> None:
    """A set is all images or all vectors: a model takes one kind of input."""
    vectors = [i.file for i in items if _is_vector(i.file)]
    images = [i.file for i in items if not _is_vector(i.file)]
    if vectors and images:
        raise BaseDataError(
            f"{SETTING} {ref!r} mixes vector files ({vectors[0]}) and images ({images[0]}); "
            "a model takes one kind of input"
        )


def _check_vector_lengths(items: Sequence[_Item], arrays: Sequence[np.ndarray], ref: str) -> None:
    """Every vector of a set has as many values as the first."""
    if not arrays or arrays[0].ndim != 1:
        return
    first = arrays[0].shape[0]
    for item, array in zip(items, arrays, strict=True):
        if array.shape[0] != first:
            raise BaseDataError(
                f"{SETTING} {ref!r}: vectors of different lengths: {items[0].file} has {first} "
                f"values, {item.file} has {array.shape[0]}"
            )
