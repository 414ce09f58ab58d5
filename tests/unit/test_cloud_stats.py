"""The gate's paired statistics: exact binomial tails, McNemar, intervals, Wilson, bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edgeloop_cloud.stats import binom_cdf, binom_sf, clopper_pearson, compare, wilson


def _sf_by_hand(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 5, 0.3), (3, 10, 0.5), (7, 8, 0.5), (12, 40, 0.2), (40, 40, 0.9)]
)
def test_binomial_tails_match_the_sum_of_terms(k: int, n: int, p: float) -> None:
    assert binom_sf(k, n, p) == pytest.approx(_sf_by_hand(k, n, p), rel=1e-9)
    assert binom_cdf(k, n, p) == pytest.approx(1 - _sf_by_hand(k + 1, n, p), rel=1e-9, abs=1e-12)


def test_binomial_tail_stays_finite_for_large_n() -> None:
    # math.comb(2000, 1000) overflows a float: the log-space sum must not
    assert binom_sf(1000, 2000, 0.5) == pytest.approx(0.5 + 0.5 * math.exp(
        math.lgamma(2001) - 2 * math.lgamma(1001) - 2000 * math.log(2)), rel=1e-6)  # fmt: skip


def test_mcnemar_exact_p_value_is_the_binomial_tail_of_discordant_items() -> None:
    # given: 7 items only the candidate gets right, 1 only the champion, 32 both or neither
    candidate = [True] * 7 + [False] * 1 + [True] * 20 + [False] * 12
    champion = [False] * 7 + [True] * 1 + [True] * 20 + [False] * 12
    # when
    result = compare(candidate, champion)
    # then: P(X >= 7 | 8, 1/2) = 9/256
    assert (result.gains, result.losses, result.n) == (7, 1, 40)
    assert result.p_better == pytest.approx(9 / 256)
    assert result.p_worse == pytest.approx(255 / 256)
    assert result.difference == pytest.approx(6 / 40)
    doc = result.as_dict()
    assert doc["test"] == "mcnemar_exact"
    assert doc["n"] == 40
    assert doc["interval"][0] < doc["difference"] < doc["interval"][1]


def test_clopper_pearson_known_bounds() -> None:
    # with 0 of 10 the one-sided 95% upper bound solves (1 - p)^10 = 0.05
    assert clopper_pearson(0, 10, 0.95) == pytest.approx((0.0, 1 - 0.05 ** (1 / 10)), abs=1e-9)
    lo, hi = clopper_pearson(5, 10, 0.95)
    assert binom_sf(5, 10, lo) == pytest.approx(0.05, abs=1e-9)
    assert binom_cdf(5, 10, hi) == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_exact_lower_bound_clears_zero_exactly_when_mcnemar_rejects(confidence: float) -> None:
    # the interval and the test never disagree, whatever the counts
    for gains in range(15):
        for losses in range(15):
            ties = 30
            cand = [True] * gains + [False] * losses + [True] * ties
            champ = [False] * gains + [True] * losses + [True] * ties
            result = compare(cand, champ, confidence=confidence)
            assert (result.interval[0] > 0) == (result.p_better < 1 - confidence), (gains, losses)
            assert (result.interval[1] < 0) == (result.p_worse < 1 - confidence), (gains, losses)


def test_bootstrap_interval_is_seeded_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(3)
    champ = rng.random(400) < 0.6
    cand = champ | (rng.random(400) < 0.2)
    # when
    first = compare(cand, champ, method="bootstrap", seed=11)
    again = compare(cand, champ, method="bootstrap", seed=11)
    small = compare(cand[:50], champ[:50], method="bootstrap", seed=11)
    # then
    assert first == again
    assert first.interval[0] <= first.difference <= first.interval[1]
    assert first.interval[1] - first.interval[0] < small.interval[1] - small.interval[0]
    assert first.interval_method == "bootstrap"


def test_identical_models_have_a_zero_interval() -> None:
    result = compare([True, False, True], [True, False, True])
    assert result.interval == (0.0, 0.0)
    assert result.p_better == 1.0


def test_compare_refuses_different_items() -> None:
    with pytest.raises(ValueError, match="same items"):
        compare([True, True], [True])


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson(8, 10, 0.95)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 20)[0] == pytest.approx(0.0, abs=1e-12)
