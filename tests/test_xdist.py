"""Under pytest-xdist the runs are exactly those of a single-process session."""

from __future__ import annotations

import pytest
from local_runs import comparable, only_session

SUITE = {
    "evals/test_suite_returns": """
        import pytest
        from pytest_insidellms import (ExperimentResult, ModelInfo, ProbeCategory, ProbeResult,
                                       ResultStatus)

        @pytest.mark.parametrize("ok", range(6))
        def test_result(ok):
            items = [ProbeResult(i) for i in range(ok)] + [ProbeResult("x", status=ResultStatus.ERROR)]
            return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC, items)
    """,
    "evals/test_suite_marked": """
        import pytest

        @pytest.mark.experiment(name="labels", model_name="toy")
        @pytest.mark.parametrize("case", range(8))
        def test_case(case):
            assert case % 4 != 3
    """,
    "evals/test_suite_fixture": """
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_logs(tracker, n):
            tracker.log_metrics({f"value_{n}": n * 1.5})
            tracker.log_params({f"param_{n}": str(n)})
    """,
    "evals/sub/test_suite_plain": """
        import pytest

        @pytest.mark.parametrize("n", range(7))
        def test_plain(n):
            if n == 6:
                pytest.skip("six")
    """,
}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**SUITE)
    return pytester


def _tracked(pytester: pytest.Pytester, name: str, *args: str) -> dict[str, object]:
    track_dir = pytester.path / name
    result = pytester.runpytest("--track", "local", "--track-dir", str(track_dir), *args)
    result.assert_outcomes(passed=23, failed=2, skipped=1)
    return comparable(only_session(track_dir))


@pytest.mark.parametrize("dist", ["load", "loadfile", "loadscope", "worksteal"])
def test_two_workers_produce_the_runs_of_one_process(suite: pytest.Pytester, dist: str) -> None:
    single = _tracked(suite, "single", "-p", "no:xdist")
    distributed = _tracked(suite, "distributed", "-n", "2", "--dist", dist)
    assert distributed == single
    assert set(single["modules"]) == {  # type: ignore[call-overload]
        "evals/test_suite_returns.py", "evals/test_suite_marked.py",
        "evals/test_suite_fixture.py", "evals/sub/test_suite_plain.py"}


def test_worker_count_is_recorded(suite: pytest.Pytester) -> None:
    track_dir = suite.path / "experiments"
    suite.runpytest("--track", "local", "-n", "2")
    assert only_session(track_dir).run.params["xdist_workers"] == 2


def test_a_crashed_worker_loses_nothing_reported_before(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash="""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_before(tracker, n):
            tracker.log_metrics({f"before_{n}": n})

        def test_crash():
            os._exit(1)
    """)
    result = pytester.runpytest("--track", "local", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=1)

    session = only_session(pytester.path / "experiments")
    module = session.modules["test_crash.py"]
    assert {f"test_before/{n}/before_{n}" for n in range(4)} <= set(module.metrics)
    assert module.metrics["tests_failed"] == 1
    assert module.status == "failed"
    assert session.run.status == "failed"


def test_four_workers_produce_the_runs_of_one_process(suite: pytest.Pytester) -> None:
    single = _tracked(suite, "single", "-p", "no:xdist")
    assert _tracked(suite, "four", "-n", "4") == single
