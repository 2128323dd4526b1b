"""summary.json: per-experiment and per-session figures, and trials, from records alone."""

from __future__ import annotations

import dataclasses
import itertools
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from records_cases import BATCH, QA, QA_INFO, UTIL, qa_case, session, suite
from test_records_stats import wilson_by_formula

from pytest_insidellms.cases import FinishedCase, Outcome
from pytest_insidellms.records import (
    FILES,
    build_records,
    build_summary,
    read_records,
    write_records,
    write_run_directory,
)
from pytest_insidellms.records.build import record_groups
from pytest_insidellms.records.summary import StatusCounts


def experiments(summary: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(e["module"], e["experiment"]): e for e in summary["summary"]["experiments"]}


def test_session_counts_cases_not_records_and_passes_over_cases_that_ran() -> None:
    summary = build_summary(build_records(session(suite()), suite()))
    stats = summary["summary"]["session"]
    assert stats["outcomes"] == {"passed": 3, "failed": 1, "skipped": 1, "error": 1,
                                 "xfailed": 1, "xpassed": 1}
    assert (stats["cases"], stats["records"]) == (8, 10)
    # ran: neither skipped nor xfailed; passed: passed or xpassed.
    assert (stats["ran"], stats["passed"]) == (6, 4)
    assert stats["pass_rate"] == pytest.approx(4 / 6)
    lower, upper = wilson_by_formula(4, 6)
    assert (stats["pass_rate_ci"]["lower"], stats["pass_rate_ci"]["upper"]) == pytest.approx(
        (lower, upper), abs=1e-12)


def test_experiment_accuracy_is_over_records_that_ran_with_a_wilson_interval() -> None:
    by_name = experiments(build_summary(build_records(session(suite()), suite())))
    assert list(by_name) == [(BATCH, "arithmetic"), (QA, "qa_accuracy"), (UTIL, None)]
    qa = by_name[(QA, "qa_accuracy")]
    # q1 passed, q2 failed, q3 xfailed (skipped), q4 xpassed.
    assert (qa["cases"], qa["ran"], qa["passes"], qa["errors"], qa["skipped"]) == (4, 3, 2, 1, 1)
    assert qa["accuracy"] == pytest.approx(2 / 3)
    assert qa["success_rate"] == pytest.approx(2 / 4)
    lower, upper = wilson_by_formula(2, 3)
    assert qa["accuracy_ci"] == pytest.approx({"lower": lower, "upper": upper,
                                               "confidence": 0.95}, abs=1e-12)
    assert qa["models"] == ["gpt-4-0613"] and qa["probes"] == ["qa_accuracy"]
    assert qa["trials"] is None
    plain = by_name[(UTIL, None)]
    assert (plain["cases"], plain["ran"], plain["passes"], plain["errors"]) == (3, 2, 1, 1)


def test_experiment_score_means_come_from_the_records_scores() -> None:
    batch = experiments(build_summary(build_records(session(suite()), suite())))[
        (BATCH, "arithmetic")]
    assert batch["scores"] == {"exact": {"mean": 0.0, "n": 1}, "judge": {"mean": 0.25, "n": 1},
                               "score": {"mean": 1.0, "n": 1}}
    assert batch["result_scores"]["accuracy"] == {"mean": 0.5, "n": 1}
    assert batch["result_scores"]["error_rate"]["mean"] == pytest.approx(1 / 3)
    assert (batch["cases"], batch["passes"], batch["statuses"]["timeout"]) == (3, 2, 1)


def test_score_means_over_several_records() -> None:
    cases = [qa_case(f"s{i}", "passed") for i in range(3)]
    records = build_records(session(cases), cases)
    for record, score in zip(records, (0.2, 0.4, 0.9)):
        record["scores"] = {"bleu": score}
    qa = experiments(build_summary(records))[(QA, "qa_accuracy")]
    assert qa["scores"]["bleu"]["mean"] == pytest.approx((0.2 + 0.4 + 0.9) / 3)
    assert qa["scores"]["bleu"]["n"] == 3


#: Case -> outcome of each attempt, known in advance.
TRIALS: dict[str, list[Outcome]] = {
    "flaky": ["passed", "failed", "passed", "passed", "failed"],
    "solid": ["passed"] * 5,
    "broken": ["failed", "error", "failed", "failed", "failed"],
    "one_skip": ["passed", "skipped", "failed", "passed", "passed"],
}


def trial_cases() -> list[FinishedCase]:
    info = dataclasses.replace(QA_INFO, trials=5, cases=20)
    return [qa_case(name, outcome, trial=t, info=info,
                    error_type=None if outcome in ("passed", "skipped") else "AssertionError")
            for name, outcomes in TRIALS.items() for t, outcome in enumerate(outcomes)]


def by_enumeration(passes: list[bool], k: int) -> tuple[Fraction, Fraction]:
    subsets = list(itertools.combinations(passes, k))
    return (Fraction(sum(any(s) for s in subsets), len(subsets)),
            Fraction(sum(all(s) for s in subsets), len(subsets)))


