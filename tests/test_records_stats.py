"""The three statistics the records need, against their formulas and by enumeration."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from pytest_insidellms.stats import pass_at_k, pass_hat_k, wilson_interval

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_by_formula(s: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The spec's formula: centre (p + z^2/2n) / (1 + z^2/n), half-width
    z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)."""
    p = s / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("s", "n"), [(1, 2), (8, 10), (40, 50), (80, 100), (160, 200),
                                      (3, 1000), (999, 1000)])
def test_wilson_interval_follows_the_formula(s: int, n: int) -> None:
    lower, upper = wilson_interval(s, n)
    expected = wilson_by_formula(s, n)
    assert lower == pytest.approx(expected[0], abs=1e-12)
    assert upper == pytest.approx(expected[1], abs=1e-12)


def test_wilson_interval_of_8_out_of_10_is_the_textbook_one() -> None:
    # By hand: centre (0.8 + 0.19208) / 1.38416 = 0.71674, half-width
    # 1.96 / 1.38416 * sqrt(0.016 + 0.009604) = 0.22658.
    lower, upper = wilson_interval(8, 10)
    assert (round(lower, 3), round(upper, 3)) == (0.490, 0.943)


def test_wilson_interval_ends_are_exact_and_inside_0_1() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lower, upper = wilson_interval(0, 20)
    assert lower == 0.0 and upper == pytest.approx(wilson_by_formula(0, 20)[1])
    lower, upper = wilson_interval(20, 20)
    assert upper == 1.0 and lower == pytest.approx(wilson_by_formula(20, 20)[0])


def test_wilson_interval_other_confidence_uses_its_own_quantile() -> None:
    z99 = 2.5758293035489004
    lower, upper = wilson_interval(30, 60, confidence=0.99)
    assert (lower, upper) == pytest.approx(wilson_by_formula(30, 60, z99), abs=1e-12)
    assert upper - lower > wilson_interval(30, 60)[1] - wilson_interval(30, 60)[0]


@pytest.mark.parametrize(("s", "n", "confidence"), [(-1, 3, 0.95), (4, 3, 0.95), (1, 3, 1.0),
                                                    (1, 3, 0.0)])
def test_wilson_interval_refuses_impossible_counts(s: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(s, n, confidence)


def enumerate_k(n: int, c: int, k: int) -> tuple[Fraction, Fraction]:
    """Over every k-subset of n attempts (the first c of them passing): the share with at
    least one pass, and the share with only passes."""
    attempts = [i < c for i in range(n)]
    subsets = list(itertools.combinations(attempts, k))
    any_pass = sum(any(s) for s in subsets)
    all_pass = sum(all(s) for s in subsets)
    return Fraction(any_pass, len(subsets)), Fraction(all_pass, len(subsets))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_and_pass_hat_k_match_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            at_least_one, all_of_them = enumerate_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(float(at_least_one), abs=1e-12)
            assert pass_hat_k(n, c, k) == pytest.approx(float(all_of_them), abs=1e-12)


def test_pass_at_1_is_the_pass_rate() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_hat_k(10, 3, 1) == pytest.approx(0.3)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_trial_estimators_refuse_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
    with pytest.raises(ValueError):
        pass_hat_k(n, c, k)
