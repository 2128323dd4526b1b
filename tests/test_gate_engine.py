"""The gate's engine on records of seeded fake models: what it measures equals summary.json,
pairs are formed by case key only, and each statistic matches a value computed here from
its formula (binomial tails from math.comb, Wilson bounds, the normal score test)."""

from __future__ import annotations

import json
import math
import random
import statistics
from fractions import Fraction
from typing import Any

import pytest
from gate_sessions import (
    MATH,
    QA,
    Records,
    experiment_cases,
    flipped,
    model_answers,
    qa_session,
    records_of,
    score_values,
    scored_cases,
)

from pytest_insidellms.gate import (
    GateRow,
    GateSettings,
    UnmatchedRuleError,
    Verdict,
    evaluate,
    parse_rules,
)
from pytest_insidellms.gate.metrics import collect_metrics, experiment_names
from pytest_insidellms.records import build_summary

NORMAL = statistics.NormalDist()
BASE = model_answers(200, 0.85, seed=11)


def settings(*rules: str, **options: Any) -> GateSettings:
    return GateSettings(tuple(parse_rules(rules, "--track-gate")), **options)


def row(verdict: Verdict, rule: str, metric: str | None = None) -> GateRow:
    found = [r for r in verdict.rows if r.rule == rule and (metric is None or r.metric == metric)]
    assert len(found) == 1, verdict.rows
    return found[0]


def binomial_tail(m: int, b: int) -> float:
    """P(X >= b), X ~ Binomial(m, 1/2), exactly."""
    return float(Fraction(sum(math.comb(m, i) for i in range(b, m + 1)), 2 ** m))


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    z = NORMAL.inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# --- what is measured ------------------------------------------------------------------------

def mixed_session() -> Records:
    """Two experiments, a skipped and an xfailed case, scores, trials with a flaky case."""
    qa = experiment_cases([True, False, "skipped", "xfailed", True, True])
    trials = [case for trial in range(3) for case in experiment_cases(
        [True, trial != 1, False], experiment="multi", module=MATH, trial=trial, trials=3)]
    scored = scored_cases([{"f1": 0.5, "accuracy": 1.0}, {"f1": 0.25}, {"f1": 1.0}],
                          experiment="judge", module="evals/test_judge.py")
    return records_of(qa + trials + scored)


def test_metrics_equal_summary_json_figures() -> None:
    records = mixed_session()
    summary = build_summary(records)["summary"]
    metrics = collect_metrics(records, experiment_names(records))
    assert metrics["pass_rate"].value == summary["session"]["pass_rate"]
    checked = 0
    for entry in summary["experiments"]:
        name = entry["experiment"]
        assert metrics[f"{name}/accuracy"].value == entry["accuracy"]
        assert metrics[f"{name}/success_rate"].value == entry["success_rate"]
        for score, figures in entry["scores"].items():
            spelled = f"scores.{score}" if score == "accuracy" else score
            assert metrics[f"{name}/{spelled}"].value == figures["mean"]
            checked += 1
        for by_k in (entry["trials"] or {}).get("by_k", []):
            assert metrics[f"{name}/pass@{by_k['k']}"].value == by_k["pass_at_k"]
            assert metrics[f"{name}/pass^{by_k['k']}"].value == by_k["pass_hat_k"]
            checked += 1
    assert checked == 2 + 3  # f1 and scores.accuracy; k = 1, 2, 3 of the trials
    assert metrics["qa/accuracy"].value == 3 / 4  # skipped and xfailed cases did not run
    assert metrics["qa/success_rate"].value == 3 / 6


