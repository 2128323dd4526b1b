"""Statistics for eval gates: rates, paired comparisons, multiple rules, detectable effects.

Pure Python on :mod:`math`, :mod:`fractions` and :mod:`hashlib`, so the plugin needs no numpy
or scipy and every figure is the same on every platform and Python version (reports are diffed
byte for byte). Counts are computed exactly with integers where that is cheap; floats appear
only at the end or where a normal approximation is the documented method.

Conventions: a *drop* is baseline minus candidate, a *rise* candidate minus baseline. In a
paired pass/fail comparison ``b`` counts cases that passed in the baseline and fail now
(regressions) and ``c`` the reverse, as in Miller (2024), "Adding Error Bars to Evals",
arXiv:2411.00640. P-values are one-sided: small means the data shows the bad direction.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

Direction = Literal["drop", "rise"]
Alternative = Literal["less", "greater"]

__all__ = [
    "Alternative",
    "BootstrapResult",
    "Direction",
    "holm_adjusted",
    "holm_bonferroni",
    "mcnemar_regression_p",
    "mde_mean_difference",
    "mde_paired",
    "mde_rate",
    "normal_cdf",
    "normal_quantile",
    "paired_bootstrap",
    "paired_drop_p",
    "paired_rate_difference",
    "pass_at_k",
    "pass_hat_k",
    "rate_score_p",
    "wilson_interval",
]


# --- validation ------------------------------------------------------------------------------

def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _open_unit(name: str, value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return value


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return value


# --- the normal distribution -----------------------------------------------------------------

_SQRT2: Final = math.sqrt(2.0)
_SQRT2PI: Final = math.sqrt(2.0 * math.pi)

# Acklam's rational approximations (central region and tails), relative error 1.15e-9.
_A: Final = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
             1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B: Final = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
             6.680131188771972e01, -1.328068155288572e01)
_C: Final = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
             -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D: Final = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
             3.754408661907416e00)
_TAIL: Final = 0.02425


def normal_cdf(x: float) -> float:
    """Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails (no 1 - small cancellation)."""
    return 0.5 * math.erfc(-x / _SQRT2)


def normal_quantile(p: float) -> float:
    """The inverse of :func:`normal_cdf`, to about 1e-15 relative.

    Acklam's rational approximation (P. J. Acklam, "An algorithm for computing the inverse
    normal cumulative distribution function", 2003) gives x0 within 1.15e-9; one Halley step on
    f(x) = Phi(x) - p, x1 = x0 - u / (1 + x0 u / 2) with u = f(x0) sqrt(2 pi) exp(x0^2 / 2),
    brings it to double precision because Halley's method triples the number of correct digits.
    """
    _open_unit("p", p)
    if p < _TAIL:
        q = math.sqrt(-2.0 * math.log(p))
        x = _tail_ratio(q)
    elif p > 1.0 - _TAIL:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -_tail_ratio(q)
    else:
        q = p - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
        x = num / den
    # The error is taken on the smaller tail so that p near 1 keeps its digits.
    error = normal_cdf(x) - p if p <= 0.5 else (1.0 - p) - normal_cdf(-x)
    u = error * _SQRT2PI * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _tail_ratio(q: float) -> float:
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    den = (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
    return num / den


def _two_sided_z(confidence: float) -> float:
    return normal_quantile(0.5 + _open_unit("confidence", confidence) / 2.0)


# --- rates -----------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a rate p = successes / n (E. B. Wilson, JASA 22, 1927).

    centre = (p + z^2/2n) / (1 + z^2/n), half-width = z / (1 + z^2/n) * sqrt(p(1-p)/n +
    z^2/4n^2), z the two-sided normal quantile of ``confidence``. Unlike p +- z sqrt(p(1-p)/n)
    it stays inside [0, 1] and does not collapse to a point at 0/n or n/n. With no cases
    nothing is known: (0.0, 1.0).
    """
    _count("successes", successes)
    _count("n", n)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    z = _two_sided_z(confidence)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    shrink = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_score_p(successes: int, n: int, threshold: float,
                 alternative: Alternative = "less") -> float:
    """One-sided score-test p-value that the true rate is below (or above) ``threshold``.

    Z = (p - p0) / sqrt(p0 (1 - p0) / n), p = successes / n; ``"less"`` returns Phi(Z),
    ``"greater"`` 1 - Phi(Z). This is the test the Wilson interval inverts: p < alpha exactly
    when p0 lies beyond the one-sided Wilson bound at confidence 1 - alpha (the two-sided
    interval at 1 - 2 alpha), so an absolute rule and the interval shown beside it agree.
    A threshold of 0 or 1 leaves no variance: the answer is then certain (0.0 or 1.0).
    """
    _count("successes", successes)
    _count("n", n)
    _probability("threshold", threshold)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    if n == 0:
        return 1.0
    p = successes / n
    if threshold in (0.0, 1.0):
        beyond = p < threshold if alternative == "less" else p > threshold
        return 0.0 if beyond else 1.0
    z = (p - threshold) / math.sqrt(threshold * (1.0 - threshold) / n)
    return normal_cdf(z) if alternative == "less" else normal_cdf(-z)


