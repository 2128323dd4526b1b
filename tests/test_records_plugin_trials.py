"""Repeated trials: ``@pytest.mark.experiment(trials=K)`` and ``--track-trials K`` run each marked
case K times, each attempt its own test item, FinishedCase and record; summary.json's pass
rate, pass@k, pass^k and flaky cases match what enumerating the attempts gives."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

# Loaded out here once: pytester's in-process runs would import (and unload) them each time.
import pytest_insidellms.session  # noqa: F401

#: Whether each trial of each case passes: the suite's tests assert exactly this.
SCHEDULE = {"steady": [1, 1, 1, 1], "flaky": [1, 0, 1, 0], "late": [0, 0, 0, 1],
            "broken": [0, 0, 0, 0]}
SUITE = f"""
import pytest
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ResultStatus

SCHEDULE = {SCHEDULE!r}


def trial(request):
    return request.node.callspec.params["insidellms_trial"]


@pytest.mark.experiment(name="scheduled", trials=4)
@pytest.mark.parametrize("case", list(SCHEDULE))
def test_scheduled(case, request):
    assert SCHEDULE[case][trial(request)]


@pytest.mark.experiment(name="returned", trials=3)
def test_returns(request):
    # Result 0 always succeeds, result 1 only in trial 1.
    second = ResultStatus.SUCCESS if trial(request) == 1 else ResultStatus.ERROR
    return ExperimentResult("r", ModelInfo("m", "p", "m-1"), "returned", ProbeCategory.LOGIC,
                            [ProbeResult("a"), ProbeResult("b", status=second)])


@pytest.mark.experiment(name="default")
def test_default_count():
    pass


def test_plain():
    pass
"""
#: Records the FinishedCases the consumers receive, as JSON, for the assertions below.
RECORDING_CONFTEST = """
import json

class Recorder:
    def __init__(self):
        self.cases = []
    def on_events(self, module, nodeid, expected, events):
        pass
    def on_late_events(self, nodeid, events):
        pass
    def on_case(self, case):
        info = case.experiment
        self.cases.append({"nodeid": case.nodeid, "trial": case.trial, "outcome": case.outcome,
                           "trials": info and info.trials, "cases": info and info.cases})
    def on_finish(self, *, killed, internal_error):
        with open("cases.json", "w") as out:
            json.dump(self.cases, out)

def pytest_sessionstart(session):
    assembler = session.config.pluginmanager.get_plugin("insidellms-session")
    if assembler is not None:
        assembler.add_consumer(Recorder())