def test_trials_give_pass_at_k_pass_hat_k_and_flaky_cases() -> None:
    cases = trial_cases()
    qa = experiments(build_summary(build_records(session(cases), cases)))[(QA, "qa_accuracy")]
    trials = qa["trials"]
    attempts = {name: [o == "passed" for o in outcomes if o != "skipped"]
                for name, outcomes in TRIALS.items()}
    assert trials["cases"] == 4
    assert trials["attempts"] == 19  # the skipped attempt is no attempt
    assert trials["fewest_attempts"] == 4
    assert trials["pass_rate"] == pytest.approx(sum(map(sum, attempts.values())) / 19)
    assert trials["flaky"] == [f"{QA}::test_answer[flaky]", f"{QA}::test_answer[one_skip]"]
    assert [b["k"] for b in trials["by_k"]] == [1, 2, 3, 4]
    for entry in trials["by_k"]:
        k = entry["k"]
        expected = [by_enumeration(a, k) for a in attempts.values()]
        assert entry["pass_at_k"] == pytest.approx(float(sum(e[0] for e in expected) / 4))
        assert entry["pass_hat_k"] == pytest.approx(float(sum(e[1] for e in expected) / 4))
    per_case = {e["case"].split("[")[1][:-1]: e for e in trials["per_case"]}
    assert (per_case["flaky"]["attempts"], per_case["flaky"]["passes"]) == (5, 3)
    assert per_case["flaky"]["flaky"] and not per_case["solid"]["flaky"]
    assert not per_case["broken"]["flaky"]
    assert [b["k"] for b in per_case["solid"]["by_k"]] == [1, 2, 3, 5]
    for entry in per_case["flaky"]["by_k"]:
        at_least_one, all_of_them = by_enumeration(attempts["flaky"], entry["k"])
        assert entry["pass_at_k"] == pytest.approx(float(at_least_one))
        assert entry["pass_hat_k"] == pytest.approx(float(all_of_them))


def test_each_attempt_is_its_own_record() -> None:
    cases = trial_cases()
    records = build_records(session(cases), cases)
    assert len(records) == 20
    assert len({r["custom"]["replicate_key"] for r in records}) == 20
    assert {r["custom"]["trial"] for r in records} == {0, 1, 2, 3, 4}


def test_summary_json_is_recomputed_from_records_jsonl_alone(tmp_path: Path) -> None:
    cases = suite() + trial_cases()
    written = write_records(tmp_path, session(cases), cases)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert build_summary(read_records(tmp_path / "records.jsonl")) == on_disk == written.summary
    assert set(on_disk) == {"schema_version", "generated_at", "summary", "config"}


def test_shards_merged_from_their_records_equal_the_unsharded_session(tmp_path: Path) -> None:
    cases = suite() + trial_cases()
    definition = session(cases)
    write_records(tmp_path / "whole", definition, cases)
    # A test-level splitter scatters one experiment's cases over the shards.
    shards = [cases[0::3], cases[1::3], cases[2::3]]
    merged = []
    for i, shard in enumerate(shards):
        write_records(tmp_path / f"shard{i}", definition, shard)
        merged.extend(read_records(tmp_path / f"shard{i}"))
    write_run_directory(tmp_path / "merged", definition, merged)
    for name in FILES:
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    shard_summary = json.loads((tmp_path / "shard0" / "summary.json").read_text())
    assert shard_summary["summary"]["session"]["cases"] < len(cases)  # partial, as expected


def test_an_empty_session_summarizes_without_dividing_by_zero() -> None:
    summary = build_summary([])
    assert summary["summary"]["experiments"] == []
    assert summary["summary"]["session"]["pass_rate"] is None
    assert summary["summary"]["session"]["pass_rate_ci"]["lower"] == 0.0


def test_a_module_whose_cases_all_skipped_has_no_accuracy() -> None:
    cases = [qa_case("a", "skipped"), qa_case("b", "xfailed")]
    qa = experiments(build_summary(build_records(session(cases), cases)))[(QA, "qa_accuracy")]
    assert qa["accuracy"] is None
    assert (qa["accuracy_ci"]["lower"], qa["accuracy_ci"]["upper"]) == (0.0, 1.0)
    assert qa["success_rate"] == 0.0


def test_status_counts_give_the_table_figures_of_the_full_summary() -> None:
    """A session without run files counts statuses instead of building records: the figures
    the scores table shows must be those summary.json would have."""
    cases = [*suite(), qa_case("c9", "skipped"), qa_case("c10", "xfailed")]
    counts = StatusCounts()
    for case in cases:
        for experiment, status in record_groups(case):
            counts.add(case.module, experiment, status)
    full = build_summary(build_records(session(cases), cases))["summary"]["experiments"]
    counted = counts.summary()["summary"]["experiments"]
    assert [(e["module"], e["experiment"]) for e in counted] == [
        (e["module"], e["experiment"]) for e in full]
    assert len(counted) >= 3
    for mine, theirs in zip(counted, full):
        assert mine == {key: theirs[key] for key in mine}
