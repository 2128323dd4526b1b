"""The tracker fixture logs into the test's module run (or the session run)."""

from __future__ import annotations

import pytest
from local_runs import only_session


def test_calls_in_setup_call_and_teardown_all_count(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fx="""
        import pytest

        @pytest.fixture
        def model(tracker):
            tracker.log_params({"model": "toy", "temperature": 0.1})
            yield "toy"
            tracker.log_metrics({"teardown_seconds": 0.5})

        def test_eval(model, tracker):
            for step, loss in enumerate([0.9, 0.5, 0.2]):
                tracker.log_metrics({"loss": loss}, step=step)
            tracker.session.log_metrics({"session_metric": 7})
            tracker.session.log_params({"suite": "qa"})
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)

    session = only_session(pytester.path / "experiments")
    module = session.modules["test_fx.py"]
    assert module.params == {"test_eval/model": "toy", "test_eval/temperature": 0.1}
    assert module.history("test_eval/loss") == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert module.metrics["test_eval/teardown_seconds"] == 0.5
    assert session.run.metrics["session_metric"] == 7
    assert session.run.params["suite"] == "qa"


def test_artifacts_are_captured_when_logged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fx="""
        import pytest

        @pytest.fixture
        def report(tmp_path, tracker):
            path = tmp_path / "report.txt"
            path.write_text("original")
            tracker.log_artifact(path, name="reports/report.txt", type="report")
            yield path
            path.write_text("rewritten in teardown")
            path.unlink()

        def test_eval(report, tmp_path, tracker):
            folder = tmp_path / "outputs"
            folder.mkdir()
            (folder / "a.json").write_text("{}")
            tracker.log_artifact(folder)
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)

    module = only_session(pytester.path / "experiments").modules["test_fx.py"]
    records = {a["name"]: a for a in module.data["artifacts"]}
    assert records["reports/report.txt"]["type"] == "report"
    assert (module.path / "artifacts/reports/report.txt").read_text() == "original"
    assert (module.path / "artifacts/outputs/a.json").read_text() == "{}"
    assert not list((pytester.path / "experiments" / ".staging").glob("*/*"))


def test_results_logged_through_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fx="""
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        def test_eval(tracker):
            result = ExperimentResult("e", ModelInfo("m", "p", "i"), "probe",
                                      ProbeCategory.SAFETY, [ProbeResult("q")] * 3)
            tracker.log_experiment_result(result, prefix="safety/")
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)
    module = only_session(pytester.path / "experiments").modules["test_fx.py"]
    assert module.metrics["test_eval/safety/total_count"] == 3
    assert module.params["test_eval/safety/probe_category"] == "safety"


def test_without_tracking_the_fixture_validates_and_does_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fx="""
        import pytest

        def test_valid_calls(tracker, tmp_path):
            assert not tracker.enabled
            (tmp_path / "f").write_text("x")
            tracker.log_metrics({"a": 1}, step=0)
            tracker.log_params({"p": "v"})
            tracker.log_artifact(tmp_path / "f")

        def test_bad_metric(tracker):
            with pytest.raises(TypeError, match="'a'"):
                tracker.log_metrics({"a": "not a number"})

        def test_missing_artifact(tracker):
            with pytest.raises(FileNotFoundError, match="nowhere.txt"):
                tracker.log_artifact("nowhere.txt")
    """)
    pytester.runpytest().assert_outcomes(passed=3)
    assert not (pytester.path / "experiments").exists()


def test_a_bad_value_fails_only_the_test_that_logged_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fx="""
        def test_good(tracker):
            tracker.log_metrics({"ok": 1})

        def test_bad(tracker):
            tracker.log_metrics({"ok": 2, "flag": True})
    """)
    result = pytester.runpytest("--track", "local")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*bool is not a metric value*"])
    module = only_session(pytester.path / "experiments").modules["test_fx.py"]
    assert module.history("test_good/ok") == [(0, 1.0)]  # the bad call logged nothing, the good one stays
