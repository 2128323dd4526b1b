"""MultiTracker: one run fanned out to several backends; a failing backend never stops the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_insidellms import (
    LocalFileTracker,
    MultiTracker,
    TrackingConfig,
    TrackingError,
    TrackingWarning,
)
from pytest_insidellms.experiment_tracking.base import CLOSE, FLUSH, LOG_HISTOGRAM, LOG_TABLE
from pytest_insidellms.testing import RecordingTracker


def flaky(fail: set[str]) -> RecordingTracker:
    """A backend that fails the operations named in ``fail`` and records every call."""
    return RecordingTracker(backend_name="flaky", fail_on=fail, id_format="flaky-{index}",
                            error=lambda operation: OSError(f"flaky {operation}"))


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    source = tmp_path / "report.txt"
    source.write_text("r")
    return source


def two_locals(tmp_path: Path) -> tuple[LocalFileTracker, LocalFileTracker]:
    return LocalFileTracker(tmp_path / "one"), LocalFileTracker(tmp_path / "two")


def test_every_call_reaches_every_backend(tmp_path: Path, artifact: Path) -> None:
    one, two = two_locals(tmp_path)
    multi = MultiTracker([one, two])
    run_id = multi.start_run("fan")
    multi.log_metrics({"acc": 0.5})
    multi.log_params({"model": "m"})
    multi.log_artifact(artifact)
    multi.end_run("failed")
    assert run_id == "fan"
    for tracker in (one, two):
        loaded = tracker.load_run("fan")
        assert [m["metrics"] for m in loaded["metrics"]] == [{"acc": 0.5}]
        assert loaded["params"] == {"model": "m"}
        assert [a["name"] for a in loaded["artifacts"]] == ["report.txt"]
        assert loaded["final_state"]["status"] == "failed"


def test_each_backend_applies_its_own_log_artifacts_switch(
    tmp_path: Path, artifact: Path
) -> None:
    off = LocalFileTracker(tmp_path / "off", TrackingConfig(log_artifacts=False))
    on = LocalFileTracker(tmp_path / "on")
    multi = MultiTracker([off, on])
    multi.start_run("r")
    multi.log_artifact(artifact)
    multi.end_run()
    assert off.load_run("r")["artifacts"] == []
    assert [a["name"] for a in on.load_run("r")["artifacts"]] == ["report.txt"]
    assert off.config.log_artifacts is False


def test_child_run_ids_and_locations_name_each_backend(tmp_path: Path) -> None:
    one, two = two_locals(tmp_path)
    multi = MultiTracker([one, two])
    multi.start_run("r")
    assert multi.child_run_ids() == {"local#0": "r", "local#1": "r"}
    assert multi.locations() == {"local#0": str(one.project_dir / "r"),
                                 "local#1": str(two.project_dir / "r")}
    assert multi.run_location() == str(one.project_dir / "r")
    multi.end_run()


def test_steps_are_resolved_once_and_shared_by_every_backend(tmp_path: Path) -> None:
    one, two = two_locals(tmp_path)
    recorder = flaky(set())
    multi = MultiTracker([one, two, recorder])
    multi.start_run("steps")
    multi.log_metrics({"a": 1})
    multi.log_metrics({"a": 2}, step=7)
    multi.log_metrics({"a": 3})
    multi.end_run()
    expected = [0, 7, 8]
    assert [m["step"] for m in one.load_run("steps")["metrics"]] == expected
    assert [m["step"] for m in two.load_run("steps")["metrics"]] == expected
    assert [step for _, _, step in recorder.calls_of("log_metrics")] == expected


def test_nested_runs_nest_inside_each_backend(tmp_path: Path) -> None:
    one, two = two_locals(tmp_path)
    multi = MultiTracker([one, two])
    parent = multi.start_run("suite")
    child = multi.start_run("module", nested=True)
    other = multi.start_run("module_b", parent_run_id=parent)
    multi.log_metrics({"m": 1}, run_id=child)
    multi.end_run(run_id=parent)  # ends both children too
    assert multi.open_run_ids == []
    for tracker in (one, two):
        assert tracker.open_run_ids == []
        assert tracker.load_run(parent)["children"] == sorted([child, other])
        assert tracker.load_run(child)["metadata"]["parent_run_id"] == parent
        assert tracker.load_run(child)["metrics"][0]["metrics"] == {"m": 1.0}


def test_failing_backend_warns_once_and_the_others_get_every_call(
    tmp_path: Path, artifact: Path
) -> None:
    local = LocalFileTracker(tmp_path / "ok")
    recorder = flaky({"log_metrics", "log_params", "log_artifact", "end_run"})
    multi = MultiTracker([recorder, local])  # the failing one first: it must not block the rest
    with pytest.warns(TrackingWarning, match="'flaky' failed in log_metrics") as warned:
        run_id = multi.start_run("r")
        multi.log_metrics({"a": 1})
        multi.log_metrics({"a": 2})
        multi.log_params({"p": 1})
        multi.log_artifact(artifact)
        multi.end_run()
    assert len(warned) == 1
    assert [op for op, _ in multi.errors] == ["flaky"] * 5
    assert [str(exc) for _, exc in multi.errors] == [
        "flaky log_metrics", "flaky log_metrics", "flaky log_params", "flaky log_artifact",
        "flaky end_run"]
    loaded = local.load_run("r")
    assert [m["metrics"]["a"] for m in loaded["metrics"]] == [1.0, 2.0]
    assert loaded["params"] == {"p": 1}
    assert len(loaded["artifacts"]) == 1
    assert loaded["final_state"]["status"] == "finished"
    # end_run reached the failing backend too
    assert [status for _, status in recorder.calls_of("end_run")] == ["finished"]
    assert run_id.startswith("flaky-")


def test_ignore_policy_collects_errors_silently(tmp_path: Path) -> None:
    local = LocalFileTracker(tmp_path)
    multi = MultiTracker([local, flaky({"log_metrics"})], on_error="ignore")
    multi.start_run("r")
    multi.log_metrics({"a": 1})  # warnings are errors in this suite: none may be emitted
    multi.end_run()
    assert [(name, str(exc)) for name, exc in multi.errors] == [("flaky", "flaky log_metrics")]
    assert local.load_run("r")["metrics"][0]["metrics"] == {"a": 1.0}


def test_raise_policy_raises_after_every_backend_had_the_call(tmp_path: Path) -> None:
    local = LocalFileTracker(tmp_path)
    recorder = flaky({"log_metrics", "end_run"})
    multi = MultiTracker([recorder, local], on_error="raise")
    multi.start_run("r")
    with pytest.raises(TrackingError, match="flaky log_metrics") as raised:
        multi.log_metrics({"a": 1})
    assert [name for name, _ in raised.value.errors] == ["flaky"]
    assert local.load_run("r")["metrics"][0]["metrics"] == {"a": 1.0}
    with pytest.raises(TrackingError, match="flaky end_run"):
        multi.end_run()
    assert local.load_run("r")["final_state"]["status"] == "finished"
    assert multi.open_run_ids == [] and local.open_run_ids == []


def test_backend_that_cannot_start_is_left_out_of_the_run(tmp_path: Path) -> None:
    local = LocalFileTracker(tmp_path)
    recorder = flaky({"start_run"})
    multi = MultiTracker([recorder, local], on_error="ignore")
    run_id = multi.start_run("r")
    multi.log_metrics({"a": 1})
    multi.end_run()
    assert run_id == "r"  # the first backend that did start names the run
    assert [call[0] for call in recorder.calls] == ["start_run"]
    assert local.load_run("r")["final_state"]["status"] == "finished"


def test_raise_policy_on_start_ends_the_runs_that_did_start(tmp_path: Path) -> None:
    local = LocalFileTracker(tmp_path)
    multi = MultiTracker([local, flaky({"start_run"})], on_error="raise")
    with pytest.raises(TrackingError, match="flaky start_run"):
        multi.start_run("r")
    assert multi.open_run_ids == [] and local.open_run_ids == []
    assert local.load_run("r")["final_state"]["status"] == "failed"


def test_no_backend_starting_is_an_error_under_any_policy() -> None:
    multi = MultiTracker([flaky({"start_run"})], on_error="ignore")
    with pytest.raises(TrackingError, match="no backend could start"):
        multi.start_run("r")


def test_local_backend_that_cannot_write_fails_alone(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    broken = LocalFileTracker(blocker)
    healthy = LocalFileTracker(tmp_path / "ok")
    multi = MultiTracker([broken, healthy], on_error="ignore")
    multi.start_run("r")
    multi.log_metrics({"a": 1})
    multi.end_run()
    assert [name for name, _ in multi.errors] == ["local#0"]
    assert isinstance(multi.errors[0][1], OSError)
    assert healthy.load_run("r")["metrics"][0]["metrics"] == {"a": 1.0}


def test_keyboard_interrupt_kills_the_run_in_every_backend(tmp_path: Path) -> None:
    one, two = two_locals(tmp_path)
    multi = MultiTracker([one, two])
    with pytest.raises(KeyboardInterrupt), multi:
        run_id = multi.active_run_id
        raise KeyboardInterrupt
    assert run_id is not None
    assert one.load_run(run_id)["final_state"]["status"] == "killed"
    assert two.load_run(run_id)["final_state"]["status"] == "killed"


def test_bad_input_is_rejected_before_any_backend_sees_it(tmp_path: Path) -> None:
    recorder = flaky(set())
    multi = MultiTracker([recorder, LocalFileTracker(tmp_path)])
    multi.start_run("r")
    with pytest.raises(TypeError, match="'x'"):
        multi.log_metrics({"x": "high"})
    with pytest.raises(FileNotFoundError):
        multi.log_artifact(tmp_path / "missing")
    multi.end_run()
    assert [call[0] for call in recorder.calls] == ["start_run", "end_run"]


def test_constructor_rejects_no_trackers_and_unknown_policies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        MultiTracker([])
    with pytest.raises(ValueError, match="on_error"):
        MultiTracker([LocalFileTracker(tmp_path)], on_error="explode")  # type: ignore[arg-type]


# -- extras and redaction ---------------------------------------------------------------------


def test_an_extra_goes_to_exactly_the_backends_declaring_it(tmp_path: Path) -> None:
    tables = RecordingTracker(backend_name="tables", capabilities={LOG_TABLE})
    histograms = RecordingTracker(backend_name="histograms", capabilities={LOG_HISTOGRAM, FLUSH})
    local = LocalFileTracker(tmp_path)
    multi = MultiTracker([tables, histograms, local])
    assert multi.capabilities == {LOG_TABLE, LOG_HISTOGRAM, FLUSH, CLOSE}
    multi.start_run("r")
    multi.log_metrics({"a": 1}, step=3)
    multi.log_table("answers", iter([{"q": "2+2", "a": 4}]))
    multi.log_histogram("weights", [0.1, 0.2])
    multi.flush()
    multi.close()
    multi.end_run()
    assert [c[0] for c in tables.calls] == ["start_run", "log_metrics", "log_table", "end_run"]
    assert tables.calls_of("log_table") == [("r#0", "answers", [{"q": "2+2", "a": 4}], None)]
    assert [c[0] for c in histograms.calls] == [
        "start_run", "log_metrics", "log_histogram", "flush", "end_run"]
    assert histograms.calls_of("log_histogram") == [("r#0", "weights", [0.1, 0.2], 4)]
    assert local.load_run("r")["final_state"]["status"] == "finished"


def test_multi_declares_only_the_extras_some_backend_has(tmp_path: Path) -> None:
    multi = MultiTracker([LocalFileTracker(tmp_path)])
    assert multi.capabilities == {FLUSH, CLOSE}


def test_params_are_redacted_with_every_backends_patterns(tmp_path: Path) -> None:
    strict = RecordingTracker(TrackingConfig(redact_patterns=[r"acme-[0-9]{4}"]))
    local = LocalFileTracker(tmp_path)
    multi = MultiTracker([local, strict])
    multi.start_run("r")
    multi.log_params({"endpoint": "call acme-1234 please"})
    multi.end_run()
    assert local.load_run("r")["params"] == {"endpoint": "call ***REDACTED*** please"}
    assert strict.runs["r#0"].params == {"endpoint": "call ***REDACTED*** please"}
