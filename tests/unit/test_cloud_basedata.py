"""Base data from ``training.base_data``: the layouts it reads, its hold-out, its errors, and the
demo's digits folder read back as the very frames the scenario rendered."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_cloud.basedata import BaseDataError, BaseSet, load_base_data
from edgeloop_cloud.basedata_config import BaseDataConfig
from edgeloop_cloud.config import CloudConfig
from edgeloop_demo.basedata import digits_base_set

from edgeloop.blobstore import MemoryContainer
from edgeloop.errors import ConfigError
from tests.cloud_support import digits_base_folder


def _image(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, dtype=np.uint8)


def _png(value: int) -> bytes:
    ok, data = cv2.imencode(".png", _image(value))
    assert ok
    return bytes(data)


def _write(root: Path, files: dict[str, int]) -> Path:
    for name, value in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_png(value))
    return root


def _values(images: list[np.ndarray]) -> list[int]:
    return [int(i[0, 0, 0]) for i in images]


def test_class_folders_with_a_holdout_folder(tmp_path: Path) -> None:
    _write(tmp_path, {"cat/a.png": 1, "cat/b.png": 2, "dog/c.png": 3, "holdout/cat/d.png": 4,
                      "holdout/dog/e.png": 5, "README.txt": 0})  # fmt: skip
    base = load_base_data(BaseDataConfig(folder=str(tmp_path)))
    assert (base.train_labels, _values(base.train_images)) == (["cat", "cat", "dog"], [1, 2, 3])
    assert (base.holdout_labels, _values(base.holdout_images)) == (["cat", "dog"], [4, 5])
    assert base.description["source"] == str(tmp_path)
    assert base.description["holdout_from"] == "the data"
    assert base.description["classes"] == ["cat", "dog"]


def test_without_a_marked_holdout_a_seeded_share_of_each_class_is_held_out(tmp_path: Path) -> None:
    _write(tmp_path, {f"{c}/{k:02d}.png": 10 * n + k for n, c in enumerate(("a", "b")) for k in range(10)})
    config = BaseDataConfig(folder=str(tmp_path), holdout_share=0.3, holdout_seed=4)
    first, again = load_base_data(config), load_base_data(config)
    assert sorted(first.holdout_labels) == ["a"] * 3 + ["b"] * 3
    assert _values(first.holdout_images) == _values(again.holdout_images)
    other = load_base_data(config.model_copy(update={"holdout_seed": 5}))
    assert _values(other.holdout_images) != _values(first.holdout_images)
    assert sorted(_values(first.train_images) + _values(first.holdout_images)) == list(range(20))


def test_a_labels_manifest_keeps_its_order_and_holdout_column(tmp_path: Path) -> None:
    _write(tmp_path, {"x/1.png": 1, "x/2.png": 2, "x/3.png": 3})
    (tmp_path / "labels.csv").write_text("file,label,holdout\nx/3.png,b,0\nx/1.png,a,no\nx/2.png,a,1\n")
    base = load_base_data(BaseDataConfig(folder=str(tmp_path)))
    assert (base.train_labels, _values(base.train_images)) == (["b", "a"], [3, 1])
    assert (base.holdout_labels, _values(base.holdout_images)) == (["a"], [2])


def test_a_manifest_file_reads_files_beside_it(tmp_path: Path) -> None:
    _write(tmp_path, {"img/1.png": 1, "img/2.png": 2, "img/3.png": 3, "img/4.png": 4})
    manifest = tmp_path / "set.csv"
    manifest.write_text("file,label\nimg/1.png,a\nimg/2.png,b\nimg/3.png,a\nimg/4.png,b\n")
    base = load_base_data(BaseDataConfig(manifest=str(manifest), holdout_share=0.5))
    assert sorted(base.train_labels) == sorted(base.holdout_labels) == ["a", "b"]


def test_a_blob_prefix_in_the_data_container() -> None:
    data = MemoryContainer("data")
    for name, value in {
        "cat/a.png": 1,
        "dog/b.png": 2,
        "holdout/cat/c.png": 3,
        "holdout/dog/d.png": 4,
    }.items():
        data.write(f"base/pets/{name}", _png(value))
    data.write("base/other/cat/z.png", _png(9))
    config = BaseDataConfig(blob_prefix="base/pets")
    base = load_base_data(config, data=data, data_container="data")
    assert (base.train_labels, _values(base.train_images)) == (["cat", "dog"], [1, 2])
    assert _values(base.holdout_images) == [3, 4]
    assert base.description["source"] == "blob:data/base/pets"


@pytest.mark.parametrize(
    ("files", "csv", "extra", "expected"),
    [
        ({}, None, {}, "holds no images"),
        ({"cat/a.png": 1}, None, {"classes": ["dog"]}, "unknown classes ['cat']"),
        (
            {"cat/a.png": 1, "dog/b.png": 2},
            "file,label\ncat/a.png,cat\ndog/gone.png,dog\n",
            {},
            "gone.png does not",
        ),
        ({"cat/a.png": 1}, "file,label,holdout\ncat/a.png,cat,maybe\n", {}, "holdout 'maybe'"),
        ({"cat/a.png": 1}, "name,class\ncat/a.png,cat\n", {}, "columns file,label"),
        ({"cat/a.png": 1, "holdout/dog/b.png": 2}, None, {}, "hold-out classes ['dog'] have no training"),
    ],
)
def test_bad_base_data_is_refused_naming_the_setting_and_the_problem(
    tmp_path: Path, files: dict[str, int], csv: str | None, extra: dict[str, object], expected: str
) -> None:
    _write(tmp_path, files)
    if csv is not None:
        (tmp_path / "labels.csv").write_text(csv)
    with pytest.raises(BaseDataError) as caught:
        load_base_data(BaseDataConfig(folder=str(tmp_path), **extra))  # type: ignore[arg-type]
    assert str(caught.value).startswith("training.base_data")
    assert expected in str(caught.value)


def test_a_missing_folder_and_an_unreadable_image_are_named(tmp_path: Path) -> None:
    with pytest.raises(BaseDataError, match=r"training\.base_data\.folder .*nowhere' does not exist"):
        load_base_data(BaseDataConfig(folder=str(tmp_path / "nowhere")))
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(b"not a png")
    with pytest.raises(BaseDataError, match=r"unreadable image cat/a\.png"):
        load_base_data(BaseDataConfig(folder=str(tmp_path)))


def test_the_setting_names_exactly_one_source(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    path.write_text('{"training": {"base_data": {"folder": "a", "manifest": "b.csv"}}}')
    with pytest.raises(
        ConfigError, match="exactly one of folder, blob_prefix or manifest, got folder, manifest"
    ):
        CloudConfig.load(path)
    path.write_text('{"training": {"base_data": {"folder": "a", "share": 0.1}}}')
    with pytest.raises(ConfigError, match="share"):
        CloudConfig.load(path)


def test_unset_there_is_no_base_set() -> None:
    base = load_base_data(None)
    assert base == BaseSet.none()
    assert base.train_images == base.holdout_images == []
    assert "trains on the labelled samples alone" in str(base.description["note"])


def test_the_demo_folder_reads_back_as_the_scenario_frames_and_split() -> None:
    loaded = load_base_data(BaseDataConfig(folder=str(digits_base_folder())))
    rendered = digits_base_set(seed=7)
    assert loaded.train_labels == rendered.train_labels
    assert loaded.holdout_labels == rendered.holdout_labels
    assert (len(loaded.train_images), len(loaded.holdout_images)) == (500, 400)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.train_images, rendered.train_images, strict=True))
    assert all(
        np.array_equal(a, b) for a, b in zip(loaded.holdout_images, rendered.holdout_images, strict=True)
    )
