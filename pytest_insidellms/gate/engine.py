"""The gate's engine: a candidate session's records, a baseline's, rules in, one Verdict out.

Everything the user sees (terminal section, gate.json, gate.md, the step summary, the HTML
comparison, the backend metrics, the exit status) is rendered from the one :class:`Verdict`,
so they cannot disagree. Nothing here imports pytest.

Pairing. Cases pair by the records' case key (``custom.replicate_key``, as ``insidellms
diff`` pairs them); a case on one side only is listed as new or removed and never paired.
``regressions`` counts as ``insidellms diff`` does: ``success`` in the baseline and any other
status now (a case now skipped or xfailed included: it no longer shows that it passes);
``insidellms diff`` also counts any decrease of ``scores["score"]``, which the gate leaves to
score rules with a margin. Metric definitions are in :mod:`.metrics`; a rule matches the
candidate's metrics only, so a renamed experiment is an error rather than a rule switched off.

Statistics policy (``alpha`` > 0; one-sided tests, the bad direction as the alternative):

- a relative rule on a rate: over the paired cases that ran on both sides, b passed before
  and fail now, c the reverse; p from the exact McNemar test (margin 0) or Tango's score test
  (margin > 0, :func:`~pytest_insidellms.stats.paired_drop_p`); interval: the paired
  difference's (Miller 2024);
- a relative rule on a mean score: a paired bootstrap over the cases with the score on both
  sides, seeded by ``seed`` so reports are byte-stable;
- an absolute rule on a rate: the score test the Wilson interval inverts
  (:func:`~pytest_insidellms.stats.rate_score_p`); on a mean score: a bootstrap of the
  candidate's values against the threshold (no normality assumed, as for relative rules);
- the p-values of all the statistical rows of one verdict are Holm-adjusted together; a row
  fails when its adjusted p is at most ``alpha``: only when the data shows the violation.
  Intervals are two-sided at 1 - 2 alpha, the interval whose bound the one-sided test
  checks; MDE is the smallest violation (margin included) that would fail with 80% power;
- count rules (``regressions``, ``flaky``) are exact counts, outside the Holm family.

``alpha`` 0 compares raw point values, as ``insidellms diff`` does: no p-values, no
intervals. Relative margins (``5%``) are fractions of the baseline's value. Without a baseline
the comparative rules (relative, ``regressions``) are skipped with the reason given; absolute
rules and ``flaky`` are still judged. A metric with no value (no case ran) gives a skipped row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Literal

from ..records.build import case_key, natural_key
from ..records.canonical import plain
from ..stats import (
    holm_adjusted,
    mde_mean_difference,
    mde_paired,
    mde_rate,
    paired_bootstrap,
    paired_drop_p,
    paired_rate_difference,
    rate_score_p,
    wilson_interval,
)
from .metrics import MeanSample, RateSample, Sample, collect_metrics, experiment_names, \
    flaky_cases
from .rules import AbsoluteRule, CountRule, RelativeRule, Rule, matching_metrics

__all__ = ["CaseChanges", "GateRow", "GateSettings", "RowVerdict", "Verdict", "evaluate"]

RowVerdict = Literal["pass", "fail", "skipped"]
Record = Mapping[str, Any]
POWER: Final = 0.8
#: The interval shown in raw mode (alpha 0), where no test sets one.
RAW_CONFIDENCE: Final = 0.95


@dataclass(frozen=True)
class GateSettings:
    rules: tuple[Rule, ...]
    #: One-sided family-wise level; 0 compares raw point values.
    alpha: float = 0.05
    #: Seeds the paired bootstrap, so the same records give the same report bytes.
    seed: int = 0
    resamples: int = 10_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {self.alpha!r}")
        if isinstance(self.seed, bool) or not 0 <= self.seed < 1 << 128:
            raise ValueError(f"seed must be an integer in [0, 2**128), got {self.seed!r}")
        if self.resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {self.resamples!r}")

    @property
    def confidence(self) -> float:
        return 1.0 - 2.0 * self.alpha if self.alpha > 0 else RAW_CONFIDENCE


@dataclass(frozen=True)
class GateRow:
    """One rule applied to one metric (or count)."""

    rule: str
    kind: Literal["absolute", "relative", "count"]
    #: min or max (absolute), drop or rise (relative), max (count).
    check: Literal["min", "max", "drop", "rise"]
    metric: str
    baseline: float | None
    candidate: float | None
    #: candidate - baseline, on each side's whole value.
    delta: float | None
    verdict: RowVerdict
    reason: str
    #: Cases behind the statistic (paired cases for a relative rule).
    n: int | None = None
    #: Of the candidate's value (absolute rules) or of the paired difference (relative ones).
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    adjusted_p: float | None = None
    mde: float | None = None
    test: str | None = None


@dataclass(frozen=True)
class CaseChanges:
    """Case keys by what happened to them between the two sessions (sorted naturally)."""

    common: int
    new: tuple[str, ...]
    removed: tuple[str, ...]
    regressions: tuple[str, ...]
    improvements: tuple[str, ...]
    flaky: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rows: tuple[GateRow, ...]
    cases: CaseChanges
    alpha: float
    seed: int
    confidence: float
    compared: bool
    baseline_label: str | None = None
    missing: str | None = None

    @property
    def failed_rows(self) -> tuple[GateRow, ...]:
        return tuple(row for row in self.rows if row.verdict == "fail")

    def to_json(self) -> dict[str, Any]:
        """Plain, deterministic data: no clock, lists in a fixed order, no NaN or infinity."""
        content: dict[str, Any] = plain({
            "passed": self.passed,
            "alpha": self.alpha,
            "seed": self.seed,
            "confidence": self.confidence,
            "baseline": {"compared": self.compared, "label": self.baseline_label,
                         "missing": self.missing},
            "rows": [asdict(row) for row in self.rows],
            "cases": {**asdict(self.cases), "counts": self.counts()},
        })
        return content

    def counts(self) -> dict[str, int]:
        cases = self.cases
        return {"common": cases.common, "new": len(cases.new), "removed": len(cases.removed),
                "regressions": len(cases.regressions),
                "improvements": len(cases.improvements), "flaky": len(cases.flaky)}

    def metrics(self) -> dict[str, float]:
        """Flat numbers to log on a run: the verdict, the counts, each row's figures."""
        values: dict[str, float] = {
            "gate/passed": 1.0 if self.passed else 0.0,
            "gate/rules_failed": float(len(self.failed_rows)),
            "gate/rules_skipped": float(sum(row.verdict == "skipped" for row in self.rows)),
        }
        values.update((f"gate/cases/{name}", float(count))
                      for name, count in self.counts().items())
        seen: set[str] = set()
        for index, row in enumerate(self.rows):
            if row.kind == "count" or row.verdict == "skipped":
                continue
            stem = f"gate/{row.metric}/{row.check}"
            stem = stem if stem not in seen else f"{stem}.{index}"
            seen.add(stem)
            values[f"{stem}/passed"] = 1.0 if row.verdict != "fail" else 0.0
            for name in ("delta", "p_value", "adjusted_p", "mde"):
                figure = getattr(row, name)
                if figure is not None and math.isfinite(figure):
                    values[f"{stem}/{name}"] = float(figure)
        return values


