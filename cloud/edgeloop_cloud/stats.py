"""Paired statistics for the gate: two models scored on the same items.

On each item a model is right or wrong; what tells two models apart are the *discordant*
items, where exactly one of them is right (``gains``: only the candidate, ``losses``: only the
champion). Under "no difference" each discordant item is a fair coin, so McNemar's exact test
is a binomial test on them. The accuracy difference is ``(gains - losses) / n``; its interval
comes either from the exact (Clopper-Pearson) interval of the gain share among discordant
items, which agrees with the exact test by construction, or from a seeded paired bootstrap.

Every bound is one-sided at ``confidence``: the lower end is a ``confidence`` lower bound of
the gain and the upper end a ``confidence`` upper bound (together a two-sided interval at
``2 * confidence - 1``). Pure Python and numpy: ``math.lgamma`` for the binomial tails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

IntervalMethod = Literal["mcnemar_exact", "bootstrap"]


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    log_comb = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return log_comb + k * math.log(p) + (n - k) * math.log1p(-p)


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    terms = [_log_pmf(i, n, p) for i in range(k, n + 1)]
    top = max(terms)
    if top == -math.inf:
        return 0.0
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return binom_sf(n - k, n, 1.0 - p)


def _solve(increasing: Any, target: float) -> float:
    """The p in [0, 1] where the increasing function ``increasing(p)`` crosses ``target``."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if increasing(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided exact bounds (each at ``confidence``) of a binomial proportion from k of n."""
    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lower = 0.0 if k == 0 else _solve(lambda p: binom_sf(k, n, p), alpha)
    upper = 1.0 if k == n else _solve(lambda p: -binom_cdf(k, n, p), -alpha)
    return lower, upper


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (two-sided at ``confidence``) of a proportion k of n."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against champion on the same ``n`` items."""

    n: int
    gains: int  # items only the candidate gets right
    losses: int  # items only the champion gets right
    candidate_accuracy: float
    champion_accuracy: float
    difference: float  # candidate - champion accuracy
    interval: tuple[float, float]  # one-sided bounds of the difference, each at ``confidence``
    confidence: float
    interval_method: str
    p_better: float  # McNemar exact, one-sided: P(>= gains of the discordant items) under no difference
    p_worse: float  # the same for losses

    @property
    def discordant(self) -> int:
        return self.gains + self.losses

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "gains": self.gains,
            "losses": self.losses,
            "candidate_accuracy": round(self.candidate_accuracy, 6),
            "champion_accuracy": round(self.champion_accuracy, 6),
            "difference": round(self.difference, 6),
            "interval": [round(self.interval[0], 6), round(self.interval[1], 6)],
            "confidence": self.confidence,
            "interval_method": self.interval_method,
            "test": "mcnemar_exact",
            "p_value": round(self.p_better, 6),
            "p_worse": round(self.p_worse, 6),
        }

    def describe(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.difference:+.3f} [{lo:+.3f}, {hi:+.3f}] on {self.n} items "
            f"({self.gains} gained, {self.losses} lost, McNemar p={self.p_better:.3g})"
        )


def compare(
    candidate_correct: Sequence[bool],
    champion_correct: Sequence[bool],
    *,
    confidence: float = 0.95,
    method: IntervalMethod = "mcnemar_exact",
    resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Paired comparison of two models' per-item correctness (same items, same order).

    Raises:
        ValueError: the two sequences differ in length.
    """
    cand = np.asarray(candidate_correct, dtype=bool)
    champ = np.asarray(champion_correct, dtype=bool)
    if cand.shape != champ.shape:
        raise ValueError(f"paired comparison needs the same items: {cand.shape} vs {champ.shape}")
    n = int(cand.size)
    gains, losses = int((cand & ~champ).sum()), int((~cand & champ).sum())
    diff = (gains - losses) / n if n else 0.0
    if method == "bootstrap":
        interval = _bootstrap(n, gains, losses, confidence, resamples, seed)
    else:
        interval = _exact_interval(n, gains, losses, confidence)
    m = gains + losses
    return PairedComparison(
        n=n,
        gains=gains,
        losses=losses,
        candidate_accuracy=float(cand.mean()) if n else 0.0,
        champion_accuracy=float(champ.mean()) if n else 0.0,
        difference=diff,
        interval=interval,
        confidence=confidence,
        interval_method=method,
        p_better=binom_sf(gains, m, 0.5),
        p_worse=binom_sf(losses, m, 0.5),
    )


def _exact_interval(n: int, gains: int, losses: int, confidence: float) -> tuple[float, float]:
    """Bounds of the difference from the exact bounds of the gain share among discordant items
    (the discordant share taken as observed): the lower bound is above 0 exactly when
    McNemar's one-sided exact test rejects "no difference" at ``1 - confidence``."""
    m = gains + losses
    if n == 0 or m == 0:
        return 0.0, 0.0
    lo, hi = clopper_pearson(gains, m, confidence)
    return (m / n) * (2 * lo - 1), (m / n) * (2 * hi - 1)


def _bootstrap(
    n: int, gains: int, losses: int, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bounds of the resampled difference. Resampling n items with replacement is a
    multinomial draw of (gains, losses, ties) counts, so this is exact and cheap."""
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    probs = [gains / n, losses / n, (n - gains - losses) / n]
    counts = rng.multinomial(n, probs, size=resamples)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    return float(np.quantile(diffs, 1 - confidence)), float(np.quantile(diffs, confidence))
