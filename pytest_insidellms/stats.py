"""Rates and their uncertainty: the Wilson interval, pass@k and pass^k.

Pure functions on counts, no numpy: a 95% interval for an accuracy over n cases, and the two
repeated-trial estimators (n attempts of a case, c of them correct): pass@k, the chance that
at least one of k attempts drawn without replacement passes, and pass^k, the chance that all
k do. Both are the unbiased estimators over the n attempts, not (c/n)^k.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["pass_at_k", "pass_hat_k", "wilson_interval"]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the rate ``successes / n``; ``(0.0, 1.0)`` when n is 0."""
    _check_counts(n, successes)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2_n = z * z / n
    centre = (p + z2_n / 2) / (1 + z2_n)
    half = z / (1 + z2_n) * math.sqrt(p * (1 - p) / n + z2_n / (4 * n))
    # The bounds are exact at the ends; rounding would otherwise leave 1e-17 below 0.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): at least one of k attempts out of n passes."""
    _check_trials(n, c, k)
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """C(c, k) / C(n, k): all k attempts out of n pass."""
    _check_trials(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_counts(n: int, successes: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")


def _check_trials(n: int, c: int, k: int) -> None:
    _check_counts(n, c)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