def evaluate(candidate: Sequence[Record], baseline: Sequence[Record] | None,
             settings: GateSettings, *, baseline_label: str | None = None,
             missing: str | None = None) -> Verdict:
    """Judge ``candidate`` against ``baseline`` (None: none found, ``missing`` says why).

    Raises :class:`~pytest_insidellms.gate.UnmatchedRuleError` for a metric rule that
    matches none of the candidate's metrics.
    """
    names = experiment_names(candidate, baseline)
    now = collect_metrics(candidate, names)
    before = collect_metrics(baseline, names) if baseline is not None else None
    cases = case_changes(candidate, baseline)
    judge = _Judge(settings, before, missing or "no baseline")
    rows: list[GateRow] = []
    for rule in settings.rules:
        if isinstance(rule, CountRule):
            rows.append(judge.count(rule, cases, baseline))
            continue
        for metric in matching_metrics(rule, now):
            rows.append(judge.metric(rule, metric, now[metric]))
    rows = _holm(rows, settings.alpha)
    return Verdict(
        passed=all(row.verdict != "fail" for row in rows), rows=tuple(rows), cases=cases,
        alpha=settings.alpha, seed=settings.seed, confidence=settings.confidence,
        compared=baseline is not None, baseline_label=baseline_label,
        missing=None if baseline is not None else (missing or "no baseline"))


