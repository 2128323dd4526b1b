"""The contract every backend shares, implemented once in ExperimentTracker.

Proved on the recording backend of pytest_insidellms.testing (which sees exactly what a
backend receives) and, where it matters, on LocalFileTracker.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_insidellms import (
    ExperimentResult,
    LocalFileTracker,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
    TrackingConfig,
    TrackingWarning,
)
from pytest_insidellms.experiment_tracking import Artifact, sanitize_key
from pytest_insidellms.experiment_tracking.base import (
    CLOSE,
    FIND_RUN,
    FLUSH,
    LOG_HISTOGRAM,
    LOG_TABLE,
    METRIC_STEPS,
)
from pytest_insidellms.testing import RecordingTracker


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small file to log as an artifact."""
    path = tmp_path / "f.txt"
    path.write_text("x")
    return path


@pytest.fixture
def rec() -> RecordingTracker:
    return RecordingTracker()


# -- steps ----------------------------------------------------------------------------------


def test_step_none_continues_after_the_highest_step_seen(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_metrics({"a": 1})
    rec.log_metrics({"a": 2})
    rec.log_metrics({"a": 3}, step=10)
    rec.log_metrics({"a": 4})
    rec.log_metrics({"a": 5}, step=3)  # going back is allowed and does not rewind
    rec.log_metrics({"a": 6})
    assert [step for *_, step in rec.calls_of("log_metrics")] == [0, 1, 10, 11, 3, 12]


def test_steps_are_counted_per_run(rec: RecordingTracker) -> None:
    a = rec.start_run("a")
    b = rec.start_run("b")
    rec.log_metrics({"x": 1}, run_id=a)
    rec.log_metrics({"x": 1}, run_id=b)
    rec.log_metrics({"x": 1}, run_id=a)
    assert [(run, step) for run, _, step in rec.calls_of("log_metrics")] == [(a, 0), (b, 0), (a, 1)]


def test_empty_metrics_log_nothing_and_take_no_step(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_metrics({})
    rec.log_params({})
    rec.log_metrics({"a": 1})
    assert rec.calls_of("log_metrics") == [("r#0", {"a": 1.0}, 0)]
    assert rec.calls_of("log_params") == []


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_invalid_steps_are_rejected(rec: RecordingTracker, step: Any) -> None:
    rec.start_run("r")
    with pytest.raises(TypeError, match="step"):
        rec.log_metrics({"a": 1}, step=step)
    assert rec.calls_of("log_metrics") == []


# -- runs -----------------------------------------------------------------------------------


def test_nested_run_is_a_child_of_the_active_run(rec: RecordingTracker) -> None:
    parent = rec.start_run("suite")
    child = rec.start_run("module", nested=True)
    grandchild = rec.start_run("case", nested=True)
    assert rec.parent_run_id(child) == parent
    assert rec.parent_run_id(grandchild) == child
    assert rec.parent_run_id(parent) is None
    assert rec.active_run_id == grandchild
    assert rec.calls_of("start_run")[1] == (child, "module", parent)
    rec.end_run()
    assert rec.active_run_id == child


def test_nested_without_an_active_run_starts_a_top_level_run(rec: RecordingTracker) -> None:
    run_id = rec.start_run("lonely", nested=True)
    assert rec.parent_run_id(run_id) is None


def test_parent_run_id_picks_any_open_run_as_parent(rec: RecordingTracker) -> None:
    first = rec.start_run("first")
    second = rec.start_run("second")
    child = rec.start_run("child", parent_run_id=first)
    assert rec.parent_run_id(child) == first
    assert rec.active_run_id == child
    rec.end_run(run_id=child)
    assert rec.active_run_id == second
    with pytest.raises(RuntimeError, match="no open run"):
        rec.start_run("orphan", parent_run_id="missing")


def test_several_runs_stay_open_and_calls_reach_the_run_named(
    rec: RecordingTracker, source: Path
) -> None:
    a = rec.start_run("a")
    b = rec.start_run("b")
    assert rec.open_run_ids == [a, b]
    assert rec.active_run_id == b
    rec.log_metrics({"m": 1}, run_id=a)
    rec.log_params({"p": 1}, run_id=a)
    rec.log_artifact(source, run_id=a)
    rec.log_metrics({"m": 2})
    rec.end_run(run_id=a)
    assert rec.open_run_ids == [b]
    assert [c[:2] for c in rec.calls[2:]] == [
        ("log_metrics", a), ("log_params", a), ("log_artifact", a), ("log_metrics", b),
        ("end_run", a)]


def test_ending_a_parent_ends_its_open_children_first_with_the_same_status(
    rec: RecordingTracker,
) -> None:
    parent = rec.start_run("p")
    child = rec.start_run("c", nested=True)
    grandchild = rec.start_run("g", nested=True)
    sibling = rec.start_run("s", parent_run_id=parent)
    other = rec.start_run("other")
    rec.end_run("killed", run_id=parent)
    closes = rec.calls_of("end_run")
    assert closes[-1] == (parent, "killed")
    assert set(closes) == {(grandchild, "killed"), (child, "killed"), (sibling, "killed"),
                           (parent, "killed")}
    assert closes.index((grandchild, "killed")) < closes.index((child, "killed"))
    assert rec.open_run_ids == [other]


@pytest.mark.parametrize("status", ["finished", "failed", "killed"])
def test_valid_statuses_reach_the_backend(rec: RecordingTracker, status: str) -> None:
    rec.start_run("r")
    rec.end_run(status)
    assert rec.calls_of("end_run") == [("r#0", status)]


def test_invalid_status_raises_and_leaves_the_run_open(rec: RecordingTracker) -> None:
    run_id = rec.start_run("r")
    with pytest.raises(ValueError, match="finished, failed, killed"):
        rec.end_run("done")
    assert rec.open_run_ids == [run_id]
    assert rec.calls_of("end_run") == []


def test_end_run_without_a_run_is_a_no_op(rec: RecordingTracker) -> None:
    rec.end_run()
    rec.end_run(run_id="never-started")
    assert rec.calls == []


def test_end_all_runs_ends_every_open_run(rec: RecordingTracker) -> None:
    rec.start_run("a")
    rec.start_run("b", nested=True)
    rec.start_run("c")
    rec.end_all_runs("killed")
    assert rec.open_run_ids == []
    assert sorted(rec.calls_of("end_run")) == [("a#0", "killed"), ("b#1", "killed"), ("c#2", "killed")]


def test_run_id_is_passed_to_the_backend_to_resume(rec: RecordingTracker) -> None:
    assert rec.start_run(run_id="abc123") == "abc123"
    assert rec.calls_of("start_run")[0][0] == "abc123"
    with pytest.raises(RuntimeError, match="already open"):
        rec.start_run(run_id="abc123")


def test_run_name_must_be_a_string(rec: RecordingTracker) -> None:
    with pytest.raises(TypeError, match="run_name"):
        rec.start_run(42)  # type: ignore[arg-type]


def test_logging_without_an_active_run_raises(rec: RecordingTracker, source: Path) -> None:
    calls: list[Callable[[], None]] = [lambda: rec.log_metrics({"a": 1}),
                                       lambda: rec.log_params({"a": 1}),
                                       lambda: rec.log_artifact(source)]
    for call in calls:
        with pytest.raises(RuntimeError, match="no active run; call start_run"):
            call()
    rec.start_run("r")
    with pytest.raises(RuntimeError, match="no open run with id 'ghost'"):
        rec.log_metrics({"a": 1}, run_id="ghost")
    assert [c[0] for c in rec.calls] == ["start_run"]


# -- context manager ------------------------------------------------------------------------


def test_context_manager_finishes_the_run_named_by_experiment_name() -> None:
    rec = RecordingTracker(TrackingConfig(experiment_name="exp"))
    with rec as tracker:
        assert tracker is rec
        run_id = rec.active_run_id
        rec.log_metrics({"a": 1})
    assert rec.calls_of("start_run") == [(run_id, "exp", None)]
    assert rec.calls_of("end_run") == [(run_id, "finished")]


def test_exception_in_with_ends_the_run_failed_and_propagates(rec: RecordingTracker) -> None:
    with pytest.raises(ZeroDivisionError), rec:
        1 / 0  # noqa: B018
    assert [status for _, status in rec.calls_of("end_run")] == ["failed"]


def test_keyboard_interrupt_in_with_ends_the_run_killed_and_propagates(
    rec: RecordingTracker,
) -> None:
    with pytest.raises(KeyboardInterrupt), rec:
        raise KeyboardInterrupt
    assert [status for _, status in rec.calls_of("end_run")] == ["killed"]
    assert rec.open_run_ids == []


def test_with_ends_its_own_run_even_when_another_run_became_active(rec: RecordingTracker) -> None:
    with rec:
        outer = rec.active_run_id
        other = rec.start_run("other")
    assert rec.calls_of("end_run") == [(outer, "finished")]
    assert rec.open_run_ids == [other]


def test_a_failing_end_run_does_not_hide_the_exception_in_flight() -> None:
    rec = RecordingTracker(fail_on={"end_run"}, error=OSError("disk gone"))
    with (pytest.warns(TrackingWarning, match="disk gone"),
          pytest.raises(ValueError, match="mine"), rec):
        raise ValueError("mine")
    assert rec.open_run_ids == []


def test_context_manager_on_local_records_failed_and_killed(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    with pytest.raises(RuntimeError), tracker:
        failed = tracker.active_run_id
        raise RuntimeError
    with pytest.raises(KeyboardInterrupt), tracker:
        killed = tracker.active_run_id
        raise KeyboardInterrupt
    assert failed is not None and killed is not None
    assert tracker.load_run(failed)["final_state"]["status"] == "failed"
    assert tracker.load_run(killed)["final_state"]["status"] == "killed"


# -- config ---------------------------------------------------------------------------------


def test_config_is_never_mutated_by_a_tracker(tmp_path: Path) -> None:
    config = TrackingConfig(project="p", experiment_name="e", tags=["token=sk-" + "a" * 24],
                            notes="key sk-" + "b" * 24, backends={"local": {"x": 1}})
    before = copy.deepcopy(config)
    tracker = LocalFileTracker(tmp_path, config)
    with tracker:
        tracker.log_params({"api_key": "secret"})
    assert config == before
    assert tracker.config is not config
    assert "sk-" not in str(tracker.config.tags) and "sk-" not in str(tracker.config.notes)
    config.tags.append("late")
    assert "late" not in tracker.config.tags


# -- values reaching the backend ------------------------------------------------------------


def test_metric_values_reach_the_backend_as_floats_under_sanitised_keys(
    rec: RecordingTracker,
) -> None:
    rec.start_run("r")
    rec.log_metrics({"test_x[param-1]": 1, "a//b": 2, "/lead": 3, "a..b": 4, "ok.name-1 :/x": 5})
    metrics = rec.calls_of("log_metrics")[0][1]
    assert metrics == {"test_x_param-1_": 1.0, "a/b": 2.0, "lead": 3.0, "a_b": 4.0,
                       "ok.name-1 :/x": 5.0}
    assert all(type(v) is float for v in metrics.values())


def test_long_keys_are_shortened_but_stay_distinct() -> None:
    a, b = sanitize_key("k" * 300 + "a"), sanitize_key("k" * 300 + "b")
    assert len(a) == len(b) == 250 and a != b


@pytest.mark.parametrize(("key", "error"), [(1, TypeError), ("", ValueError), ("///", ValueError)])
def test_unusable_keys_are_rejected(key: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        sanitize_key(key)


def test_params_reach_the_backend_as_plain_json(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_params({"status": ResultStatus.ERROR, "when": datetime(2024, 1, 1, tzinfo=timezone.utc),
                    "nan": float("nan"), "items": (1, 2)})
    assert rec.calls_of("log_params")[0][1] == {"status": "error", "when": "2024-01-01T00:00:00+00:00",
                                       "nan": "NaN", "items": [1, 2]}


def test_artifact_reaches_the_backend_validated(rec: RecordingTracker, tmp_path: Path) -> None:
    source = tmp_path / "report.html"
    source.write_text("x")
    rec.start_run("r")
    rec.log_artifact(str(source))
    rec.log_artifact(source, name="sub\\dir/r.html", type="report")
    assert [a for _, a in rec.calls_of("log_artifact")] == [
        Artifact(source=source, name="report.html", type="file"),
        Artifact(source=source, name="sub/dir/r.html", type="report"),
    ]
    with pytest.raises(TypeError, match="artifact path"):
        rec.log_artifact(123)  # type: ignore[arg-type]


def test_log_artifacts_false_reaches_no_backend(source: Path) -> None:
    rec = RecordingTracker(TrackingConfig(log_artifacts=False))
    rec.start_run("r")
    rec.log_artifact(source)
    assert rec.calls_of("log_artifact") == []


# -- log_experiment_result ------------------------------------------------------------------

UTC = timezone.utc


def experiment(**overrides: Any) -> ExperimentResult:
    fields: dict[str, Any] = {
        "experiment_id": "exp-7",
        "model_info": ModelInfo(name="gpt-4", provider="openai", model_id="gpt-4-0613"),
        "probe_name": "logic_probe",
        "probe_category": ProbeCategory.REASONING,
        "results": [ProbeResult(input=i, status=s) for i, s in enumerate([
            ResultStatus.SUCCESS, ResultStatus.SUCCESS, ResultStatus.SUCCESS, ResultStatus.ERROR,
            ResultStatus.TIMEOUT, ResultStatus.RATE_LIMITED, ResultStatus.SKIPPED,
            ResultStatus.ERROR])],
        "score": ProbeScore(accuracy=0.75, f1_score=0.5, total_tokens=1200,
                            custom_metrics={"bleu": 0.25, "judge": "lenient", "n_ok": 3}),
        "started_at": datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
        "completed_at": datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return ExperimentResult(**fields)


EXPECTED_METRICS = {
    "success_rate": 3 / 8, "total_count": 8.0, "success_count": 3.0, "error_count": 2.0,
    "timeout_count": 1.0, "rate_limited_count": 1.0, "skipped_count": 1.0,
    "accuracy": 0.75, "f1_score": 0.5, "total_tokens": 1200.0, "error_rate": 0.0,
    "bleu": 0.25, "n_ok": 3.0, "duration_seconds": 90.0,
}
EXPECTED_PARAMS = {
    "experiment_id": "exp-7", "model_name": "gpt-4", "model_provider": "openai",
    "model_id": "gpt-4-0613", "probe_name": "logic_probe", "probe_category": "reasoning",
    "judge": "lenient",
}


def test_log_experiment_result_logs_exactly_these_names_in_one_call_each(
    rec: RecordingTracker,
) -> None:
    rec.start_run("r")
    rec.log_experiment_result(experiment())
    [(_, metrics, step)] = rec.calls_of("log_metrics")
    [(_, params)] = rec.calls_of("log_params")
    assert metrics == pytest.approx(EXPECTED_METRICS) and metrics.keys() == EXPECTED_METRICS.keys()
    assert params == EXPECTED_PARAMS
    assert step == 0


def test_log_experiment_result_prefixes_every_name(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_experiment_result(experiment(), prefix="eval_")
    [(_, metrics, _)] = rec.calls_of("log_metrics")
    [(_, params)] = rec.calls_of("log_params")
    assert set(metrics) == {f"eval_{k}" for k in EXPECTED_METRICS}
    assert params == {f"eval_{k}": v for k, v in EXPECTED_PARAMS.items()}


def test_log_experiment_result_counts_match_the_result_properties(rec: RecordingTracker) -> None:
    result = experiment()
    rec.start_run("r")
    rec.log_experiment_result(result)
    metrics = rec.calls_of("log_metrics")[0][1]
    assert metrics["success_rate"] == result.success_rate
    assert metrics["error_count"] == result.error_count
    assert metrics["total_count"] == result.total_count
    assert metrics["success_count"] == result.success_count
    assert metrics["duration_seconds"] == result.duration_seconds


def test_missing_score_and_timestamps_log_only_what_exists(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_experiment_result(experiment(score=None, completed_at=None, results=[]))
    metrics = rec.calls_of("log_metrics")[0][1]
    assert metrics == {"success_rate": 0.0, "total_count": 0.0, "success_count": 0.0,
                       "error_count": 0.0, "timeout_count": 0.0, "rate_limited_count": 0.0,
                       "skipped_count": 0.0}


def test_custom_metrics_never_replace_computed_ones(rec: RecordingTracker) -> None:
    score = ProbeScore(accuracy=0.1, custom_metrics={"success_rate": 0.99, "accuracy": 0.98})
    rec.start_run("r")
    rec.log_experiment_result(experiment(score=score))
    metrics = rec.calls_of("log_metrics")[0][1]
    assert (metrics["success_rate"], metrics["accuracy"]) == (3 / 8, 0.1)


def test_probe_category_may_be_a_string(rec: RecordingTracker) -> None:
    rec.start_run("r")
    rec.log_experiment_result(experiment(probe_category="my_custom_probe"))
    assert rec.calls_of("log_params")[0][1]["probe_category"] == "my_custom_probe"


def test_log_experiment_result_works_on_a_duck_typed_object(rec: RecordingTracker) -> None:
    class ForeignStatus(enum.Enum):  # e.g. insideLLMs' own enum
        SUCCESS = "success"
        ERROR = "error"

    class ForeignCategory(enum.Enum):
        SAFETY = "safety"

    duck = SimpleNamespace(
        experiment_id="duck", probe_name="p", probe_category=ForeignCategory.SAFETY,
        model_info=SimpleNamespace(name="m", provider="prov", model_id="m-1"),
        results=[SimpleNamespace(status=ForeignStatus.SUCCESS),
                 SimpleNamespace(status=ForeignStatus.ERROR), SimpleNamespace(status="SUCCESS")],
        score=SimpleNamespace(accuracy=1, custom_metrics={}),
        started_at=datetime(2024, 1, 1, tzinfo=UTC),
        completed_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=2),
    )
    rec.start_run("r")
    rec.log_experiment_result(duck, prefix="d/")
    metrics = rec.calls_of("log_metrics")[0][1]
    assert metrics["d/success_count"] == 2.0 and metrics["d/error_count"] == 1.0
    assert metrics["d/accuracy"] == 1.0 and metrics["d/duration_seconds"] == 2.0
    assert "d/precision" not in metrics and "d/error_rate" not in metrics
    assert rec.calls_of("log_params")[0][1] == {
        "d/experiment_id": "duck", "d/model_name": "m", "d/model_provider": "prov",
        "d/model_id": "m-1", "d/probe_name": "p", "d/probe_category": "safety"}


@pytest.mark.parametrize(("broken", "field_name"), [
    ({"score": ProbeScore(accuracy="high")}, "score.accuracy"),  # type: ignore[arg-type]
    ({"score": ProbeScore(total_tokens=True)}, "score.total_tokens"),
    ({"score": SimpleNamespace(custom_metrics=["bleu"])}, "custom_metrics"),
    ({"results": [ProbeResult(input=1), SimpleNamespace(status=3)]}, r"results\[1\].status"),
    ({"results": None}, "results"),
    ({"results": "abc"}, "results"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"started_at": datetime(2024, 1, 1)}, "started_at"),  # naive minus aware
])
def test_wrong_typed_fields_raise_type_error_naming_the_field_and_log_nothing(
    rec: RecordingTracker, broken: dict[str, Any], field_name: str
) -> None:
    rec.start_run("r")
    with pytest.raises(TypeError, match=field_name):
        rec.log_experiment_result(experiment(**broken))
    assert rec.calls_of("log_metrics") == [] and rec.calls_of("log_params") == []


def test_prefix_must_be_a_string(rec: RecordingTracker) -> None:
    rec.start_run("r")
    with pytest.raises(TypeError, match="prefix"):
        rec.log_experiment_result(experiment(), prefix=None)  # type: ignore[arg-type]


def test_log_experiment_result_lands_in_the_local_files(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("r")
    tracker.log_experiment_result(experiment(), prefix="eval_")
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert loaded["metrics"][0]["metrics"]["eval_success_rate"] == 3 / 8
    assert loaded["params"]["eval_probe_category"] == "reasoning"


# -- capabilities -----------------------------------------------------------------------------


def test_capabilities_are_derived_from_the_methods_a_backend_defines() -> None:
    from pytest_insidellms import MLflowTracker, TensorBoardTracker, WandBTracker
    from pytest_insidellms.experiment_tracking.spool import SpoolingTracker

    # find_run: sync finds a run it replayed before through the backend itself.
    assert MLflowTracker.capabilities == {FLUSH, CLOSE, METRIC_STEPS, FIND_RUN}
    assert WandBTracker.capabilities == {LOG_TABLE, FLUSH}  # flush sends gathered params
    assert TensorBoardTracker.capabilities == {LOG_HISTOGRAM, FLUSH}
    assert LocalFileTracker.capabilities == frozenset()
    assert SpoolingTracker.capabilities == {FLUSH, CLOSE}

    class Buffered(RecordingTracker):
        capabilities = frozenset({FLUSH})  # declared: not derived

    assert Buffered.capabilities == {FLUSH}
