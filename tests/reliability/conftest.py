"""The reliability suite's ledger: what each test injected, tried and lost, summed into one table.

Tests record through the ``ledger`` fixture (or ``reliability`` in hypothesis tests, where a
function-scoped fixture would be shared by every example)::

    ledger.record(faults=3, inputs=400, lost=0)   # counted under this file's area

At the end of the run the table is printed (``pytest_terminal_summary``) and written as JSON to
``.edgeloop/reliability-summary.json``. Record *before* asserting, so the table shows what was
measured even when a test fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

SUMMARY_PATH = REPO_ROOT / ".edgeloop" / "reliability-summary.json"
_HERE = Path(__file__).resolve().parent


@dataclass
class AreaTotals:
    """Totals of one area (one test file: ``faults: uploader``, ``fuzz: route WHERE``...)."""

    tests_passed: int = 0
    tests_failed: int = 0
    tests_skipped: int = 0
    tests_xfailed: int = 0
    faults_injected: int = 0
    inputs_tried: int = 0
    samples_lost: int = 0
    notes: list[str] = field(default_factory=list)


class Ledger:
    """Every record of the run, by area."""

    def __init__(self) -> None:
        self.areas: dict[str, AreaTotals] = {}
        self.started = time.monotonic()

    def area(self, name: str) -> AreaTotals:
        return self.areas.setdefault(name, AreaTotals())

    def record(self, area: str, *, faults: int = 0, inputs: int = 0, lost: int = 0, note: str = "") -> None:
        totals = self.area(area)
        totals.faults_injected += faults
        totals.inputs_tried += inputs
        totals.samples_lost += lost
        if note and note not in totals.notes:
            totals.notes.append(note)

    def totals(self) -> AreaTotals:
        total = AreaTotals()
        for area in self.areas.values():
            total.tests_passed += area.tests_passed
            total.tests_failed += area.tests_failed
            total.tests_skipped += area.tests_skipped
            total.tests_xfailed += area.tests_xfailed
            total.faults_injected += area.faults_injected
            total.inputs_tried += area.inputs_tried
            total.samples_lost += area.samples_lost
        return total

    def table(self) -> list[str]:
        header = ("area", "tests", "faults injected", "inputs tried", "samples lost")
        rows = [header]
        for name, t in sorted(self.areas.items()):
            rows.append((name, _tests(t), str(t.faults_injected), str(t.inputs_tried), str(t.samples_lost)))
        total = self.totals()
        rows.append(
            (
                "total",
                _tests(total),
                str(total.faults_injected),
                str(total.inputs_tried),
                str(total.samples_lost),
            )
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            return "| " + " | ".join(cells) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return [line(rows[0]), rule, *(line(r) for r in rows[1:])]

    def as_json(self) -> dict[str, Any]:
        return {
            "duration_s": round(time.monotonic() - self.started, 1),
            "areas": {name: asdict(t) for name, t in sorted(self.areas.items())},
            "total": asdict(self.totals()),
        }


def _tests(t: AreaTotals) -> str:
    text = f"{t.tests_passed} passed"
    if t.tests_failed:
        text += f", {t.tests_failed} failed"
    if t.tests_xfailed:
        text += f", {t.tests_xfailed} xfailed"
    if t.tests_skipped:
        text += f", {t.tests_skipped} skipped"
    return text


_LEDGER_KEY = pytest.StashKey[Ledger]()


def area_of(path: Path | str) -> str:
    """``test_faults_uploader.py`` -> ``faults: uploader``."""
    stem = Path(path).stem.removeprefix("test_")
    kind, _, topic = stem.partition("_")
    kind = {"bad": "bad input", "faults": "faults", "security": "security", "fuzz": "fuzz"}.get(kind, kind)
    if kind == "bad input":
        topic = topic.removeprefix("input_")
    return f"{kind}: {topic.replace('_', ' ')}" if topic else kind


def _ledger(config: pytest.Config) -> Ledger:
    if _LEDGER_KEY not in config.stash:
        config.stash[_LEDGER_KEY] = Ledger()
    return config.stash[_LEDGER_KEY]


class AreaLedger:
    """The ledger as one test file sees it: records go to the file's area."""

    def __init__(self, ledger: Ledger, area: str) -> None:
        self._ledger = ledger
        self.area = area

    def record(self, *, faults: int = 0, inputs: int = 0, lost: int = 0, note: str = "") -> None:
        self._ledger.record(self.area, faults=faults, inputs=inputs, lost=lost, note=note)


@pytest.fixture(scope="module")
def reliability(request: pytest.FixtureRequest) -> AreaLedger:
    """This file's ledger; safe in hypothesis tests (one per module, not per example)."""
    return AreaLedger(_ledger(request.config), area_of(request.path))


@pytest.fixture
def ledger(reliability: AreaLedger) -> AreaLedger:
    return reliability


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Count outcomes per area (only items under this folder reach this conftest's hook)."""
    report: pytest.TestReport = yield
    totals = _ledger(item.config).area(area_of(item.path))
    if report.when == "call":
        if report.passed:
            totals.tests_passed += 1
        elif report.failed:
            totals.tests_failed += 1
        elif hasattr(report, "wasxfail"):
            totals.tests_xfailed += 1
        else:
            totals.tests_skipped += 1
    elif report.when == "setup" and report.skipped:
        totals.tests_skipped += 1
    elif report.failed:  # an error in setup or teardown
        totals.tests_failed += 1
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ledger = _ledger(config)
    if not ledger.areas:
        return
    terminalreporter.section("reliability summary")
    for line in ledger.table():
        terminalreporter.write_line(line)
    try:
        SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
        SUMMARY_PATH.write_text(json.dumps(ledger.as_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        terminalreporter.write_line(f"(could not write {SUMMARY_PATH}: {exc})")
        return
    terminalreporter.write_line(f"written to {SUMMARY_PATH.relative_to(REPO_ROOT)}")


# Process-level fixtures shared with the integration suite: dev hubs, module processes, Azurite.
from tests.integration.azurite_fixtures import azurite  # noqa: E402, F401
from tests.integration.conftest import dev_hub, loopback_address, module_process  # noqa: E402, F401


@pytest.fixture(scope="session")
def cloud_private_key() -> Any:
    """The cloud's envelope key pair for process-level tests (the device gets the public half)."""
    from edgeloop.envelope import generate_private_key

    return generate_private_key()
