"""The gate's statistics, each checked against a value the test computes its own way: binomial
tails summed from math.comb, Wilson bounds from the score equation, pass@k by enumerating
subsets, Holm by closed testing, the bootstrap against its documented stream and normal theory.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import statistics
from fractions import Fraction
from typing import Any

import pytest

from pytest_insidellms.gate import CountRule, parse_rule
from pytest_insidellms.stats import (
    BootstrapResult,
    holm_adjusted,
    holm_bonferroni,
    mcnemar_regression_p,
    mde_mean_difference,
    mde_paired,
    mde_rate,
    normal_cdf,
    normal_quantile,
    paired_bootstrap,
    paired_drop_p,
    paired_rate_difference,
    pass_at_k,
    pass_hat_k,
    rate_score_p,
    wilson_interval,
)

NORMAL = statistics.NormalDist()


def _binomial_tail(m: int, b: int) -> float:
    """P(X >= b) for X ~ Binomial(m, 1/2), as one exact fraction rounded once (summing the
    shorter side: the complement is exact too)."""
    if b > m // 2:
        count = sum(math.comb(m, i) for i in range(b, m + 1))
    else:
        count = 2 ** m - sum(math.comb(m, i) for i in range(b))
    return float(Fraction(count, 2 ** m))


# --- the normal distribution -----------------------------------------------------------------

@pytest.mark.parametrize("p", [1e-300, 1e-100, 1e-20, 1e-9, 1e-4, 0.001, 0.0125, 0.02425,
                               0.025, 0.05, 0.1, 0.25, 0.5, 0.6, 0.8, 0.95, 0.975, 0.97575,
                               0.999, 1 - 1e-9, 1 - 1e-15])
def test_normal_quantile_matches_the_standard_library(p: float) -> None:
    expected = NORMAL.inv_cdf(p)
    assert normal_quantile(p) == pytest.approx(expected, rel=1e-13, abs=1e-14)


def test_normal_quantile_inverts_the_cdf_on_a_fine_grid() -> None:
    worst = max(abs(normal_quantile(i / 10_000) - NORMAL.inv_cdf(i / 10_000))
                for i in range(1, 10_000))
    assert worst < 1e-13
    for x in (-3.0, -1.0, 0.0, 0.5, 2.0, 6.0):
        assert normal_cdf(x) == pytest.approx(NORMAL.cdf(x), rel=1e-12)


def test_normal_cdf_keeps_its_digits_in_the_far_tail() -> None:
    # NormalDist.cdf goes through 1 + erf and loses the tail; the Mills-ratio series does not.
    for x in (8.0, 12.0, 20.0):
        density = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        series = density / x * (1 - 1 / x**2 + 3 / x**4 - 15 / x**6 + 105 / x**8)
        assert normal_cdf(-x) == pytest.approx(series, rel=1e-6)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_normal_quantile_refuses_probabilities_outside_the_open_interval(p: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        normal_quantile(p)


# --- Wilson and the score test ---------------------------------------------------------------

def _wilson_from_spec(successes: int, n: int, confidence: float) -> tuple[float, float]:
    z = NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_interval_follows_the_spec_formula(confidence: float) -> None:
    for n in (1, 2, 5, 20, 50, 100, 200, 1000):
        for successes in sorted({0, 1, n // 3, n // 2, (4 * n) // 5, n - 1, n}):
            low, high = wilson_interval(successes, n, confidence)
            expected_low, expected_high = _wilson_from_spec(successes, n, confidence)
            assert low == pytest.approx(max(0.0, expected_low), abs=1e-12)
            assert high == pytest.approx(min(1.0, expected_high), abs=1e-12)


def test_wilson_bounds_solve_the_score_equation() -> None:
    # A Wilson bound p0 is where the observed rate sits exactly z standard errors from p0.
    z = NORMAL.inv_cdf(0.975)
    for successes, n in [(1, 10), (16, 20), (80, 100), (160, 200), (3, 1000)]:
        p = successes / n
        for bound in wilson_interval(successes, n):
            assert (p - bound) ** 2 == pytest.approx(z * z * bound * (1 - bound) / n, rel=1e-9)


def test_wilson_edges_stay_informative() -> None:
    z2 = NORMAL.inv_cdf(0.975) ** 2
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(z2 / (20 + z2), rel=1e-12)
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low == pytest.approx(20 / (20 + z2), rel=1e-12)
    # The spec's figure: at p = 0.8 a 95% interval is about +-5.5 points at n = 200.
    low, high = wilson_interval(160, 200)
    assert (high - low) / 2 == pytest.approx(0.055, abs=0.002)


@pytest.mark.parametrize("args", [(5, 4), (-1, 4), (1.5, 4), (True, 4)])
def test_wilson_interval_rejects_impossible_counts(args: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError):
        wilson_interval(*args)


def test_rate_score_p_is_the_test_the_wilson_interval_inverts() -> None:
    alpha = 0.05
    for successes, n in [(12, 20), (80, 100), (150, 200), (999, 1000)]:
        low, high = wilson_interval(successes, n, confidence=1 - 2 * alpha)
        assert rate_score_p(successes, n, high, "less") == pytest.approx(alpha, rel=1e-9)
        assert rate_score_p(successes, n, low, "greater") == pytest.approx(alpha, rel=1e-9)
        p = successes / n
        z = (p - 0.9) / math.sqrt(0.9 * 0.1 / n)
        assert rate_score_p(successes, n, 0.9) == pytest.approx(NORMAL.cdf(z), rel=1e-12)


def test_rate_score_p_at_thresholds_without_variance() -> None:
    assert rate_score_p(19, 20, 1.0) == 0.0  # one failure proves the rate is below 1
    assert rate_score_p(20, 20, 1.0) == 1.0
    assert rate_score_p(0, 20, 0.0) == 1.0
    assert rate_score_p(1, 20, 0.0, "greater") == 0.0
    assert rate_score_p(0, 0, 0.5) == 1.0  # no cases, no evidence


# --- pass@k and pass^k -----------------------------------------------------------------------

def test_pass_at_k_and_pass_hat_k_match_enumerated_subsets() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            trials = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                draws = list(itertools.combinations(trials, k))
                any_correct = Fraction(sum(any(d) for d in draws), len(draws))
                all_correct = Fraction(sum(all(d) for d in draws), len(draws))
                assert pass_at_k(n, c, k) == float(any_correct), (n, c, k)
                assert pass_hat_k(n, c, k) == float(all_correct), (n, c, k)


def test_pass_at_one_is_the_plain_rate() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_hat_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(200, 199, 100) == 1.0 and pass_hat_k(200, 1, 2) == 0.0


@pytest.mark.parametrize(("args", "message"), [
    ((5, 2, 6), "k must be between 1 and n"),
    ((5, 2, 0), "k must be between 1 and n"),
    ((5, 6, 1), "cannot exceed n"),
    ((5, -1, 1), "must be >= 0"),
    ((5.0, 2, 1), "must be an integer"),
])
def test_pass_at_k_rejects_impossible_arguments(args: tuple[Any, Any, Any],
                                                message: str) -> None:
    for function in (pass_at_k, pass_hat_k):
        with pytest.raises(ValueError, match=message):
            function(*args)


# --- exact McNemar ---------------------------------------------------------------------------

def test_mcnemar_is_the_exact_binomial_tail() -> None:
    for b in range(0, 41):
        for c in range(0, 41):
            assert mcnemar_regression_p(b, c) == _binomial_tail(b + c, b), (b, c)


@pytest.mark.parametrize(("b", "c"), [(2100, 2000), (2000, 2100), (2600, 2400), (2550, 2540),
                                      (3000, 1000), (10, 5000)])
def test_mcnemar_stays_exact_past_the_full_summation_limit(b: int, c: int) -> None:
    assert mcnemar_regression_p(b, c) == pytest.approx(_binomial_tail(b + c, b), rel=1e-14,
                                                       abs=1e-300)


def test_mcnemar_handles_a_hundred_thousand_pairs() -> None:
    # Against the normal approximation with continuity correction, good to ~1e-6 here.
    for b in (50_000, 50_150, 50_400, 49_700):
        c = 100_000 - b
        z = (b - 0.5 - 50_000) / math.sqrt(25_000)
        assert mcnemar_regression_p(b, c) == pytest.approx(1 - NORMAL.cdf(z), abs=1e-6)
    assert mcnemar_regression_p(100_000, 0) == 0.0  # 2^-100000 underflows
    assert mcnemar_regression_p(0, 100_000) == 1.0


def test_one_flip_in_200_passes_the_statistics_but_fails_regressions_le_0() -> None:
    n, b, c = 200, 1, 0
    p = mcnemar_regression_p(b, c)
    assert p == 0.5 == _binomial_tail(1, 1)
    assert not holm_bonferroni([p], 0.05)[0]
    assert paired_drop_p(b, c, n) == p
    rule = parse_rule("regressions<=0", "--track-gate")
    assert isinstance(rule, CountRule) and not rule.holds(b)


def test_thirty_flips_in_200_fail_at_alpha_005() -> None:
    p = mcnemar_regression_p(30, 0)
    assert p == 2.0 ** -30 == _binomial_tail(30, 30)
    assert holm_bonferroni([p], 0.05) == [True]
    # Five one-way flips are the fewest the exact test can reject on at 0.05.
    assert mcnemar_regression_p(5, 0) == 1 / 32 < 0.05 < mcnemar_regression_p(4, 0)


# --- paired rates ----------------------------------------------------------------------------

def test_paired_rate_difference_is_the_mean_of_per_case_differences() -> None:
    z = NORMAL.inv_cdf(0.975)
    for b, c, n in [(3, 7, 50), (10, 2, 200), (0, 0, 20), (5, 5, 100), (20, 0, 20)]:
        differences = [-1] * b + [1] * c + [0] * (n - b - c)  # candidate minus baseline
        delta = statistics.fmean(differences)
        se = statistics.pstdev(differences) / math.sqrt(n)
        got_delta, low, high = paired_rate_difference(b, c, n)
        assert got_delta == pytest.approx(delta, abs=1e-15)
        assert low == pytest.approx(max(-1.0, delta - z * se), abs=1e-12)
        assert high == pytest.approx(min(1.0, delta + z * se), abs=1e-12)


def _tango_by_likelihood(b: int, c: int, n: int, margin: float) -> float:
    """Tango's corrected score test with q found by maximising the likelihood numerically."""
    def loglik(q: float) -> float:
        rest = n - b - c
        return (b * math.log(q + margin) + (c * math.log(q) if c else 0.0)
                + (rest * math.log(1 - 2 * q - margin) if rest else 0.0))
    low, high = 1e-15, (1 - margin) / 2 - 1e-15
    for _ in range(200):  # golden-section search; the log-likelihood is concave in q
        left, right = low + (high - low) * 0.382, high - (high - low) * 0.382
        if loglik(left) < loglik(right):
            low = left
        else:
            high = right
    q = (low + high) / 2
    z = (b - c - n * margin - 1) / math.sqrt(n * (2 * q + margin * (1 - margin)))
    return NORMAL.cdf(-z)