def test_an_experiment_name_two_modules_share_is_qualified_in_both_sessions() -> None:
    one = records_of(experiment_cases([True, False]))
    two = records_of(experiment_cases([True, False]) + experiment_cases([True], module=MATH))
    names = experiment_names(one, two)
    assert names == {(QA, "qa"): f"{QA}::qa", (MATH, "qa"): f"{MATH}::qa"}
    summary = build_summary(two)["summary"]["experiments"]
    metrics = collect_metrics(two, names)
    assert {entry["module"]: entry["accuracy"] for entry in summary} == {
        QA: metrics[f"{QA}::qa/accuracy"].value, MATH: metrics[f"{MATH}::qa/accuracy"].value}
    verdict = evaluate(two, one, settings("*/accuracy:drop<=0"))
    assert [r.metric for r in verdict.rows] == [f"{MATH}::qa/accuracy", f"{QA}::qa/accuracy"]
    assert row(verdict, "*/accuracy:drop<=0", f"{QA}::qa/accuracy").n == 2  # still paired
    assert evaluate(one, None, settings("qa/accuracy>=0")).rows[0].metric == "qa/accuracy"


# --- scenarios -------------------------------------------------------------------------------

GATE = ("*/accuracy:drop<=0", "pass_rate:drop<=0", "regressions<=0", "qa/accuracy>=0.7")


def test_no_change_passes_every_rule() -> None:
    verdict = evaluate(qa_session(BASE), qa_session(BASE), settings(*GATE), baseline_label="main")
    assert verdict.passed
    assert [r.verdict for r in verdict.rows] == ["pass"] * 4
    assert row(verdict, "*/accuracy:drop<=0").p_value == 1.0
    assert verdict.counts() == {"common": 200, "new": 0, "removed": 0, "regressions": 0,
                                "improvements": 0, "flaky": 0}


def test_one_flip_in_200_passes_the_statistics_but_fails_regressions_le_0() -> None:
    candidate = flipped(BASE, 1)
    verdict = evaluate(qa_session(candidate), qa_session(BASE), settings(*GATE))
    accuracy = row(verdict, "*/accuracy:drop<=0")
    assert accuracy.verdict == "pass" and accuracy.p_value == binomial_tail(1, 1) == 0.5
    assert accuracy.delta == pytest.approx(-1 / 200)
    regressions = row(verdict, "regressions<=0")
    assert (regressions.verdict, regressions.candidate) == ("fail", 1.0)
    assert not verdict.passed and verdict.failed_rows == (regressions,)
    assert verdict.cases.regressions == (f"{QA}::test_answer[q{BASE.index(True)}]",)


def test_thirty_flips_in_200_fail_the_paired_test_with_the_exact_p_value() -> None:
    candidate = flipped(BASE, 30, improvements=4)
    verdict = evaluate(qa_session(candidate), qa_session(BASE), settings("*/accuracy:drop<=0"))
    accuracy = row(verdict, "*/accuracy:drop<=0")
    assert accuracy.verdict == "fail" and not verdict.passed
    assert accuracy.p_value == pytest.approx(binomial_tail(34, 30), rel=1e-12)
    assert accuracy.adjusted_p == accuracy.p_value  # a family of one
    # The paired difference's interval, Miller's formula at 1 - 2 alpha.
    delta = (4 - 30) / 200
    se = math.sqrt(((30 + 4) / 200 - delta * delta) / 200)
    z = NORMAL.inv_cdf(0.95)
    assert (accuracy.low, accuracy.high) == pytest.approx((delta - z * se, delta + z * se))
    assert accuracy.n == 200 and accuracy.mde is not None and 0 < accuracy.mde < 0.15
    assert verdict.counts()["regressions"] == 30 and verdict.counts()["improvements"] == 4


def test_a_relative_margin_is_a_fraction_of_the_baseline_value() -> None:
    candidate = flipped(BASE, 12)
    verdict = evaluate(qa_session(candidate), qa_session(BASE),
                       settings("qa/accuracy:drop<=5%", "qa/accuracy:drop<=0"))
    margin = row(verdict, "qa/accuracy:drop<=5%")
    strict = row(verdict, "qa/accuracy:drop<=0")
    assert margin.baseline is not None
    assert f"beyond {0.05 * margin.baseline:.4g}" in margin.reason
    assert margin.p_value is not None and strict.p_value is not None
    assert margin.p_value > strict.p_value  # a drop of 6 points is less beyond 4.3 than 0
    assert (margin.verdict, strict.verdict) == ("pass", "fail")
    assert margin.test == "Tango score" and strict.test == "exact McNemar"