def _trials(n: int, c: int, k: int) -> None:
    _count("n", n)
    _count("c", c)
    _count("k", k)
    if c > n:
        raise ValueError(f"c (correct trials, {c}) cannot exceed n (trials, {n})")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n ({n}), got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k = 1 - C(n-c, k) / C(n, k): the chance that k of the n trials, drawn without
    replacement, include a correct one (Chen et al. 2021, "Evaluating Large Language Models
    Trained on Code", the unbiased estimator). Exact rational arithmetic, rounded once."""
    _trials(n, c, k)
    total = math.comb(n, k)
    return float(Fraction(total - math.comb(n - c, k), total))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k = C(c, k) / C(n, k): the chance that k trials drawn without replacement are all
    correct (Yao et al. 2024, tau-bench), the consistency counterpart of pass@k."""
    _trials(n, c, k)
    return float(Fraction(math.comb(c, k), math.comb(n, k)))


# --- paired pass/fail comparisons ------------------------------------------------------------

#: Up to this many discordant pairs the binomial tail is summed in full.
_EXACT_PAIRS: Final = 4096
#: Beyond it, terms are dropped once they provably add less than 2^-64 of the tail.
_TAIL_BITS: Final = 64


def mcnemar_regression_p(b: int, c: int) -> float:
    """Exact one-sided McNemar p-value for a regression: P(X >= b), X ~ Binomial(b + c, 1/2).

    Under "no change" each of the m = b + c discordant pairs is equally likely to go either
    way (McNemar 1947; the exact conditional form, Miller 2024 section 4). The tail is
    sum_{i>=b} C(m, i) / 2^m in integers; the summed tail is always the one above the mean
    (P(X >= b) = 1 - P(X >= m - b + 1) when b <= m/2), where terms fall off geometrically.
    For m > 4096 the sum stops once the rest is bounded below 2^-64 of it (the ratio of
    successive terms only decreases, so rest <= t / (1 - r)): 100,000 pairs take about 0.1 s
    (mostly the one :func:`math.comb`), with an error far below double precision.
    """
    _count("b", b)
    _count("c", c)
    m = b + c
    if b == 0:
        return 1.0
    if 2 * b > m:
        return _upper_binomial_tail(m, b) / (1 << m)
    return ((1 << m) - _upper_binomial_tail(m, m - b + 1)) / (1 << m)


def _upper_binomial_tail(m: int, start: int) -> int:
    """sum_{i=start}^{m} C(m, i) for start > m/2 (decreasing terms), exact or 2^-64-close."""
    term = math.comb(m, start)
    total = 0
    i = start
    while True:
        total += term
        if i == m:
            return total
        term = term * (m - i) // (i + 1)
        i += 1
        # rest <= term / (1 - (m - i) / (i + 1)) = term (i + 1) / (2i + 1 - m)
        if m > _EXACT_PAIRS and (term * (i + 1)) << _TAIL_BITS < total * (2 * i + 1 - m):
            return total


def _paired_counts(b: int, c: int, n: int) -> None:
    _count("b", b)
    _count("c", c)
    _count("n", n)
    if n == 0:
        raise ValueError("n (paired cases) must be at least 1")
    if b + c > n:
        raise ValueError(f"b + c ({b + c}) cannot exceed the number of paired cases ({n})")


def paired_rate_difference(b: int, c: int, n: int,
                           confidence: float = 0.95) -> tuple[float, float, float]:
    """The candidate's pass rate minus the baseline's over n paired cases, with an interval.

    delta = (c - b) / n, SE = sqrt(((b + c)/n - delta^2) / n) (Miller 2024, eq. 8: pairing
    removes the between-case variance, so only discordant pairs count), interval
    delta +- z SE clipped to [-1, 1]. Returns (delta, low, high).
    """
    _paired_counts(b, c, n)
    z = _two_sided_z(confidence)
    delta = (c - b) / n
    se = math.sqrt(max(0.0, ((b + c) / n - delta * delta) / n))
    return delta, max(-1.0, delta - z * se), min(1.0, delta + z * se)


def paired_drop_p(b: int, c: int, n: int, margin: float = 0.0) -> float:
    """One-sided p-value for "the pass rate dropped by more than ``margin``" (H0: drop <= m).

    margin 0: the exact McNemar test (:func:`mcnemar_regression_p`). margin > 0: Tango's score
    test for paired proportions (T. Tango, Statistics in Medicine 17, 1998, 891-908), which
    takes the variance of the observed drop (b - c)/n under H0 itself instead of at the
    estimate, so it stays sound with few or no discordant pairs, where the Wald SE of
    :func:`paired_rate_difference` is 0:

        Z = (b - c - n m - 1) / sqrt(n (2 q + m (1 - m))),
        q = (sqrt(W^2 + 8 n c m (1 - m)) - W) / 4n,  W = -b - c + (2n - b + c) m,

    q being the maximum-likelihood rate of fail-to-pass pairs given the drop is exactly m;
    p = 1 - Phi(Z). The -1 is McNemar's continuity correction on b - c: uncorrected, the test
    rejects up to 7% of the time at a nominal 5% when discordant pairs are few (exact
    enumeration, n = 20..400); corrected it stays at or below the level there, as a gate that
    fails only on evidence must, at a cost of 4-9 points of power. A margin is an absolute
    rate (0.02 = 2 points); a relative margin is turned into one by the caller from the
    baseline rate.
    """
    _paired_counts(b, c, n)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1) for a rate, got {margin!r}")
    if margin == 0.0:
        return mcnemar_regression_p(b, c)
    w = -b - c + (2 * n - b + c) * margin
    q = (math.sqrt(w * w + 8 * n * c * margin * (1.0 - margin)) - w) / (4 * n)
    z = (b - c - n * margin - 1) / math.sqrt(n * (2 * q + margin * (1.0 - margin)))
    return normal_cdf(-z)


# --- continuous scores -----------------------------------------------------------------------

@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap of the mean of candidate - baseline over the same cases."""

    n: int
    #: mean(candidate) - mean(baseline), the point estimate (no resampling in it).
    mean_difference: float
    #: Sample standard deviation of the per-case differences (n - 1 divisor; 0 for n = 1).
    sd_difference: float
    #: Standard deviation of the resampled means: the bootstrap standard error.
    standard_error: float
    #: Percentile interval of the resampled means at ``confidence``.
    low: float
    high: float
    confidence: float
    #: (1 + #resamples not beyond the margin) / (resamples + 1), see :func:`paired_bootstrap`.
    p_value: float
    direction: Direction
    margin: float
    seed: int
    resamples: int


def paired_bootstrap(baseline: Sequence[float], candidate: Sequence[float], *, seed: int,
                     resamples: int = 10_000, confidence: float = 0.95,
                     margin: float = 0.0, direction: Direction = "drop") -> BootstrapResult:
    """Resample case indices with replacement; each resample's mean of d = candidate -
    baseline builds the distribution of the mean difference (Efron & Tibshirani 1993, ch. 13;
    pairing as in Miller 2024, section 4: both runs are resampled on the same cases).

    Interval: percentiles (1 - confidence)/2 and (1 + confidence)/2 of the resampled means,
    linearly interpolated (Hyndman & Fan type 7). P-value for H0 "the drop (or rise) is at most
    ``margin``": (1 + k) / (resamples + 1), k the resamples whose drop (-mean) or rise (mean) is
    <= margin; the +1 (Davison & Hinkley 1997, eq. 4.11) keeps it above 0, so Holm never sees
    a p of exactly 0 from a finite number of resamples. A single pair shows no variation and
    gives p = 1.

    Randomness: resample r draws its n indices from SHAKE-256 (FIPS 202) of the seed and r,
    each index floor(u n / 2^64) of a little-endian 64-bit word u (bias below n / 2^64). A
    standard hash is byte-identical on every platform and Python version, unlike ``random``'s
    integer methods, and runs in C; means are summed with :func:`math.fsum` (correctly
    rounded; ``sum`` of floats changed its rounding in Python 3.12).
    """
    n = len(baseline)
    if n != len(candidate):
        raise ValueError(f"paired samples differ in length: {n} baseline, "
                         f"{len(candidate)} candidate values")
    if n == 0:
        raise ValueError("paired_bootstrap needs at least one pair")
    if _count("seed", seed) >= 1 << 128:
        raise ValueError(f"seed must be below 2**128, got {seed}")
    if _count("resamples", resamples) == 0:
        raise ValueError("resamples must be at least 1")
    _open_unit("confidence", confidence)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
    if direction not in ("drop", "rise"):
        raise ValueError(f"direction must be 'drop' or 'rise', got {direction!r}")
    differences = [float(new) - float(old) for old, new in zip(baseline, candidate)]
    if not all(math.isfinite(d) for d in differences):
        raise ValueError("paired_bootstrap needs finite values on both sides")

    means = sorted(_resampled_means(differences, seed, resamples))
    mean_difference = math.fsum(differences) / n
    sign = -1.0 if direction == "drop" else 1.0
    within_margin = sum(1 for mean in means if sign * mean <= margin)
    tail = (1.0 - confidence) / 2.0
    return BootstrapResult(
        n=n,
        mean_difference=mean_difference,
        sd_difference=_sd(differences, ddof=1),
        standard_error=_sd(means, ddof=0),
        low=_quantile(means, tail),
        high=_quantile(means, 1.0 - tail),
        confidence=confidence,
        p_value=1.0 if n == 1 else (1 + within_margin) / (resamples + 1),
        direction=direction,
        margin=margin,
        seed=seed,
        resamples=resamples,
    )


def _resampled_means(values: list[float], seed: int, resamples: int) -> list[float]:
    n = len(values)
    words = struct.Struct(f"<{n}Q")
    prefix = b"pytest-insidellms paired bootstrap\0" + seed.to_bytes(16, "little")
    means = []
    for r in range(resamples):
        stream = hashlib.shake_256(prefix + r.to_bytes(8, "little")).digest(words.size)
        means.append(math.fsum([values[(u * n) >> 64] for u in words.unpack(stream)]) / n)
    return means


def _sd(values: Sequence[float], ddof: int) -> float:
    if len(values) <= ddof:
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - ddof))


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