@pytest.mark.parametrize(("b", "c", "n", "margin"), [
    (30, 0, 200, 0.05), (12, 4, 100, 0.02), (5, 5, 50, 0.1), (0, 0, 200, 0.01),
    (40, 10, 300, 0.05), (1, 0, 200, 0.01), (60, 3, 80, 0.3),
])
def test_paired_drop_p_is_tangos_score_test(b: int, c: int, n: int, margin: float) -> None:
    assert paired_drop_p(b, c, n, margin) == pytest.approx(
        _tango_by_likelihood(b, c, n, margin), rel=1e-6, abs=1e-12)


def test_paired_drop_p_without_margin_is_exact_mcnemar_and_grows_with_the_margin() -> None:
    assert paired_drop_p(12, 4, 100) == mcnemar_regression_p(12, 4)
    ps = [paired_drop_p(12, 4, 100, m) for m in (0.0, 0.01, 0.02, 0.05, 0.1)]
    assert ps == sorted(ps)
    assert ps[-1] > 0.5  # the observed drop, 8 points, is inside a 10-point margin


def _rejection_rate(n: int, drop: float, fail_to_pass: float, margin: float,
                    alpha: float) -> float:
    """Exact probability, over every (b, c) table, that the test rejects H0: drop <= margin."""
    pass_to_fail = fail_to_pass + drop
    same = 1 - pass_to_fail - fail_to_pass
    total = 0.0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            if paired_drop_p(b, c, n, margin) <= alpha:
                log_p = (math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(c + 1)
                         - math.lgamma(n - b - c + 1) + b * math.log(pass_to_fail)
                         + c * math.log(fail_to_pass) + (n - b - c) * math.log(same))
                total += math.exp(log_p)
    return total