def test_absolute_rules_are_judged_without_a_baseline_and_comparative_ones_skipped() -> None:
    answers = model_answers(200, 0.72, seed=5)
    successes = sum(answers)
    verdict = evaluate(qa_session(answers), None,
                       settings("qa/accuracy>=0.8", "pass_rate>=0.6", "qa/accuracy:drop<=0",
                                "regressions<=0", "flaky<=0"),
                       missing="no finished session on branch main")
    low = row(verdict, "qa/accuracy>=0.8")
    assert (low.low, low.high) == pytest.approx(wilson(successes, 200, 0.9))
    z = (successes / 200 - 0.8) / math.sqrt(0.8 * 0.2 / 200)
    assert low.p_value == pytest.approx(NORMAL.cdf(z))
    assert low.verdict == ("fail" if NORMAL.cdf(z) * 2 <= 0.05 else "pass")  # Holm over 2
    assert row(verdict, "pass_rate>=0.6").verdict == "pass"
    for skipped in ("qa/accuracy:drop<=0", "regressions<=0"):
        assert row(verdict, skipped).verdict == "skipped"
        assert row(verdict, skipped).reason == "no finished session on branch main"
    assert row(verdict, "flaky<=0").verdict == "pass"
    assert not verdict.compared and verdict.missing == "no finished session on branch main"


def test_an_absolute_rule_fails_only_when_the_data_shows_the_shortfall() -> None:
    # 155/200 = 77.5% is below 80%, but not beyond what chance gives at 80%.
    answers = [True] * 155 + [False] * 45
    verdict = evaluate(qa_session(answers), None, settings("qa/accuracy>=0.8"))
    shortfall = row(verdict, "qa/accuracy>=0.8")
    assert shortfall.verdict == "pass" and shortfall.p_value is not None
    assert shortfall.p_value > 0.05
    raw = evaluate(qa_session(answers), None, settings("qa/accuracy>=0.8", alpha=0))
    assert row(raw, "qa/accuracy>=0.8").verdict == "fail"


def test_cases_on_one_side_are_listed_and_never_paired() -> None:
    # The baseline has q0..q199; the candidate dropped q0..q9 (all passing before) and added
    # q200..q209 (all failing now): no regression among the pairs.
    before = experiment_cases([True] * 10 + list(BASE[10:]))
    ids = [f"q{i}" for i in range(10, 210)]
    after = experiment_cases(list(BASE[10:]) + [False] * 10, ids=ids)
    verdict = evaluate(records_of(after), records_of(before),
                       settings("*/accuracy:drop<=0", "regressions<=0"))
    assert verdict.counts()["common"] == 190
    assert verdict.cases.removed == tuple(f"{QA}::test_answer[q{i}]" for i in range(10))
    assert verdict.cases.new == tuple(f"{QA}::test_answer[q{i}]" for i in range(200, 210))
    accuracy = row(verdict, "*/accuracy:drop<=0")
    assert accuracy.n == 190 and accuracy.p_value == 1.0 and accuracy.verdict == "pass"
    assert accuracy.delta == pytest.approx(-10 / 200)  # the whole values moved
    assert row(verdict, "regressions<=0").candidate == 0 and verdict.passed


