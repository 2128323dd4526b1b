"""pytest_insidellms.testing.RecordingTracker: the public fake backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import ExperimentTracker, TrackingConfig
from pytest_insidellms.experiment_tracking.base import EXTRAS, LOG_TABLE
from pytest_insidellms.testing import MetricPoint, RecordedArtifact, RecordingTracker


def run_my_eval(tracker: ExperimentTracker[Any]) -> None:
    """The code under test of the module docstring's example."""
    tracker.log_metrics({"accuracy": 0.75})


def test_the_module_docstring_example() -> None:
    tracker = RecordingTracker()
    with tracker:
        run_my_eval(tracker)
    (run,) = tracker.runs.values()
    assert run.status == "finished"
    assert run.history("accuracy") == [(0, 0.75)]


def test_runs_keep_name_parent_tags_status_points_params_and_artifacts(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("first")
    folder = tmp_path / "dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.csv").write_text("a,b")
    tracker = RecordingTracker(TrackingConfig(project="evals", tags=["nightly"]))
    session = tracker.start_run("session")
    module = tracker.start_run("module", nested=True)
    tracker.log_metrics({"loss": 1.0})
    tracker.log_metrics({"loss": 0.5, "acc": 0.9}, step=7)
    tracker.log_params({"model": "m", "layers": (1, 2)})
    tracker.log_params({"model": "n"})
    tracker.log_artifact(report, type="report")
    report.write_text("changed after the call")
    tracker.log_artifact(folder)
    tracker.end_run("failed", run_id=session)

    run = tracker.runs[module]
    assert (run.name, run.parent_id, run.project, run.tags) == ("module", session, "evals", ["nightly"])
    assert (run.status, tracker.runs[session].status) == ("failed", "failed")
    assert [(p.step, p.values) for p in run.metrics] == [(0, {"loss": 1.0}),
                                                         (7, {"loss": 0.5, "acc": 0.9})]
    assert all(isinstance(p, MetricPoint) and p.timestamp > 0 for p in run.metrics)
    assert run.history("loss") == [(0, 1.0), (7, 0.5)]
    assert run.last_metrics == {"loss": 0.5, "acc": 0.9}
    assert run.params == {"model": "n", "layers": [1, 2]}
    assert run.artifacts == [
        RecordedArtifact("report.txt", "report", report, b"first"),
        RecordedArtifact("dir", "file", folder, {"sub/a.csv": b"a,b"}),
    ]
    assert [call[0] for call in tracker.calls] == [
        "start_run", "start_run", "log_metrics", "log_metrics", "log_params", "log_params",
        "log_artifact", "log_artifact", "end_run", "end_run"]
    assert tracker.calls_of("end_run") == [(module, "failed"), (session, "failed")]


def test_failure_injection_records_the_call_then_raises_and_can_change_mid_test() -> None:
    tracker = RecordingTracker(fail_on={"log_metrics"}, error=RuntimeError("endpoint down"))
    run_id = tracker.start_run("r")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="endpoint down"):
            tracker.log_metrics({"a": 1})
    assert len(tracker.calls_of("log_metrics")) == 2
    assert tracker.runs[run_id].metrics == []  # the backend failed: nothing kept
    tracker.fail_on.clear()
    tracker.log_metrics({"a": 2})
    assert tracker.runs[run_id].history("a") == [(2, 2.0)]  # the failed calls took steps
    tracker.fail_on.add("end_run")
    tracker.error = None  # the default: an OSError naming the operation
    with pytest.raises(OSError, match="recording: end_run failed"):
        tracker.end_run()
    assert tracker.open_run_ids == []


def test_error_may_be_a_function_of_the_operation() -> None:
    tracker = RecordingTracker(fail_on={"start_run"}, error=lambda op: ConnectionError(op))
    with pytest.raises(ConnectionError, match="start_run"):
        tracker.start_run("r")
    assert tracker.runs == {}


def test_unknown_operations_and_capabilities_are_refused() -> None:
    with pytest.raises(ValueError, match="log_everything"):
        RecordingTracker(fail_on={"log_everything"})
    with pytest.raises(ValueError, match="teleport"):
        RecordingTracker(capabilities={"teleport"})


def test_claimed_capabilities_are_configurable() -> None:
    assert RecordingTracker().capabilities == EXTRAS
    assert RecordingTracker(capabilities={LOG_TABLE}).capabilities == {LOG_TABLE}


def test_extras_are_recorded_and_histograms_follow_the_step_rule() -> None:
    tracker = RecordingTracker()
    run_id = tracker.start_run("r")
    tracker.log_metrics({"a": 1}, step=4)
    tracker.log_histogram("w", [1.0, 2.0])
    tracker.log_table("t", iter([{"q": 1}]), ["q"])
    tracker.flush()
    assert tracker.metric_steps(run_id) == {"a": {4}}
    run = tracker.runs[run_id]
    assert run.histograms == [("w", [1.0, 2.0], 5)]
    assert run.tables == [("t", [{"q": 1}], ["q"])]
    assert tracker.calls_of("flush") == [(None,)]


def test_an_explicit_run_id_resumes_a_recorded_run() -> None:
    tracker = RecordingTracker(id_format="run-{number}")
    first = tracker.start_run("r")
    tracker.log_metrics({"a": 1})
    tracker.end_run()
    assert first == "run-1"
    assert tracker.start_run(run_id=first) == first
    tracker.log_metrics({"a": 2})
    assert tracker.runs[first].history("a") == [(0, 1.0), (1, 2.0)]
    assert tracker.runs[first].status is None
    assert tracker.run_location() == "recording://run-1"


def test_importing_testing_imports_neither_pytest_nor_an_sdk() -> None:
    code = ("import sys, pytest_insidellms.testing; "
            "print(sorted(m for m in ('pytest', 'mlflow', 'wandb', 'tensorboardX') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