def case_changes(candidate: Sequence[Record], baseline: Sequence[Record] | None) -> CaseChanges:
    now = {case_key(r): str(r["status"]) for r in candidate}
    flaky = tuple(flaky_cases(candidate))
    if baseline is None:
        return CaseChanges(0, (), (), (), (), flaky)
    before = {case_key(r): str(r["status"]) for r in baseline}
    common = now.keys() & before.keys()

    def ordered(keys: Any) -> tuple[str, ...]:
        return tuple(sorted(keys, key=natural_key))

    return CaseChanges(
        common=len(common),
        new=ordered(now.keys() - before.keys()),
        removed=ordered(before.keys() - now.keys()),
        regressions=ordered(k for k in common
                            if before[k] == "success" and now[k] != "success"),
        improvements=ordered(k for k in common
                             if before[k] != "success" and now[k] == "success"),
        flaky=flaky,
    )


def _holm(rows: list[GateRow], alpha: float) -> list[GateRow]:
    """Adjust the statistical rows' p-values together and judge them on the adjusted ones."""
    tested = [i for i, row in enumerate(rows) if row.p_value is not None]
    if alpha == 0 or not tested:
        return rows
    adjusted = holm_adjusted([rows[i].p_value or 0.0 for i in tested])
    judged = list(rows)
    for index, p in zip(tested, adjusted):
        row = rows[index]
        fails = p <= alpha
        shown = "shown" if fails else "not shown"
        judged[index] = replace(row, adjusted_p=p, verdict="fail" if fails else "pass",
                                reason=f"{row.reason} {shown} (Holm p {p:.3g} "
                                       f"{'<=' if fails else '>'} {alpha:g})")
    return judged