def test_holm_across_rules_changes_a_verdict() -> None:
    # Five one-way flips: p = 2^-5 = 0.031 <= 0.05 alone, 0.0625 once doubled by Holm.
    qa_before, qa_after = BASE, flipped(BASE, 5)
    other = model_answers(100, 0.9, seed=3)
    before = records_of(experiment_cases(qa_before) +
                        experiment_cases(other, experiment="math", module=MATH))
    after = records_of(experiment_cases(qa_after) +
                       experiment_cases(flipped(other, 5), experiment="math", module=MATH))
    alone = evaluate(after, before, settings("qa/accuracy:drop<=0"))
    assert row(alone, "qa/accuracy:drop<=0").p_value == binomial_tail(5, 5) == 1 / 32
    assert not alone.passed
    both = evaluate(after, before, settings("*/accuracy:drop<=0"))
    assert [r.adjusted_p for r in both.rows] == [2 / 32, 2 / 32]
    assert [r.verdict for r in both.rows] == ["pass", "pass"] and both.passed


def test_alpha_zero_compares_raw_point_values() -> None:
    verdict = evaluate(qa_session(flipped(BASE, 1)), qa_session(BASE),
                       settings("*/accuracy:drop<=0", "qa/accuracy:drop<=1%", alpha=0))
    strict, loose = row(verdict, "*/accuracy:drop<=0"), row(verdict, "qa/accuracy:drop<=1%")
    assert (strict.verdict, loose.verdict) == ("fail", "pass")
    assert strict.p_value is None and strict.low is None and strict.mde is None
    assert strict.test == "point" and verdict.confidence == 0.95


def test_a_rule_matching_no_metric_raises() -> None:
    with pytest.raises(UnmatchedRuleError, match="nope/accuracy"):
        evaluate(qa_session(BASE), None, settings("nope/accuracy>=0.5"))
    # Only the candidate's metrics count: a metric only the baseline has is no match.
    with pytest.raises(UnmatchedRuleError):
        evaluate(qa_session(BASE), records_of(experiment_cases([True], experiment="old")),
                 settings("old/accuracy:drop<=0"))


def test_regressions_count_status_changes_as_insidellms_diff_does() -> None:
    before = records_of(experiment_cases(["passed", "passed", "skipped", "failed", "failed"]))
    after = records_of(experiment_cases(["skipped", "failed", "passed", "passed", "failed"]))
    verdict = evaluate(after, before, settings("regressions<=1"))
    assert verdict.cases.regressions == (f"{QA}::test_answer[q0]", f"{QA}::test_answer[q1]")
    assert verdict.cases.improvements == (f"{QA}::test_answer[q2]", f"{QA}::test_answer[q3]")
    assert row(verdict, "regressions<=1").verdict == "fail"


def test_flaky_counts_cases_whose_trials_disagree() -> None:
    cases = [case for trial in range(3) for case in experiment_cases(
        [True, trial == 0, False, trial != 2], trial=trial, trials=3)]
    verdict = evaluate(records_of(cases), None, settings("flaky<=1", "qa/pass@3>=0.5"))
    assert verdict.cases.flaky == (f"{QA}::test_answer[q1]", f"{QA}::test_answer[q3]")
    assert row(verdict, "flaky<=1").verdict == "fail"
    assert row(verdict, "qa/pass@3>=0.5").candidate == 3 / 4


# --- continuous scores -----------------------------------------------------------------------

def judged(values: list[float]) -> Records:
    return records_of(scored_cases([{"f1": v} for v in values]))


def test_a_score_drop_beyond_noise_fails_and_noise_passes() -> None:
    base = score_values(300, 0.7, 0.15, seed=1)
    noisy = [min(1.0, max(0.0, v + d)) for v, d in
             zip(base, score_values(300, 0.0, 0.02, seed=2))]
    worse = [v - 0.08 for v in base]
    rules = settings("judge/f1:drop<=0.02")
    assert evaluate(judged(noisy), judged(base), rules).passed
    failed = evaluate(judged(worse), judged(base), rules)
    f1 = row(failed, "judge/f1:drop<=0.02")
    assert f1.verdict == "fail" and f1.test == "paired bootstrap"
    assert f1.delta == pytest.approx(-0.08) and f1.low == pytest.approx(-0.08)
    assert f1.p_value == 1 / 10_001  # no resample's drop is within the margin