# --- several rules ---------------------------------------------------------------------------

def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in input order (S. Holm, Scand. J. Statist. 6, 1979, 65-70).

    With p_(1) <= ... <= p_(m) sorted, adj_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)); a rule
    is rejected at family-wise level alpha exactly when its adjusted p is <= alpha. Ties keep
    their input order (the adjusted values come out equal either way).
    """
    for p in p_values:
        _probability("p-value", p)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def holm_bonferroni(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure at family-wise error rate ``alpha``: walk the p-values from
    the smallest, rejecting p_(i) while p_(i) <= alpha / (m - i + 1); stop at the first that
    is not. Returns, in input order, whether each hypothesis (each gate rule) is rejected."""
    _open_unit("alpha", alpha)
    return [p <= alpha for p in holm_adjusted(p_values)]


# --- what the data could have detected -------------------------------------------------------

def _one_sided_z(alpha: float, power: float) -> tuple[float, float]:
    _open_unit("alpha", alpha)
    if not 0.5 <= power < 1.0:
        raise ValueError(f"power must be in [0.5, 1), got {power!r}")
    return normal_quantile(1.0 - alpha), normal_quantile(power)


def mde_paired(n: int, discordant_rate: float | None, alpha: float,
               power: float = 0.8) -> float:
    """Smallest drop in pass rate (0..1) that n paired cases detect with probability
    ``power`` in a one-sided test at level ``alpha``.

    The McNemar sample-size relation (Connor, Biometrics 43, 1987, 207-211) with psi the
    discordant proportion, sqrt(n) d = z_a sqrt(psi) + z_b sqrt(psi - d^2), solved for d:

        d = (z_a sqrt(psi n) + z_b sqrt(psi (n + z_b^2 - z_a^2))) / (n + z_b^2).

    ``discordant_rate`` None (unknown) takes the worst case psi = 1. The result is never below
    k/n, k the fewest one-way flips the exact test can reject on (2^-k <= alpha, 5 at 0.05):
    with no discordant pairs observed, that floor is the honest answer. Capped at 1. For a
    relative rule with a margin, the detectable drop is roughly margin + this value.
    """
    if _count("n", n) == 0:
        raise ValueError("n (paired cases) must be at least 1")
    z_a, z_b = _one_sided_z(alpha, power)
    psi = 1.0 if discordant_rate is None else _probability("discordant_rate", discordant_rate)
    spread = math.sqrt(max(0.0, psi * (n + z_b * z_b - z_a * z_a)))
    d = (z_a * math.sqrt(psi * n) + z_b * spread) / (n + z_b * z_b)
    fewest_flips = 0
    while Fraction(1, 2 ** fewest_flips) > Fraction(alpha):
        fewest_flips += 1
    return min(1.0, max(d, fewest_flips / n))


