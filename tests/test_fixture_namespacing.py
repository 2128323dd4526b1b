"""The tracker fixture names what a test case logs after the case, as a returned result is
named: the cases of one parametrized test never share a series or a param, on any backend.
``tracker.module`` logs into the module run as named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from local_runs import RunView, comparable, only_session
from mlflow.tracking import MlflowClient  # loaded once, for pytester's in-process runs
from mlflow_server import experiment_id

SWEEP = """
    import pytest

    OFFSET = {"small": 0.0, "large": 10.0}

    @pytest.mark.parametrize("model", ["small", "large"])
    def test_sweep(tracker, model):
        for step in range(3):
            tracker.log_metrics({"ece": OFFSET[model] + step}, step=step)
        tracker.log_params({"model": model, "layers": len(model)})
        tracker.module.log_params({"suite": "calibration"})
        tracker.module.log_metrics({f"seen_{model}": 1.0})
        tracker.session.log_params({"sweep": "ece"})

    @pytest.mark.experiment(name="qa")
    @pytest.mark.parametrize("case", ["a", "bb"])
    def test_marked(tracker, case):
        tracker.log_metrics({"length": len(case)})
"""
MODULE = "test_ns.py"
SERIES = {"test_sweep/small/ece": [(0, 0.0), (1, 1.0), (2, 2.0)],
          "test_sweep/large/ece": [(0, 10.0), (1, 11.0), (2, 12.0)]}
CASE_PARAMS = {"test_sweep/small/model": "small", "test_sweep/small/layers": 5,
               "test_sweep/large/model": "large", "test_sweep/large/layers": 5}


def module_run(path: Path) -> RunView:
    return only_session(path / "experiments").modules[MODULE]


def test_two_cases_of_one_test_log_two_series_and_their_own_params(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_ns=SWEEP)
    pytester.runpytest("--track", "local", "-p", "no:randomly").assert_outcomes(passed=4)

    session = only_session(pytester.path / "experiments")
    module = session.modules[MODULE]
    for key, points in SERIES.items():
        assert module.history(key) == points
    assert "ece" not in module.metrics
    fixture_params = {k: v for k, v in module.params.items() if k.startswith("test_sweep/")}
    assert fixture_params == CASE_PARAMS
    # A marked test's cases are named as its returned result would be: after the marker.
    assert module.metrics["qa/a/length"] == 1 and module.metrics["qa/bb/length"] == 2
    # tracker.module and tracker.session log as named.
    assert module.params["suite"] == "calibration"
    assert module.metrics["seen_small"] == module.metrics["seen_large"] == 1.0
    assert session.run.params["sweep"] == "ece"


def test_mlflow_holds_the_same_series_and_agrees_on_every_param(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_ns=SWEEP)
    pytester.runpytest("--track", "local,mlflow", "-p", "no:randomly").assert_outcomes(passed=4)

    local = module_run(pytester.path)
    uri = f"sqlite:///{(pytester.path / 'experiments' / 'mlflow.db').resolve().as_posix()}"
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([experiment_id(client, "insideLLMs")],
                                filter_string=f"tags.mlflow.runName = '{MODULE}'")
    for key, points in SERIES.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert history == points
    # MLflow keeps params as strings; nothing renamed, nothing versioned.
    assert run.data.params == {k: _mlflow_string(v) for k, v in local.params.items()}
    assert {k: v for k, v in run.data.params.items() if k.startswith("test_sweep/")} == {
        k: str(v) for k, v in CASE_PARAMS.items()}


def _mlflow_string(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def test_two_workers_log_what_one_process_logs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ns=SWEEP)
    views = []
    for workers in ("0", "2"):
        track_dir = pytester.path / f"runs-{workers}"
        pytester.runpytest("--track", "local", "--track-dir", str(track_dir), "-n", workers,
                           "-p", "no:randomly").assert_outcomes(passed=4)
        session = only_session(track_dir)
        module = session.modules[MODULE]
        histories = {key: module.history(key) for key in SERIES}
        views.append((comparable(session), histories))
    assert views[0] == views[1]
    assert views[1][1] == SERIES


def test_the_prefix_is_known_and_checked_without_tracking(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ns="""
        import pytest

        @pytest.mark.parametrize("case", ["2+2", "plain"])
        def test_x(tracker, case):
            expected = {"plain": "test_x/plain/"}.get(case)
            if expected:
                assert tracker.prefix == expected
            else:  # an id metric names cannot spell gets a hash, as for returned results
                assert tracker.prefix.startswith("test_x/2_2-") and tracker.prefix.endswith("/")
            assert tracker.module.prefix == tracker.session.prefix == ""
            with pytest.raises(TypeError, match="'a'"):
                tracker.log_metrics({"a": "not a number"})
            with pytest.raises(TypeError, match="names must be strings"):
                tracker.module.log_params({1: "x"})
    """)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