def test_the_bootstrap_is_stable_for_a_seed_and_close_to_the_closed_form() -> None:
    base = score_values(1000, 0.6, 0.2, seed=4)
    noise = random.Random(5)
    new = [v + noise.gauss(-0.005, 0.1) for v in base]
    rules = settings("judge/f1:drop<=0")
    first = evaluate(judged(new), judged(base), rules)
    assert evaluate(judged(new), judged(base), rules).to_json() == first.to_json()
    other = evaluate(judged(new), judged(base), settings("judge/f1:drop<=0", seed=1))
    assert row(other, "judge/f1:drop<=0").p_value != row(first, "judge/f1:drop<=0").p_value
    f1 = row(first, "judge/f1:drop<=0")
    differences = [b - a for a, b in zip(base, new)]
    se = statistics.stdev(differences) / math.sqrt(1000)
    half = NORMAL.inv_cdf(0.95) * se
    assert f1.low is not None and f1.high is not None
    assert (f1.high - f1.low) / 2 == pytest.approx(half, rel=0.05)
    assert f1.p_value == pytest.approx(NORMAL.cdf(statistics.mean(differences) / se), abs=0.02)


def test_a_rise_rule_bounds_a_higher_is_worse_score() -> None:
    base = [500.0 + 10 * (i % 7) for i in range(100)]
    slower = [v * 1.3 for v in base]
    latency = settings("judge/latency_ms:rise<=10%")

    def lat(values: list[float]) -> Records:
        return records_of(scored_cases([{"latency_ms": v} for v in values]))

    assert not evaluate(lat(slower), lat(base), latency).passed
    assert evaluate(lat([v * 1.05 for v in base]), lat(base), latency).passed


def test_an_absolute_rule_on_a_mean_score_bootstraps_against_the_threshold() -> None:
    values = score_values(200, 0.62, 0.1, seed=8)
    verdict = evaluate(judged(values), None, settings("judge/f1>=0.7", "judge/f1<=0.9"))
    low, high = row(verdict, "judge/f1>=0.7"), row(verdict, "judge/f1<=0.9")
    assert low.verdict == "fail" and high.verdict == "pass"
    assert low.candidate == pytest.approx(statistics.mean(values))
    assert low.low is not None and low.high is not None
    assert low.low < statistics.mean(values) < low.high < 0.7


# --- the verdict as data ---------------------------------------------------------------------

def test_the_verdict_json_is_deterministic_plain_data() -> None:
    candidate, base = qa_session(flipped(BASE, 3)), qa_session(BASE)
    first = evaluate(candidate, base, settings(*GATE), baseline_label="main").to_json()
    again = evaluate(candidate, base, settings(*GATE), baseline_label="main").to_json()
    assert json.dumps(first, sort_keys=True, allow_nan=False) == \
        json.dumps(again, sort_keys=True, allow_nan=False)
    assert first["passed"] is False and first["baseline"]["label"] == "main"
    assert first["cases"]["counts"]["regressions"] == 3 and len(first["rows"]) == 4


def test_metrics_for_a_backend_are_flat_numbers() -> None:
    verdict = evaluate(qa_session(flipped(BASE, 30)), qa_session(BASE), settings(*GATE))
    metrics = verdict.metrics()
    assert metrics["gate/passed"] == 0.0 and metrics["gate/cases/regressions"] == 30.0
    assert metrics["gate/qa/accuracy/drop/passed"] == 0.0
    assert metrics["gate/qa/accuracy/drop/p_value"] == row(verdict, GATE[0]).p_value
    assert metrics["gate/qa/accuracy/min/delta"] == pytest.approx(-0.15)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("options", [{"alpha": 0.5}, {"alpha": -0.1}, {"seed": -1},
                                     {"resamples": 0}])
def test_settings_refuse_values_the_statistics_cannot_use(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        settings("pass_rate>=0.5", **options)