def mde_rate(n: int, threshold: float, alpha: float, power: float = 0.8) -> float:
    """Smallest shortfall d of a rate below ``threshold`` that n cases detect with probability
    ``power`` in :func:`rate_score_p`'s one-sided test at level ``alpha``.

    The score test rejects when sqrt(n) (p0 - p) >= z_a sqrt(p0 q0); with the true rate
    p0 - d it does so with probability ``power`` when

        sqrt(n) d = z_a sqrt(p0 q0) + z_b sqrt((p0 - d)(q0 + d)),  q0 = 1 - p0,

    a quadratic in d whose larger root is returned, at most p0 (the rate cannot fall below 0)
    and at least 1/n (one case is the least a count moves; this wins when n p0 < 1).
    Infinity for n = 0.
    """
    _count("n", n)
    _probability("threshold", threshold)
    z_a, z_b = _one_sided_z(alpha, power)
    if n == 0:
        return math.inf
    pq = threshold * (1.0 - threshold)
    a = z_a * math.sqrt(pq)
    zb2 = z_b * z_b
    # (sqrt(n) d - a)^2 = zb2 (pq + (2 p0 - 1) d - d^2), collected in d.
    quad = n + zb2
    lin = -2.0 * a * math.sqrt(n) - zb2 * (2.0 * threshold - 1.0)
    const = a * a - zb2 * pq
    root = (-lin + math.sqrt(max(0.0, lin * lin - 4.0 * quad * const))) / (2.0 * quad)
    return max(1.0 / n, min(threshold, root))


def mde_mean_difference(n: int, sd_difference: float, alpha: float,
                        power: float = 0.8) -> float:
    """Smallest drop (or rise) in a mean score that n paired cases detect with probability
    ``power`` at one-sided level ``alpha``: (z_a + z_b) sd / sqrt(n), sd the standard
    deviation of the per-case differences (the paired z-test; the bootstrap's standard error
    is sd / sqrt(n) to first order). Fewer than two pairs give no sd: infinity."""
    _count("n", n)
    if not math.isfinite(sd_difference) or sd_difference < 0:
        raise ValueError(f"sd_difference must be a finite number >= 0, got {sd_difference!r}")
    z_a, z_b = _one_sided_z(alpha, power)
    if n < 2:
        return math.inf
    return (z_a + z_b) * sd_difference / math.sqrt(n)
