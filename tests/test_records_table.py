"""The terminal scores table: one row per experiment, the worst first when cut."""

from __future__ import annotations

from typing import Any

from records_cases import QA, qa_case, session, suite
from test_records_stats import wilson_by_formula

from pytest_insidellms.cases import ExperimentInfo, FinishedCase
from pytest_insidellms.records import build_records, build_summary, scores_table


def summary_of(cases: list[FinishedCase]) -> dict[str, Any]:
    return build_summary(build_records(session(cases), cases))


def test_one_row_per_experiment_with_accuracy_interval_success_and_errors() -> None:
    lines = scores_table(summary_of(suite()))
    header, rule, *rows = lines
    assert header.split() == ["module", "experiment", "cases", "accuracy", "[95%", "CI]",
                              "success", "errors"]
    assert set(rule) <= {"-", " "}
    assert len(rows) == 3
    qa = next(r for r in rows if "qa_accuracy" in r)
    lower, upper = wilson_by_formula(2, 3)
    assert qa.split() == [QA, "qa_accuracy", "4", "66.7%",
                          f"[{lower * 100:.1f},", f"{upper * 100:.1f}]", "50.0%", "1"]
    assert any("(tests)" in r for r in rows)


def many_experiments(count: int) -> list[FinishedCase]:
    cases = []
    for i in range(count):
        info = ExperimentInfo(name=f"exp{i:02d}", prefix=f"exp{i:02d}/", cases=10)
        # Experiment i passes i of its 10 cases (exp00 is the worst).
        for j in range(10):
            cases.append(FinishedCase(f"evals/test_m.py::test_{i}[{j}]", "evals/test_m.py",
                                      "passed" if j < i else "failed", experiment=info,
                                      error_type=None if j < i else "AssertionError"))
    return cases


def test_a_long_suite_shows_its_worst_rows_first_and_counts_the_rest() -> None:
    lines = scores_table(summary_of(many_experiments(11)), max_rows=4)
    rows = lines[2:]
    assert [r.split()[1] for r in rows[:-1]] == ["exp00", "exp01", "exp02", "exp03"]
    assert rows[-1] == "... and 7 more experiments"
    one_more = scores_table(summary_of(many_experiments(5)), max_rows=4)
    assert one_more[-1] == "... and 1 more experiment"


def test_a_short_suite_keeps_summary_order() -> None:
    rows = scores_table(summary_of(many_experiments(4)), max_rows=4)[2:]
    assert [r.split()[1] for r in rows] == ["exp00", "exp01", "exp02", "exp03"]
    assert len(rows) == 4


def test_rows_fit_the_width_by_cutting_long_names() -> None:
    long_module = "evals/" + "deeply/nested/" * 8 + "test_qa.py"
    info = ExperimentInfo(name="an_experiment_with_a_very_long_descriptive_name", prefix="x/")
    cases = [FinishedCase(f"{long_module}::test_x", long_module, "passed", experiment=info)]
    lines = scores_table(summary_of(cases), width=80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[2].startswith("...")
    assert "test_qa.py" in lines[2]  # the tail of a path is what is kept


def test_nothing_to_show_gives_no_lines() -> None:
    assert scores_table(build_summary([])) == []


def test_an_experiment_where_nothing_ran_shows_a_dash_and_sorts_last_when_cut() -> None:
    cases = many_experiments(3) + [qa_case("s", "skipped")]
    rows = scores_table(summary_of(cases), max_rows=3)[2:]
    assert "qa_accuracy" not in "".join(rows[:-1])
    assert rows[-1] == "... and 1 more experiment"
    full = scores_table(summary_of(cases))[2:]
    skipped = next(r for r in full if "qa_accuracy" in r)
    assert skipped.split()[3] == "-"
