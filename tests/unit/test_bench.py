"""The benchmarks' pure helpers: percentiles, gains, chunks, and the run-all summary lines."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import BENCHES
from bench.learning import chunks, gain_per_100, share_of_gain
from bench.rig import percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        (list(map(float, range(1, 101))), 95, 95.05),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    # given / when
    result = percentile(values, q)
    # then
    assert result == pytest.approx(expected)


def test_percentile_of_nothing_is_an_error() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize(
    ("before", "after", "samples", "expected"),
    [
        (0.40, 0.60, 80, 25.0),  # 20 points over 80 samples
        (0.40, 0.80, 800, 5.0),
        (0.50, 0.45, 100, -5.0),
        (0.50, 0.90, 0, 0.0),
    ],
)
def test_gain_per_100_is_accuracy_points_per_hundred_uploads(
    before: float, after: float, samples: int, expected: float
) -> None:
    # given / when
    result = gain_per_100(before, after, samples)
    # then
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("before", "after", "everything", "expected"),
    [(0.4, 0.6, 0.8, 0.5), (0.4, 0.8, 0.8, 1.0), (0.4, 0.3, 0.8, -0.25), (0.4, 0.6, 0.4, 0.0)],
)
def test_share_of_gain_compares_with_uploading_everything(
    before: float, after: float, everything: float, expected: float
) -> None:
    # given / when
    result = share_of_gain(before, after, everything)
    # then
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(("n", "parts"), [(800, 3), (10, 3), (9, 3), (2, 3)])
def test_chunks_cover_the_stream_in_order_without_overlap(n: int, parts: int) -> None:
    # given / when
    pieces = chunks(n, parts)
    # then
    assert len(pieces) == parts
    assert [i for piece in pieces for i in piece] == list(range(n))
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_every_benchmark_summary_reads_its_ratio() -> None:
    # given: results shaped as each benchmark writes them
    results: dict[str, dict[str, Any]] = {
        "capture": {"capture_fps_median": 90.0, "ratio": 0.9},
        "inference": {"module_samples_per_s": 900.0, "module_over_bare": 0.9},
        "filter": {"decisions_per_s": {"five_strategies": 30000.0}, "ratio_five_to_fixed": 0.5},
        "uploader": {"uploader_files_per_s": 100.0, "ratio": 0.9},
        "frames": {"jpeg": {"total_ms": 6.0}, "raw": {"total_ms": 4.5}, "ratio_raw_to_jpeg": 0.75},
        "devhub": {
            "throughput": [{"messages_per_s": 800.0, "hub_to_sender_cpu": 0.5}],
            "round_trip": {"rtt_p50_ms": 2.6},
        },
        "cloud": {
            "share_of_gain": {"rounds_margin": 0.7, "one_shot_random": 0.6},
            "timings": {"train_and_export_s": 1.5},
        },
        "pipeline": {
            "pipeline": {
                "frames_per_s": 300.0,
                "fps_asked": 1000.0,
                "latency_ms": {"capture_to_decision_selected": {"p50": 90.0, "p95": 160.0}},
            },
            "paced": {
                "fps_asked": 100.0,
                "latency_ms": {"capture_to_decision_selected": {"p50": 20.0, "p95": 45.0}},
            },
            "bare": {"frames_per_s": 1500.0},
            "ratio_pipeline_to_bare": 0.2,
        },
        "camera": {
            "bare": {"frames_per_s": 150.0, "cpu_ms_per_frame": 5.5},
            "runs": {
                "jpeg-saturated": {
                    "pace": None,
                    "frames_per_s": 60.0,
                    "ratio_to_bare": 0.4,
                    "cpu_ms_per_frame": {"capture": 8.0, "inference": 6.0},
                },
                "jpeg-15fps": {"pace": 15.0, "frames_per_s": 15.0, "ratio_to_bare": 1.0},
                "raw-15fps": {"pace": 15.0, "store": "raw", "frames_per_s": 15.0, "ratio_to_bare": 0.98},
            },
        },
        "learning": {
            "headline": {
                "policy_share_mean": 0.9,
                "policy_share_worst_cell": 0.7,
                "random_share_mean": 0.6,
                "oracle_share_mean": 1.0,
                "points_over_random_mean": 30.0,
            }
        },
    }
    # when
    lines = {b.name: b.headline(results[b.name]) for b in BENCHES}
    # then
    assert set(lines) == set(results)
    assert "0.20x" in lines["pipeline"][0]
    assert "p50 20 ms" in lines["pipeline"][0]
    assert lines["pipeline"][1]["latency_p95_ms"] == 45.0
    expected = "90% of the upload-everything gain (worst cell 70%), +30.0 accuracy points over random"
    assert expected in lines["learning"][0]
    assert "0.40x a bare loop (150/s); paced 15/s 1.00x, raw 15/s 0.98x" in lines["camera"][0]
    assert lines["camera"][1]["cpu_ms_per_frame_all"] == 14.0
    assert "raw 4.50 ms CPU a frame = 0.75x jpeg (6.00 ms)" in lines["frames"][0]


def test_the_work_folder_report_names_the_folder_and_warns_when_a_create_is_slow(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import workdir

    found = workdir.describe(tmp_path)
    assert found["folder"] == str(tmp_path)
    assert 0 <= found["create_cpu_ms"] < 50  # getrusage ticks may round a fast disk to 0
    assert list(tmp_path.iterdir()) == []  # its files are removed
    assert "slow" not in workdir.line({**found, "create_cpu_ms": 0.03})
    assert "slow" in workdir.line({**found, "create_cpu_ms": 0.9})
    # the folder is TMPDIR's when none is given, as the benchmarks' own folders are
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    assert workdir.describe()["folder"] == str(tmp_path)