"""


def by_enumeration(attempts: list[list[int]], k: int) -> tuple[float, float]:
    """pass@k and pass^k averaged over cases, counted over every k-subset of each case's
    attempts: at least one passes, all pass."""
    at, hat = [], []
    for outcomes in attempts:
        subsets = list(itertools.combinations(outcomes, k))
        at.append(sum(any(s) for s in subsets) / len(subsets))
        hat.append(sum(all(s) for s in subsets) / len(subsets))
    return sum(at) / len(at), sum(hat) / len(hat)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_trials=SUITE)
    return pytester


def experiments(directory: Path) -> dict[str, Any]:
    summary = json.loads((directory / "summary.json").read_text())
    return {e["experiment"]: e for e in summary["summary"]["experiments"]}


def test_each_trial_is_a_test_item_named_by_its_trial(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--collect-only", "-q")
    ids = [line for line in result.stdout.lines if line.startswith("test_trials.py::")]
    assert ids == [
        *(f"test_trials.py::test_scheduled[{case}-trial{n}]"
          for case in SCHEDULE for n in range(4)),
        *(f"test_trials.py::test_returns[trial{n}]" for n in range(3)),
        "test_trials.py::test_default_count", "test_trials.py::test_plain"]


def test_trials_run_without_tracking_too(suite: pytest.Pytester) -> None:
    passes = sum(map(sum, SCHEDULE.values()))
    suite.runpytest().assert_outcomes(passed=passes + 3 + 2, failed=16 - passes)
    assert not (suite.path / "experiments").exists()


def test_known_outcomes_give_the_pass_rate_pass_at_k_pass_hat_k_and_flaky_cases(
        suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=out")
    trials = experiments(suite.path / "out")["scheduled"]["trials"]
    attempts = list(SCHEDULE.values())
    assert trials["cases"] == 4 and trials["attempts"] == 16
    assert trials["pass_rate"] == sum(map(sum, attempts)) / 16
    assert [row["k"] for row in trials["by_k"]] == [1, 2, 3, 4]
    for row in trials["by_k"]:
        expected = by_enumeration(attempts, row["k"])
        assert (row["pass_at_k"], row["pass_hat_k"]) == pytest.approx(expected), row["k"]
    assert trials["flaky"] == ["test_trials.py::test_scheduled[flaky]",
                               "test_trials.py::test_scheduled[late]"]
    per_case = {row["case"]: row for row in trials["per_case"]}
    for case, outcomes in SCHEDULE.items():
        row = per_case[f"test_trials.py::test_scheduled[{case}]"]
        assert (row["attempts"], row["passes"]) == (4, sum(outcomes))
        assert row["by_k"][1]["pass_at_k"] == pytest.approx(by_enumeration([outcomes], 2)[0])


def test_each_result_of_each_trial_is_a_record_and_results_are_cases_of_their_own(
        suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=out")
    lines = (suite.path / "out" / "records.jsonl").read_text().splitlines()
    records = {r["custom"]["replicate_key"]: r for r in map(json.loads, lines)}
    base = "test_trials.py::test_returns"
    assert {key: (r["custom"]["trial"], r["status"]) for key, r in records.items()
            if key.startswith(base)} == {
        f"{base}#result0": (0, "success"), f"{base}#result1": (0, "error"),
        f"{base}#trial1#result0": (1, "success"), f"{base}#trial1#result1": (1, "success"),
        f"{base}#trial2#result0": (2, "success"), f"{base}#trial2#result1": (2, "error")}
    flaky = records["test_trials.py::test_scheduled[flaky]#trial1"]
    assert (flaky["custom"]["nodeid"], flaky["example_id"], flaky["status"]) == (
        "test_trials.py::test_scheduled[flaky]", "flaky", "error")
    trials = experiments(suite.path / "out")["returned"]["trials"]
    assert [row["case"] for row in trials["per_case"]] == [f"{base}#result0", f"{base}#result1"]
    assert trials["flaky"] == [f"{base}#result1"]


def test_every_consumer_gets_each_attempt_with_its_trial(suite: pytest.Pytester) -> None:
    suite.makeconftest(RECORDING_CONFTEST)
    suite.runpytest("--track", "local")
    cases = json.loads((suite.path / "cases.json").read_text())
    scheduled = [c for c in cases if "test_scheduled" in c["nodeid"]]
    assert sorted((c["nodeid"], c["trial"]) for c in scheduled) == sorted(
        (f"test_trials.py::test_scheduled[{case}]", n) for case in SCHEDULE for n in range(4))
    assert {(c["trials"], c["cases"]) for c in scheduled} == {(4, 16)}
    default = [c for c in cases if "test_default_count" in c["nodeid"]]
    assert [(c["trial"], c["trials"], c["cases"]) for c in default] == [(0, 1, 1)]


def test_the_tracked_experiment_counts_every_attempt(suite: pytest.Pytester) -> None:
    from local_runs import only_session

    suite.runpytest("--track", "local")
    module = only_session(suite.path / "experiments").modules["test_trials.py"]
    passes = sum(map(sum, SCHEDULE.values()))
    assert module.metrics["scheduled/total_count"] == 16
    assert module.metrics["scheduled/success_count"] == passes
    assert module.metrics["scheduled/accuracy"] == passes / 16


def test_track_trials_repeats_marked_tests_that_name_no_count(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    def count(*args: str) -> dict[str, int]:
        result = suite.runpytest("--collect-only", "-q", *args)
        counts = {"scheduled": 0, "returns": 0, "default": 0, "plain": 0}
        for line in result.stdout.lines:
            for name in counts:
                if line.startswith(f"test_trials.py::test_{name}"):
                    counts[name] += 1
        return counts

    # The marker's own trials= wins; plain tests never repeat.
    assert count("--track-trials", "5") == {"scheduled": 16, "returns": 3, "default": 5,
                                            "plain": 1}
    monkeypatch.setenv("INSIDELLMS_TRACK_TRIALS", "2")
    assert count()["default"] == 2
    assert count("--track-trials=3")["default"] == 3
    monkeypatch.delenv("INSIDELLMS_TRACK_TRIALS")
    suite.makeini((suite.path / "tox.ini").read_text() + "\ninsidellms_track_trials = 4\n")
    assert count()["default"] == 4


@pytest.mark.parametrize(("args", "env", "ini", "source"), [
    (["--track-trials", "0"], None, None, "--track-trials"),
    ([], "many", None, "environment variable INSIDELLMS_TRACK_TRIALS"),
    ([], None, "-1", "ini option insidellms_track_trials"),
    (["--track-trials", "1001"], None, None, "--track-trials"),
])
def test_a_bad_trial_count_is_a_usage_error_naming_its_source(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str],
        env: str | None, ini: str | None, source: str) -> None:
    if env is not None:
        monkeypatch.setenv("INSIDELLMS_TRACK_TRIALS", env)
    if ini is not None:
        suite.makeini((suite.path / "tox.ini").read_text() + f"\ninsidellms_track_trials = {ini}\n")
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{source}: expected a whole number of trials from 1 to 1000*"])


@pytest.mark.parametrize("trials", ["0", "True", "2.5", "'3'"])
def test_a_bad_trials_argument_fails_its_test_once(pytester: pytest.Pytester,
                                                   trials: str) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.experiment(trials={trials})
        def test_x():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*@pytest.mark.experiment(trials={trials}): expected a whole "
                                 "number from 1 to 1000*"])
