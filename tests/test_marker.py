"""@pytest.mark.experiment turns parametrized cases into one ExperimentResult."""

from __future__ import annotations

import pytest
from local_runs import only_session

CASES = """
import pytest

@pytest.mark.experiment(name="sentiment", model_name="toy", model_provider="rules",
                        model_id="toy-1", probe_category="bias", params={"dataset": "v3"})
@pytest.mark.parametrize("case", ["good", "bad", "worse", "skip-me"])
def test_label(case):
    if case == "skip-me":
        pytest.skip("not ready")
    assert case != "worse"
"""


def test_cases_aggregate_into_one_result(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest("--track", "local").assert_outcomes(passed=2, failed=1, skipped=1)

    module = only_session(pytester.path / "experiments").modules["test_cases.py"]
    m = module.metrics
    assert m["sentiment/total_count"] == 4  # skipped cases count
    assert m["sentiment/success_count"] == 2
    assert m["sentiment/error_count"] == 1
    assert m["sentiment/skipped_count"] == 1
    assert m["sentiment/success_rate"] == 0.5
    assert m["sentiment/accuracy"] == pytest.approx(2 / 3)  # skipped excluded
    assert m["sentiment/mean_latency_ms"] >= 0
    assert m["sentiment/duration_seconds"] >= 0
    p = module.params
    assert p["sentiment/model_name"] == "toy"
    assert p["sentiment/model_id"] == "toy-1"
    assert p["sentiment/probe_category"] == "bias"
    assert p["sentiment/probe_name"] == "sentiment"
    assert p["sentiment/dataset"] == "v3"
    # logged exactly once, not once per case
    assert len(module.history("sentiment/total_count")) == 1


def test_default_name_is_the_function_and_prefix_can_be_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases="""
        import pytest

        @pytest.mark.experiment
        @pytest.mark.parametrize("n", [1, 2])
        def test_math(n):
            assert n

        @pytest.mark.experiment(prefix="custom_")
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_other(n):
            assert n
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=5)
    metrics = only_session(pytester.path / "experiments").modules["test_cases.py"].metrics
    assert metrics["test_math/total_count"] == 2
    assert metrics["custom_total_count"] == 3


def test_result_is_logged_once_the_last_case_finishes(pytester: pytest.Pytester) -> None:
    # test_after runs in the same module after every case: the result must be there already.
    pytester.makepyfile(test_cases="""
        import json, pathlib
        import pytest

        @pytest.mark.experiment(name="early")
        @pytest.mark.parametrize("n", [1, 2])
        def test_case(n):
            pass

        def test_after():
            (journal,) = pathlib.Path("experiments").glob("*/*/children/*/journal.jsonl")
            assert "early/total_count" in journal.read_text()
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=3)


def test_bad_marker_arguments_error_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases="""
        import pytest

        @pytest.mark.experiment(nmae="typo")
        def test_case():
            pass
    """)
    result = pytester.runpytest("--track", "local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*experiment takes only keyword arguments*nmae*"])


def test_marker_without_tracking_is_harmless(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cases=CASES)
    pytester.runpytest().assert_outcomes(passed=2, failed=1, skipped=1)
    assert not (pytester.path / "experiments").exists()


def test_a_case_logging_a_side_result_through_the_fixture_still_counts(
    pytester: pytest.Pytester,
) -> None:
    # A side result logged through the fixture is not the case's own result: the case stays
    # in its experiment (this once gave total_count 2 for 3 passing cases).
    pytester.makepyfile(test_cases="""
        import pytest
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        @pytest.mark.experiment(name="qa")
        @pytest.mark.parametrize("case", ["a", "b", "c"])
        def test_case(case, tracker):
            if case == "b":
                tracker.log_experiment_result(ExperimentResult(
                    experiment_id="side", model_info=ModelInfo("m", "p", "m"),
                    probe_name="side", probe_category=ProbeCategory.CUSTOM,
                    results=[ProbeResult(input="x")]), prefix="side/")
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=3)
    m = only_session(pytester.path / "experiments").modules["test_cases.py"].metrics
    assert m["qa/total_count"] == 3
    assert m["qa/accuracy"] == 1.0
    assert m["qa/b/side/total_count"] == 1


def test_marker_typo_errors_without_a_traceback_into_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_cases="""
        import pytest

        @pytest.mark.experiment(probe_category="factual")
        def test_case():
            pass
    """)
    for args in ((), ("--track", "local")):
        result = pytester.runpytest(*args)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*probe_category='factual'*expected one of*factuality*"])
        assert "pytest_insidellms" not in result.stdout.str()
