"""The typed wire and the outcome state machine, without pytest runs."""

from __future__ import annotations

import json

import pytest

from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ProbeScore
from pytest_insidellms.cases import ExperimentInfo, FinishedCase, LoggedResult, Outcome
from pytest_insidellms.session.experiments import ExperimentAggregate
from pytest_insidellms.session.outcomes import CaseState, Phase, Tally
from pytest_insidellms.wire import (
    ArtifactEvent,
    MetricsEvent,
    ParamsEvent,
    Payload,
    ResultEvent,
    from_wire,
    to_wire,
)


def a_result() -> ExperimentResult:
    return ExperimentResult(
        experiment_id="qa", model_info=ModelInfo("m", "p", "m-1"), probe_name="qa",
        probe_category=ProbeCategory.FACTUALITY,
        results=[ProbeResult(input={"q": "2+2"}, output="4")], score=ProbeScore(accuracy=1.0))


def test_every_event_kind_survives_the_wire_as_plain_json() -> None:
    payload = Payload(
        module_tests=3,
        events=[MetricsEvent("module", {"m": 1.5}, 2), ParamsEvent("session", {"k": [1, "a"]}),
                ArtifactEvent("module", "/staged/x.txt", "x.txt", "file", "/src/x.txt"),
                ResultEvent("module", a_result(), "t/", "returned", {"dataset": "v3"})],
        experiment=ExperimentInfo(name="qa", prefix="qa/", model_name="m", params={"d": 1},
                                  cases=4),
        error_type="AssertionError")
    wire = to_wire(payload)
    assert json.loads(json.dumps(wire)) == wire  # what execnet can carry
    assert from_wire(wire) == payload


@pytest.mark.parametrize("phases, outcome", [
    ([("setup", "passed"), ("call", "passed"), ("teardown", "passed")], "passed"),
    ([("setup", "passed"), ("call", "failed"), ("teardown", "passed")], "failed"),
    ([("setup", "failed"), ("teardown", "passed")], "error"),
    ([("setup", "skipped"), ("teardown", "passed")], "skipped"),
    ([("setup", "passed"), ("call", "passed"), ("teardown", "failed")], "error"),
    ([("???", "failed")], "failed"),
])
def test_phases_fold_into_pytests_outcome(phases: list[tuple[str, str]], outcome: str) -> None:
    case = CaseState()
    for when, result in phases:
        case.advance(Phase(when, result, error_type="E" if result == "failed" else None))
    assert case.outcome == outcome
    assert (case.error_type == "E") == (outcome in ("failed", "error"))


def test_xfail_and_xpass_are_kept_apart_and_tallied_as_pytest_summarises() -> None:
    xfailed, xpassed = CaseState(), CaseState()
    xfailed.advance(Phase("call", "skipped", xfail=True))
    xpassed.advance(Phase("call", "passed", xfail=True))
    assert (xfailed.outcome, xpassed.outcome) == ("xfailed", "xpassed")
    tally = Tally()
    outcomes: tuple[Outcome, ...] = ("passed", "xpassed", "failed", "error", "skipped", "xfailed")
    for outcome in outcomes:
        tally.add(FinishedCase(f"m.py::t[{outcome}]", "m.py", outcome))
    assert tally.counts == {"passed": 2, "failed": 1, "skipped": 2, "error": 1}
    assert tally.metrics()["pass_rate"] == 0.5


def test_only_a_returned_result_takes_a_case_out_of_its_experiment() -> None:
    info = ExperimentInfo(name="qa", prefix="qa/", cases=3)
    side = LoggedResult(a_result(), "side/", "fixture")
    own = LoggedResult(a_result(), "own/", "returned")
    aggregate = ExperimentAggregate("test_m.py", info)
    for nodeid, results in (("a", ()), ("b", (side,)), ("c", (own,))):
        aggregate.add(FinishedCase(f"test_m.py::test[{nodeid}]", "test_m.py", "passed",
                                   results=results))
    assert aggregate.complete
    assert [r.input for r in aggregate.results] == ["test[a]", "test[b]"]
    logged = aggregate.logged_result()
    assert logged is not None and logged.origin == "aggregated"
    assert logged.result.score is not None and logged.result.score.accuracy == 1.0


def test_finished_case_names() -> None:
    case = FinishedCase("evals/test_qa.py::TestQA::test_x[gpt-4-case 1]", "evals/test_qa.py",
                        "passed")
    assert case.example_id == "gpt-4-case 1"
    assert case.test_name == "TestQA::test_x[gpt-4-case 1]"
    assert FinishedCase("m.py::test_plain", "m.py", "passed").example_id == "test_plain"