@pytest.mark.parametrize(("n", "margin", "fail_to_pass"), [
    (50, 0.05, 0.02), (100, 0.02, 0.01), (100, 0.1, 0.005), (200, 0.01, 0.005),
    (200, 0.05, 0.1),
])
def test_the_margin_test_fails_a_gate_no_more_often_than_alpha(n: int, margin: float,
                                                               fail_to_pass: float) -> None:
    # The true drop sits exactly on the margin: every rejection is a false alarm.
    assert _rejection_rate(n, margin, fail_to_pass, margin, alpha=0.05) <= 0.05
    # ... while a drop well beyond the margin is usually caught.
    assert _rejection_rate(n, margin + 0.15, fail_to_pass, margin, alpha=0.05) > 0.5


@pytest.mark.parametrize(("args", "message"), [
    ((5, 6, 10, 0.0), "cannot exceed"),
    ((0, 0, 0, 0.0), "at least 1"),
    ((1, 1, 10, 1.0), r"margin must be in \[0, 1\)"),
    ((1, 1, 10, -0.1), r"margin must be in \[0, 1\)"),
])
def test_paired_drop_p_rejects_impossible_arguments(args: tuple[int, int, int, float],
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_drop_p(*args)


# --- paired bootstrap ------------------------------------------------------------------------

def _scores(n: int, seed: int, shift: float) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    baseline = [rng.random() for _ in range(n)]
    candidate = [x - shift + rng.gauss(0.0, 0.2) for x in baseline]
    return baseline, candidate


def test_bootstrap_is_deterministic_for_a_seed_and_moves_with_it() -> None:
    baseline, candidate = _scores(100, 1, 0.02)
    first = paired_bootstrap(baseline, candidate, seed=7, resamples=500)
    assert first == paired_bootstrap(baseline, candidate, seed=7, resamples=500)
    other = paired_bootstrap(baseline, candidate, seed=8, resamples=500)
    assert (other.low, other.high, other.standard_error) != (first.low, first.high,
                                                             first.standard_error)
    assert other.mean_difference == first.mean_difference  # the estimate is not resampled


def _documented_means(differences: list[float], seed: int, resamples: int) -> list[float]:
    """The stream the docstring promises, rebuilt without the module's code."""
    n = len(differences)
    prefix = b"pytest-insidellms paired bootstrap\0" + seed.to_bytes(16, "little")
    means = []
    for r in range(resamples):
        stream = hashlib.shake_256(prefix + r.to_bytes(8, "little")).digest(8 * n)
        words = [int.from_bytes(stream[8 * i:8 * i + 8], "little") for i in range(n)]
        means.append(math.fsum(differences[w * n // 2 ** 64] for w in words) / n)
    return sorted(means)


def test_bootstrap_follows_its_documented_platform_independent_stream() -> None:
    baseline, candidate = _scores(37, 2, 0.05)
    differences = [new - old for old, new in zip(baseline, candidate)]
    means = _documented_means(differences, seed=2024, resamples=400)
    result = paired_bootstrap(baseline, candidate, seed=2024, resamples=400, margin=0.01)
    cuts = statistics.quantiles(means, n=40, method="inclusive")  # type 7: 2.5% ... 97.5%
    assert result.low == pytest.approx(cuts[0], rel=1e-12)
    assert result.high == pytest.approx(cuts[-1], rel=1e-12)
    assert result.standard_error == pytest.approx(statistics.pstdev(means), rel=1e-12)
    within = sum(1 for mean in means if -mean <= 0.01)
    assert result.p_value == (1 + within) / 401


def test_bootstrap_agrees_with_normal_theory_for_large_n() -> None:
    n = 2000
    baseline, candidate = _scores(n, 3, 0.01)
    differences = [new - old for old, new in zip(baseline, candidate)]
    mean = math.fsum(differences) / n
    se = statistics.pstdev(differences) / math.sqrt(n)
    z = NORMAL.inv_cdf(0.975)
    result = paired_bootstrap(baseline, candidate, seed=11, resamples=2000,
                              margin=-mean - se)  # the observed drop is one SE past it
    assert result.mean_difference == pytest.approx(
        statistics.fmean(candidate) - statistics.fmean(baseline), abs=1e-15)
    assert result.sd_difference == pytest.approx(statistics.stdev(differences), rel=1e-12)
    assert result.standard_error == pytest.approx(se, rel=0.05)
    assert result.low == pytest.approx(mean - z * se, abs=0.15 * se)
    assert result.high == pytest.approx(mean + z * se, abs=0.15 * se)
    assert result.p_value == pytest.approx(NORMAL.cdf(-1.0), abs=0.03)


def test_bootstrap_p_values_for_clear_cases() -> None:
    same = [0.5, 0.7, 0.9, 0.1] * 10
    unchanged = paired_bootstrap(same, same, seed=1, resamples=200)
    assert unchanged.p_value == 1.0 and unchanged.low == unchanged.high == 0.0
    dropped = paired_bootstrap(same, [x - 0.3 for x in same], seed=1, resamples=200,
                               margin=0.1)
    assert dropped.p_value == 1 / 201
    slower = [x * 2 for x in same]
    assert paired_bootstrap(same, slower, seed=1, resamples=200, direction="rise",
                            margin=0.1).p_value == 1 / 201
    assert paired_bootstrap(same, slower, seed=1, resamples=200).p_value == 1.0
    assert paired_bootstrap([1.0], [0.0], seed=1, resamples=50).p_value == 1.0


@pytest.mark.parametrize(("changes", "message"), [
    ({"candidate": [1.0]}, "differ in length"),
    ({"baseline": [], "candidate": []}, "at least one pair"),
    ({"candidate": [1.0, math.nan]}, "finite"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"seed": 2 ** 128}, "seed must be below 2"),
    ({"resamples": 0}, "at least 1"),
    ({"margin": -0.1}, "margin"),
    ({"direction": "fall"}, "direction"),
    ({"confidence": 1.0}, "confidence"),
])
def test_bootstrap_rejects_bad_input(changes: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"baseline": [1.0, 2.0], "candidate": [1.0, 2.0], "seed": 1,
                                 **changes}
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(**arguments)


def test_bootstrap_result_is_a_frozen_record() -> None:
    result = paired_bootstrap([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], seed=5, resamples=100)
    assert isinstance(result, BootstrapResult)
    assert (result.seed, result.resamples, result.direction, result.n) == (5, 100, "drop", 3)
    with pytest.raises(AttributeError):
        result.p_value = 0.0  # type: ignore[misc]


# --- Holm-Bonferroni -------------------------------------------------------------------------

def test_holm_on_a_hand_worked_example() -> None:
    # Sorted: 0.005 <= .05/4 reject; 0.01 <= .05/3 reject; 0.03 > .05/2 stop.
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm_bonferroni(p, 0.05) == [True, False, False, True]
    # Adjusted: 4(.005) = .02; 3(.01) = .03; 2(.03) = .06; max(.06, 1(.04)) = .06.
    assert holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def _closed_testing(p: list[float], alpha: float) -> tuple[list[bool], list[float]]:
    """Holm's definition by closure: H_i falls when every intersection containing it falls
    under Bonferroni, i.e. min over S of p_j <= alpha / |S| for all S holding i."""
    m = len(p)
    rejected, adjusted = [], []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        adjusted.append(worst)
        rejected.append(worst <= alpha)
    return rejected, adjusted


def test_holm_matches_closed_testing_by_brute_force() -> None:
    rng = random.Random(42)
    for _ in range(300):
        m = rng.randint(1, 6)
        p = [rng.choice([rng.random() * 0.1, rng.random(), 0.01, 0.02, 1.0]) for _ in range(m)]
        alpha = rng.choice([0.01, 0.05, 0.1])
        rejected, adjusted = _closed_testing(p, alpha)
        assert holm_adjusted(p) == pytest.approx(adjusted, rel=1e-12)
        assert holm_bonferroni(p, alpha) == rejected, (p, alpha)


def test_holm_edges() -> None:
    assert holm_bonferroni([], 0.05) == [] and holm_adjusted([]) == []
    with pytest.raises(ValueError, match="alpha"):
        holm_bonferroni([0.5], 0.0)
    with pytest.raises(ValueError, match="p-value"):
        holm_adjusted([0.5, 1.5])


# --- minimum detectable effect ---------------------------------------------------------------

def test_mde_paired_has_the_requested_power() -> None:
    z_a = NORMAL.inv_cdf(0.95)
    for n, psi in [(200, 0.1), (500, 0.05), (100, 0.3), (1000, 1.0)]:
        d = mde_paired(n, psi, alpha=0.05, power=0.8)
        # Power of the one-sided McNemar z-test at drop d (Connor 1987).
        power = NORMAL.cdf((math.sqrt(n) * d - z_a * math.sqrt(psi)) / math.sqrt(psi - d * d))
        assert power == pytest.approx(0.8, abs=1e-9)


def test_mde_paired_never_claims_less_than_the_exact_test_can_see() -> None:
    # No discordant pairs observed: the floor is the 5 one-way flips of 2^-5 <= 0.05.
    assert mde_paired(200, 0.0, alpha=0.05) == 5 / 200
    assert mde_paired(200, 0.0, alpha=0.01) == 7 / 200  # 2^-7 <= 0.01 < 2^-6
    twenty = mde_paired(20, None, alpha=0.05)
    assert twenty > 0.5  # a passing gate on 20 cases proves little
    assert mde_paired(2000, None, alpha=0.05) < twenty
    assert mde_paired(3, None, alpha=0.05) == 1.0


def test_mde_mean_difference_has_the_requested_power() -> None:
    d = mde_mean_difference(400, 0.2, alpha=0.05, power=0.9)
    assert NORMAL.cdf(math.sqrt(400) * d / 0.2 - NORMAL.inv_cdf(0.95)) == pytest.approx(0.9)
    assert mde_mean_difference(1, 0.2, alpha=0.05) == math.inf
    assert mde_mean_difference(50, 0.0, alpha=0.05) == 0.0


def test_mde_rate_has_the_requested_power_under_the_alternative() -> None:
    z_a = NORMAL.inv_cdf(0.95)
    for n, threshold in [(200, 0.8), (50, 0.9), (1000, 0.5), (400, 0.2)]:
        d = mde_rate(n, threshold, alpha=0.05, power=0.8)
        true = threshold - d
        # The score test rejects when the observed rate is below this line; under the true
        # rate the observed one is normal with the true rate's own variance.
        line = threshold - z_a * math.sqrt(threshold * (1 - threshold) / n)
        power = NORMAL.cdf((line - true) / math.sqrt(true * (1 - true) / n))
        assert power == pytest.approx(0.8, abs=1e-9)


def test_mde_rate_is_close_to_the_exact_power_of_the_score_test() -> None:
    n, threshold = 200, 0.8
    true = threshold - mde_rate(n, threshold, alpha=0.05)
    exact = sum(math.comb(n, s) * true ** s * (1 - true) ** (n - s) for s in range(n + 1)
                if rate_score_p(s, n, threshold) <= 0.05)
    assert 0.75 < exact < 0.85  # the binomial is discrete; the normal power is 0.8


def test_mde_rate_stays_within_what_a_count_can_show() -> None:
    assert mde_rate(5, 0.2, alpha=0.05) == 0.2  # the rate cannot fall below 0
    assert mde_rate(3, 0.1, alpha=0.05) == 1 / 3  # nor move by less than one case
    assert mde_rate(0, 0.5, alpha=0.05) == math.inf
    assert mde_rate(200, 0.8, alpha=0.05) > mde_rate(800, 0.8, alpha=0.05)


@pytest.mark.parametrize("call", [
    lambda: mde_rate(10, 1.5, 0.05),
    lambda: mde_paired(0, 0.1, 0.05),
    lambda: mde_paired(10, 1.2, 0.05),
    lambda: mde_paired(10, 0.1, 0.05, power=0.3),
    lambda: mde_paired(10, 0.1, 1.0),
    lambda: mde_mean_difference(10, -1.0, 0.05),
])
def test_mde_rejects_bad_arguments(call: Any) -> None:
    with pytest.raises(ValueError):
        call()