class _Judge:
    """Builds one row per rule and metric; statistics only when alpha > 0."""

    def __init__(self, settings: GateSettings, baseline: Mapping[str, Sample] | None,
                 missing: str) -> None:
        self.settings = settings
        self.baseline = baseline
        self.missing = missing
        self.raw = settings.alpha == 0

    def count(self, rule: CountRule, cases: CaseChanges,
              baseline: Sequence[Record] | None) -> GateRow:
        if rule.what == "flaky":
            before = float(len(flaky_cases(baseline))) if baseline is not None else None
            now = float(len(cases.flaky))
            return self._counted(rule, before, now, "flaky cases")
        if baseline is None:
            return GateRow(rule.label, "count", "max", rule.what, None, None, None,
                           "skipped", self.missing)
        return self._counted(rule, None, float(len(cases.regressions)),
                             "cases passed in the baseline and fail now")

    def _counted(self, rule: CountRule, before: float | None, now: float,
                 what: str) -> GateRow:
        holds = rule.holds(int(now))
        return GateRow(rule.label, "count", "max", rule.what, before, now,
                       None if before is None else now - before,
                       "pass" if holds else "fail",
                       f"{int(now)} {what} ({'at most' if holds else 'more than'} {rule.max})",
                       test="count")

    def metric(self, rule: AbsoluteRule | RelativeRule, metric: str, now: Sample) -> GateRow:
        before = self.baseline.get(metric) if self.baseline is not None else None
        value = now.value
        base_value = before.value if before is not None else None
        delta = value - base_value if value is not None and base_value is not None else None
        if isinstance(rule, AbsoluteRule):
            row = GateRow(rule.label, "absolute", "min" if rule.op == ">=" else "max", metric,
                          base_value, value, delta, "skipped", "")
        else:
            row = GateRow(rule.label, "relative", rule.direction, metric, base_value, value,
                          delta, "skipped", "")
        if value is None:
            return replace(row, reason="no case of it ran in this session")
        if isinstance(rule, AbsoluteRule):
            return self._absolute(rule, row, now, value)
        if self.baseline is None:
            return replace(row, reason=self.missing)
        if before is None:
            return replace(row, reason="not in the baseline")
        if base_value is None:
            return replace(row, reason="no case of it ran in the baseline")
        if type(before) is not type(now):
            return replace(row, reason="measured differently in the baseline")
        return self._relative(rule, row, before, now, base_value, value)

    def _absolute(self, rule: AbsoluteRule, row: GateRow, now: Sample,
                  value: float) -> GateRow:
        bound = "below" if rule.op == ">=" else "above"
        if self.raw:
            holds = rule.holds(value)
            return replace(row, verdict="pass" if holds else "fail", test="point",
                           reason=f"{_f(value)} {'within' if holds else bound} "
                                  f"{_f(rule.threshold)}")
        alpha, confidence = self.settings.alpha, self.settings.confidence
        if isinstance(now, RateSample):
            n, successes = len(now.outcomes), now.successes
            low, high = wilson_interval(successes, n, confidence)
            threshold = rule.threshold
            if 0.0 <= threshold <= 1.0:
                p = rate_score_p(successes, n, threshold,
                                 "less" if rule.op == ">=" else "greater")
                mde = mde_rate(n, threshold if rule.op == ">=" else 1.0 - threshold, alpha,
                               POWER)
            else:  # a rate cannot cross a bound outside [0, 1]: the answer is certain
                p, mde = (1.0 if rule.holds(value) else 0.0), None
            return replace(row, n=n, low=low, high=high, p_value=p, mde=mde,
                           test="Wilson score", reason=f"{bound} {_f(threshold)}")
        values = [now.values[key] for key in sorted(now.values)]
        result = paired_bootstrap([rule.threshold] * len(values), values,
                                  seed=self.settings.seed, resamples=self.settings.resamples,
                                  confidence=confidence,
                                  direction="drop" if rule.op == ">=" else "rise")
        return replace(row, n=result.n, low=rule.threshold + result.low,
                       high=rule.threshold + result.high, p_value=result.p_value,
                       mde=_finite(mde_mean_difference(result.n, result.sd_difference, alpha,
                                                       POWER)),
                       test="bootstrap", reason=f"{bound} {_f(rule.threshold)}")

    def _relative(self, rule: RelativeRule, row: GateRow, before: Sample, now: Sample,
                  base_value: float, value: float) -> GateRow:
        allowed = rule.allowed_change(base_value)
        words = f"a {rule.direction} beyond {_f(allowed)}"
        if self.raw:
            holds = rule.holds(base_value, value)
            change = rule.change(base_value, value)
            return replace(row, verdict="pass" if holds else "fail", test="point",
                           reason=f"{rule.direction} {_f(change)} "
                                  f"{'<=' if holds else '>'} {_f(allowed)}")
        if isinstance(before, RateSample) and isinstance(now, RateSample):
            return self._paired_rates(rule, row, before, now, allowed, words)
        assert isinstance(before, MeanSample) and isinstance(now, MeanSample)
        common = sorted(before.values.keys() & now.values.keys())
        if not common:
            return replace(row, n=0, reason="no case in common with the baseline")
        settings = self.settings
        result = paired_bootstrap([before.values[k] for k in common],
                                  [now.values[k] for k in common], seed=settings.seed,
                                  resamples=settings.resamples,
                                  confidence=settings.confidence, margin=allowed,
                                  direction=rule.direction)
        detectable = mde_mean_difference(result.n, result.sd_difference, settings.alpha, POWER)
        return replace(row, n=result.n, low=result.low, high=result.high,
                       p_value=result.p_value, mde=_finite(allowed + detectable),
                       test="paired bootstrap", reason=words)

    def _paired_rates(self, rule: RelativeRule, row: GateRow, before: RateSample,
                      now: RateSample, allowed: float, words: str) -> GateRow:
        common = before.outcomes.keys() & now.outcomes.keys()
        n = len(common)
        if n == 0:
            return replace(row, n=0, reason="no case in common with the baseline")
        b = sum(1 for k in common if before.outcomes[k] and not now.outcomes[k])
        c = sum(1 for k in common if now.outcomes[k] and not before.outcomes[k])
        worse, better = (b, c) if rule.direction == "drop" else (c, b)
        p = paired_drop_p(worse, better, n, allowed) if allowed < 1.0 else 1.0
        _, low, high = paired_rate_difference(b, c, n, self.settings.confidence)
        mde = min(1.0, allowed + mde_paired(n, (b + c) / n, self.settings.alpha, POWER))
        return replace(row, n=n, low=low, high=high, p_value=p, mde=mde,
                       test="exact McNemar" if allowed == 0 else "Tango score",
                       reason=f"{words} ({b} pass->fail, {c} fail->pass of {n})")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _f(value: float) -> str:
    return f"{value:.4g}"
