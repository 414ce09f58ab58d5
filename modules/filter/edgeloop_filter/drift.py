"""Drift statistics: rolling histograms of top-1 confidence and of predicted class against a
reference, compared by the population stability index (PSI).

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares floored at a
small epsilon. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a real shift.
"""

from __future__ import annotations

import math
from collections import Counter, deque

from edgeloop_filter.policy import Drift

EPSILON = 1e-4


def psi(expected: dict[str, float] | list[float], actual: dict[str, float] | list[float]) -> float:
    """PSI between two distributions given as shares (lists by bin or dicts by key)."""
    if isinstance(expected, list) and isinstance(actual, list):
        pairs = list(zip(expected, actual, strict=True))
    else:
        e = dict(enumerate(expected)) if isinstance(expected, list) else expected
        a = dict(enumerate(actual)) if isinstance(actual, list) else actual
        pairs = [(e.get(k, 0.0), a.get(k, 0.0)) for k in set(e) | set(a)]  # type: ignore[call-overload]
    total = 0.0
    for exp, act in pairs:
        exp, act = max(exp, EPSILON), max(act, EPSILON)
        total += (act - exp) * math.log(act / exp)
    return total


def _shares(counts: list[int] | Counter[str], n: int) -> list[float] | dict[str, float]:
    if isinstance(counts, list):
        return [c / n for c in counts] if n else [0.0] * len(counts)
    return {k: v / n for k, v in counts.items() if v} if n else {}


class DriftMonitor:
    """Feeds one (confidence, label) per scored sample; ``psi()`` compares window and reference."""

    def __init__(self, config: Drift) -> None:
        self.config = config
        self.bins = config.bins
        self.model_version: str | None = None
        self._window: deque[tuple[int, str]] = deque()
        self._conf = [0] * self.bins
        self._classes: Counter[str] = Counter()
        self._ref_conf: list[float] | None = None
        self._ref_classes: dict[str, float] | None = None
        self._building: tuple[list[int], Counter[str], list[int]] | None = None
        self._observed = 0
        self._high_at = -1
        self._high = False
        self._detected_at = -1
        self._detected = False
        self._reset_reference()

    def _reset_reference(self) -> None:
        ref = self.config.reference
        if ref is not None:
            total = sum(ref.confidence) or 1.0
            self._ref_conf = [v / total for v in ref.confidence]
            ctotal = sum(ref.classes.values()) or 1.0
            self._ref_classes = {k: v / ctotal for k, v in ref.classes.items()} if ref.classes else None
            self._building = None
        else:
            self._ref_conf, self._ref_classes = None, None
            self._building = ([0] * self.bins, Counter(), [0])

    def observe(self, confidence: float, label: str, model_version: str | None) -> None:
        self._observed += 1
        if model_version != self.model_version:
            # A new model has its own confidence profile: start over against a fresh reference.
            self.model_version = model_version
            self._window.clear()
            self._conf = [0] * self.bins
            self._classes.clear()
            if self.config.reference is None:
                self._reset_reference()
        b = min(int(confidence * self.bins), self.bins - 1)
        if self._building is not None:
            conf, classes, n = self._building
            conf[b] += 1
            classes[label] += 1
            n[0] += 1
            if n[0] >= self.config.reference_samples:
                self._ref_conf = [c / n[0] for c in conf]
                self._ref_classes = {k: v / n[0] for k, v in classes.items()}
                self._building = None
            return
        self._window.append((b, label))
        self._conf[b] += 1
        self._classes[label] += 1
        if len(self._window) > self.config.window:
            old_b, old_label = self._window.popleft()
            self._conf[old_b] -= 1
            self._classes[old_label] -= 1

    @property
    def ready(self) -> bool:
        return self._ref_conf is not None and len(self._window) >= min(self.config.window, 50)

    def psi(self) -> dict[str, float]:
        """``psi_confidence`` and ``psi_class`` (when a class reference exists); empty until
        there is a reference and enough samples in the window."""
        if not self.ready or self._ref_conf is None:
            return {}
        n = len(self._window)
        out = {
            "psi_confidence": round(psi(self._ref_conf, _shares(self._conf, n)), 4),
            "window_samples": float(n),
        }
        if self._ref_classes:
            out["psi_class"] = round(psi(self._ref_classes, _shares(self._classes, n)), 4)
        return out

    def high(self) -> bool:
        """Whether either PSI is above the boost threshold; recomputed every 20 samples."""
        boost = self.config.boost
        if boost is None:
            return False
        if self._high_at < 0 or self._observed - self._high_at >= 20:
            stats = self.psi()
            self._high = max(stats.get("psi_confidence", 0.0), stats.get("psi_class", 0.0)) > boost.psi_above
            self._high_at = self._observed
        return self._high

    def detected(self) -> bool:
        """Whether either PSI is at or above ``psi_above`` (rules use their drift shares then);
        recomputed every 20 samples."""
        if self._detected_at < 0 or self._observed - self._detected_at >= 20:
            stats = self.psi()
            peak = max(stats.get("psi_confidence", 0.0), stats.get("psi_class", 0.0))
            self._detected = bool(stats) and peak >= self.config.psi_above
            self._detected_at = self._observed
        return self._detected
