"""What a script or test ported from insideLLMs relies on (issue 12, items 10-14 and 16).

Each test calls the package the way insideLLMs' docstrings, tests and examples do, and checks
what the backends received.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from local_runs import only_session

from pytest_insidellms.experiment_tracking import (
    ExperimentTracker,
    LocalFileTracker,
    MLflowTracker,
    MultiTracker,
    ReferenceTrackerAdapter,
    TrackingConfig,
    WandBTracker,
    auto_track,
    create_tracker,
)
from pytest_insidellms.experiment_tracking.base import (
    Artifact,
    Run,
    follows_reference_contract,
    import_sdk,
)
from pytest_insidellms.testing import RecordingTracker


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Any:
    # A reference tracker that MultiTracker cannot drive shows up only as a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- trackers written to insideLLMs' contract -----------------------------------------------


class ReferenceStyleTracker(ExperimentTracker):  # type: ignore[type-arg]
    """As insideLLMs' docs show one: the five public methods, one active run."""

    def __init__(self, config: TrackingConfig | None = None) -> None:
        super().__init__(config)
        self.calls: list[tuple[Any, ...]] = []
        self.active = False

    def start_run(  # type: ignore[override]
        self, run_name: str | None = None, run_id: str | None = None, nested: bool = False
    ) -> str:
        self.active = True
        self.calls.append(("start", run_name, run_id, nested))
        return run_id or "run-id"

    def end_run(self, status: str = "finished") -> None:  # type: ignore[override]
        self.active = False
        self.calls.append(("end", status))

    def log_metrics(  # type: ignore[override]
        self, metrics: dict[str, float], step: int | None = None
    ) -> None:
        self.calls.append(("metrics", metrics, step))

    def log_params(self, params: dict[str, Any]) -> None:  # type: ignore[override]
        self.calls.append(("params", params))

    def log_artifact(  # type: ignore[override]
        self, artifact_path: str, artifact_name: str | None = None,
        artifact_type: str | None = None,
    ) -> None:
        self.calls.append(("artifact", artifact_path, artifact_name, artifact_type))


class StubHookTracker(ReferenceStyleTracker):
    """The same, with the stub hooks a user adds to get past 'abstract class'."""

    def _open_run(self, name: str, run_id: str | None, parent: Run | None) -> Run:
        return None  # type: ignore[return-value]

    def _record_metrics(self, run: Run, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        pass

    def _record_params(self, run: Run, params: dict[str, Any]) -> None:
        pass

    def _record_artifact(self, run: Run, artifact: Artifact) -> None:
        pass

    def _close_run(self, run: Run, status: str, ended_at: Any) -> None:
        pass


class DuckTracker:
    """Not an ExperimentTracker at all: the five methods only."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start_run(self, run_name: str | None = None, run_id: str | None = None,
                  nested: bool = False) -> str:
        self.calls.append(("start", run_name))
        return "duck-1"

    def end_run(self, status: str = "finished") -> None:
        self.calls.append(("end", status))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append(("metrics", metrics, step))

    def log_params(self, params: dict[str, Any]) -> None:
        self.calls.append(("params", params))

    def log_artifact(self, artifact_path: str, artifact_name: str | None = None,
                     artifact_type: str | None = None) -> None:
        self.calls.append(("artifact", artifact_name))


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text('{"accuracy": 0.9}', encoding="utf-8")
    return path


# -- item 10: insideLLMs' keyword names for log_artifact ------------------------------------


def test_log_artifact_takes_insidellms_keyword_names(tmp_path: Path, artifact: Path) -> None:
    tracker = LocalFileTracker(tmp_path / "out")
    tracker.start_run(run_name="r")
    tracker.log_artifact(artifact_path=str(artifact), artifact_name="scores.json",
                         artifact_type="data")
    tracker.log_artifact(path=artifact, name="again.json", type="report")
    tracker.end_run()
    entries = tracker.load_run("r")["artifacts"]
    assert [(e["name"], e["type"]) for e in entries] == [("scores.json", "data"),
                                                         ("again.json", "report")]
    copied = tracker.run_path("r") / "artifacts" / "scores.json"
    assert copied.read_text(encoding="utf-8") == '{"accuracy": 0.9}'


def test_log_artifact_keywords_reach_every_backend_of_a_multitracker(artifact: Path) -> None:
    first, second = RecordingTracker(), RecordingTracker()
    multi = MultiTracker([first, second], on_error="raise")
    multi.start_run(run_name="r")
    multi.log_artifact(str(artifact), artifact_name="a.json", artifact_type="data")
    for rec in (first, second):
        (run,) = rec.runs.values()
        assert [(a.name, a.type, a.content) for a in run.artifacts] == [
            ("a.json", "data", b'{"accuracy": 0.9}')]


def test_log_artifact_refuses_a_name_given_twice_or_no_path(artifact: Path) -> None:
    rec = RecordingTracker()
    rec.start_run(run_name="r")
    with pytest.raises(TypeError, match="both name= and artifact_name="):
        rec.log_artifact(artifact, name="a", artifact_name="b")
    with pytest.raises(TypeError, match="both path= and artifact_path="):
        rec.log_artifact(artifact, artifact_path=artifact)
    with pytest.raises(TypeError, match="needs the artifact's path"):
        rec.log_artifact(artifact_name="a")
    assert rec.calls_of("log_artifact") == []


# -- item 11: insideLLMs' wording in exception messages -------------------------------------


def test_logging_with_no_run_raises_no_active_run(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    with pytest.raises(RuntimeError, match="No active run"):
        tracker.log_metrics({"x": 1.0})
    with pytest.raises(RuntimeError, match="No active run"):
        tracker.log_params({"x": "y"})
    # The run is checked before the path: a missing file is not the error reported.
    with pytest.raises(RuntimeError, match="No active run"):
        tracker.log_artifact(str(tmp_path / "does-not-exist.txt"))


def test_unknown_backend_run_not_found_and_empty_multitracker_wording(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown backend"):
        create_tracker("neptune")
    with pytest.raises(FileNotFoundError, match="Run not found"):
        LocalFileTracker(tmp_path).load_run("nonexistent")
    with pytest.raises(ValueError, match="requires at least one tracker"):
        MultiTracker([])


@pytest.mark.parametrize(("sdk", "make"), [
    ("wandb", lambda: WandBTracker(mode="offline")),
    ("mlflow", lambda: MLflowTracker()),
    ("wandb", lambda: create_tracker("wandb")),
    ("mlflow", lambda: create_tracker("mlflow")),
])
def test_a_missing_sdk_is_required_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, sdk: str, make: Any
) -> None:
    monkeypatch.setitem(sys.modules, sdk, None)  # import raises ImportError, find_spec finds none
    with pytest.raises(ImportError) as caught:
        make()
    message = str(caught.value)
    assert message.startswith(f"{sdk} is required")
    assert message.endswith(f"pip install 'pytest-insidellms[{sdk}]'")


def test_import_sdk_names_the_module_and_the_extra() -> None:
    with pytest.raises(ImportError, match=r"^no_such_sdk_xyz is required for the tensorboard "
                                          r"backend; install it with: pip install "
                                          r"'pytest-insidellms\[tensorboard\]'$"):
        import_sdk("no_such_sdk_xyz", "tensorboard")


# -- item 12: a result that carries only its summary attributes -----------------------------


@dataclass(frozen=True)
class SummaryOnlyResult:
    success_rate: float
    total_count: int
    success_count: int
    error_count: int
    score: Any
    duration_seconds: float | None
    experiment_id: str
    model_info: Any
    probe_name: str
    probe_category: Any


def test_log_experiment_result_accepts_a_summary_without_results() -> None:
    rec = RecordingTracker()
    rec.start_run(run_name="r")
    result = SummaryOnlyResult(
        success_rate=0.75, total_count=4, success_count=3, error_count=1,
        score=SimpleNamespace(accuracy=0.5, precision=None, total_tokens=123),
        duration_seconds=1.25, experiment_id="exp-1",
        model_info=SimpleNamespace(name="model-A", provider="provider-X"),
        probe_name="probe-foo", probe_category=SimpleNamespace(value="behaviour"))
    rec.log_experiment_result(result, prefix="harness/")
    ((_, metrics, _),) = rec.calls_of("log_metrics")
    assert metrics == {
        "harness/success_rate": 0.75, "harness/total_count": 4.0, "harness/success_count": 3.0,
        "harness/error_count": 1.0, "harness/accuracy": 0.5, "harness/total_tokens": 123.0,
        "harness/duration_seconds": 1.25}
    ((_, params),) = rec.calls_of("log_params")
    assert params == {"harness/experiment_id": "exp-1", "harness/model_name": "model-A",
                      "harness/model_provider": "provider-X", "harness/probe_name": "probe-foo",
                      "harness/probe_category": "behaviour"}


def test_a_partial_summary_logs_the_attributes_it_has_and_nothing_else_fails() -> None:
    rec = RecordingTracker()
    rec.start_run(run_name="r")
    rec.log_experiment_result(SimpleNamespace(success_rate=0.5, total_count=2, timeout_count=1))
    ((_, metrics, _),) = rec.calls_of("log_metrics")
    assert metrics == {"success_rate": 0.5, "total_count": 2.0, "timeout_count": 1.0}
    with pytest.raises(TypeError, match="neither 'results' nor the summary attributes"):
        rec.log_experiment_result(SimpleNamespace(probe_name="p"))
    with pytest.raises(TypeError, match="success_rate must be a number"):
        rec.log_experiment_result(SimpleNamespace(success_rate="high"))
    assert len(rec.calls_of("log_metrics")) == 1


# -- item 13: trackers written to insideLLMs' contract --------------------------------------


def test_contract_detection_tells_reference_trackers_from_refinements(tmp_path: Path) -> None:
    class LoudLocal(LocalFileTracker):
        """A refinement of this package's contract: it takes run_id= and calls super()."""

        seen: list[dict[str, float]] = []

        def log_metrics(self, metrics: Any, step: int | None = None, *,
                        run_id: str | None = None) -> None:
            self.seen.append(dict(metrics))
            super().log_metrics(metrics, step, run_id=run_id)

    assert follows_reference_contract(ReferenceStyleTracker)
    assert follows_reference_contract(StubHookTracker())
    assert follows_reference_contract(DuckTracker())
    assert not follows_reference_contract(LocalFileTracker)
    assert not follows_reference_contract(RecordingTracker())
    assert not follows_reference_contract(LoudLocal)
    loud = LoudLocal(tmp_path)
    multi = MultiTracker([loud], on_error="raise")
    with multi:
        multi.log_metrics({"x": 1.0})
    assert multi.trackers == [loud]  # not wrapped
    assert loud.load_run(loud.list_runs()[0])["metrics"][0]["metrics"] == {"x": 1.0}


@pytest.mark.parametrize("kind", [ReferenceStyleTracker, StubHookTracker])
def test_reference_tracker_context_manager_and_result(kind: type[ReferenceStyleTracker]) -> None:
    tracker = kind(TrackingConfig(experiment_name="ctx"))
    with tracker as entered:
        assert entered is tracker
        tracker.log_experiment_result(SimpleNamespace(success_rate=1.0, total_count=1),
                                      prefix="eval_")
    assert tracker.calls == [
        ("start", "ctx", None, False),
        # One metrics call with no step, then one params call, as insideLLMs' helper makes.
        ("metrics", {"eval_success_rate": 1.0, "eval_total_count": 1.0}, None),
        ("params", {}),
        ("end", "finished"),
    ]
    with pytest.raises(KeyError), tracker:
        raise KeyError("boom")
    assert tracker.calls[-1] == ("end", "failed")


@pytest.mark.parametrize("kind", [ReferenceStyleTracker, StubHookTracker])
def test_reference_tracker_in_a_multitracker_gets_every_call(
    kind: type[ReferenceStyleTracker], tmp_path: Path, artifact: Path
) -> None:
    reference = kind()
    local = LocalFileTracker(tmp_path / "local")
    multi = MultiTracker([reference, local], on_error="raise")
    run_id = multi.start_run(run_name="r")
    multi.log_metrics({"m": 1.0}, step=7)
    multi.log_metrics({"m": 2.0})
    multi.log_params({"p": "x"})
    multi.log_artifact(str(artifact), artifact_name="a", artifact_type="file")
    multi.end_run()
    assert run_id == "run-id"  # the first backend's id, as in insideLLMs
    assert reference.calls == [
        ("start", "r", None, False),
        ("metrics", {"m": 1.0}, 7),
        ("metrics", {"m": 2.0}, 8),  # the step MultiTracker resolved, the same for both
        ("params", {"p": "x"}),
        ("artifact", str(artifact), "a", "file"),
        ("end", "finished"),
    ]
    assert multi.errors == []
    loaded = local.load_run("r")
    assert [(e["step"], e["metrics"]) for e in loaded["metrics"]] == [(7, {"m": 1.0}),
                                                                      (8, {"m": 2.0})]


def test_a_duck_typed_tracker_works_in_a_multitracker() -> None:
    duck = DuckTracker()
    multi = MultiTracker([duck], on_error="raise")  # type: ignore[list-item]
    with multi:
        multi.log_metrics({"m": 1.0})
    assert duck.calls[1:] == [("metrics", {"m": 1.0}, 0), ("end", "finished")]
    assert duck.calls[0][0] == "start"
    assert multi.trackers[0].backend_name == "DuckTracker"


@pytest.mark.parametrize("kind", [ReferenceStyleTracker, StubHookTracker])
def test_auto_track_drives_a_reference_tracker(kind: type[ReferenceStyleTracker]) -> None:
    tracker = kind()

    @auto_track(tracker)
    def evaluate() -> dict[str, Any]:
        return {"accuracy": 0.9, "note": "not numeric"}

    @auto_track(tracker, experiment_name="broken")
    def broken() -> None:
        raise RuntimeError("nope")

    assert evaluate() == {"accuracy": 0.9, "note": "not numeric"}
    with pytest.raises(RuntimeError, match="nope"):
        broken()
    assert tracker.calls == [
        ("start", "evaluate", None, False), ("metrics", {"accuracy": 0.9}, 0), ("end", "finished"),
        ("start", "broken", None, False), ("end", "failed"),
    ]


def test_adapter_with_a_factory_keeps_runs_open_at_once_apart() -> None:
    made: list[ReferenceStyleTracker] = []

    def factory() -> ReferenceStyleTracker:
        # mypy sees the hooks as abstract; the class gets them when it is created.
        made.append(ReferenceStyleTracker())  # type: ignore[abstract]
        return made[-1]

    adapter = ReferenceTrackerAdapter(factory)
    outer = adapter.start_run(run_name="session")
    inner = adapter.start_run(run_name="module", parent_run_id=outer)
    adapter.log_metrics({"inner": 1.0}, run_id=inner)
    adapter.log_metrics({"outer": 2.0}, run_id=outer)
    adapter.end_run(run_id=outer)  # ends its open child first
    # The same id from each instance: the adapter keeps them apart.
    assert (outer, inner) == ("run-id", "run-id_2")
    session, module = made
    assert session.calls == [("start", "session", None, False), ("metrics", {"outer": 2.0}, 0),
                             ("end", "finished")]
    assert module.calls == [("start", "module", None, False), ("metrics", {"inner": 1.0}, 0),
                            ("end", "finished")]


def test_adapter_with_an_instance_nests_a_second_open_run() -> None:
    shared = ReferenceStyleTracker()  # type: ignore[abstract]
    adapter = ReferenceTrackerAdapter(shared)
    outer = adapter.start_run(run_name="a")
    adapter.start_run(run_name="b", nested=True)
    adapter.end_all_runs()
    assert adapter.open_run_ids == []
    assert shared.calls == [("start", "a", None, False), ("start", "b", None, True),
                            ("end", "finished"), ("end", "finished")]
    assert outer == "run-id"


REFERENCE_CONFTEST = """
import json

from pytest_insidellms.experiment_tracking import ExperimentTracker, ReferenceTrackerAdapter

LOG = []


class InHouseTracker(ExperimentTracker):
    def start_run(self, run_name=None, run_id=None, nested=False):
        LOG.append(["start", run_name, nested])
        return run_name

    def end_run(self, status="finished"):
        LOG.append(["end", status])

    def log_metrics(self, metrics, step=None):
        LOG.append(["metrics", sorted(metrics)])

    def log_params(self, params):
        LOG.append(["params"])

    def log_artifact(self, artifact_path, artifact_name=None, artifact_type=None):
        LOG.append(["artifact", artifact_name])


def pytest_insidellms_make_tracker(name, tracking, track_dir, backend_settings, config):
    if name == "inhouse":
        return ReferenceTrackerAdapter(InHouseTracker)
    if name == "inhouse-instance":
        return InHouseTracker(tracking)
    return None


def pytest_sessionfinish(session):
    with open("calls.json", "w") as handle:
        json.dump(LOG, handle)
"""

REFERENCE_TESTS = """
def test_scores(tracker):
    tracker.log_metrics({"accuracy": 0.5})
"""


@pytest.mark.parametrize("backend", ["inhouse", "inhouse-instance"])
def test_plugin_hook_drives_a_reference_tracker(pytester: pytest.Pytester, backend: str) -> None:
    pytester.makeconftest(REFERENCE_CONFTEST)
    pytester.makepyfile(test_eval=REFERENCE_TESTS)
    result = pytester.runpytest("--track", backend, "--track-run-name", "nightly",
                                "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    calls = json.loads((pytester.path / "calls.json").read_text(encoding="utf-8"))
    starts = [c for c in calls if c[0] == "start"]
    # The session run, then the module run: a fresh instance for each, or nested in one.
    assert starts == [["start", "nightly", False],
                      ["start", "test_eval.py", backend == "inhouse-instance"]]
    assert [c[0] for c in calls].count("end") == 2
    metric_names = [name for c in calls if c[0] == "metrics" for name in c[1]]
    assert "test_scores/accuracy" in metric_names or "accuracy" in metric_names
    assert "warning" not in result.stdout.str().lower().replace("warnings summary", "")


# -- item 14: the newest run of a name ------------------------------------------------------


def test_load_run_latest_reads_the_newest_run_of_a_name(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    for value in (1.0, 2.0, 3.0):
        tracker.start_run(run_name="nightly")
        tracker.log_metrics({"accuracy": value})
        tracker.end_run()
    tracker.start_run(run_id="pinned")
    tracker.end_run()
    assert tracker.list_runs() == ["nightly", "nightly_2", "nightly_3", "pinned"]
    # Without latest: the first run of the name, a directory that was never overwritten.
    assert tracker.load_run("nightly")["metrics"][0]["metrics"] == {"accuracy": 1.0}
    newest = tracker.load_run("nightly", latest=True)
    assert newest["metadata"]["run_id"] == "nightly_3"
    assert newest["metrics"][0]["metrics"] == {"accuracy": 3.0}
    assert tracker.latest_run_id("nightly") == "nightly_3"
    assert tracker.latest_run_id("pinned") == "pinned"  # found by its directory
    with pytest.raises(FileNotFoundError, match="Run not found"):
        tracker.load_run("weekly", latest=True)


# -- item 16: load_run leaves out the keys of missing files ---------------------------------


def test_load_run_leaves_out_the_keys_of_missing_files(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    tracker.start_run(run_name="partial")
    tracker.log_params({"model": "m"})
    tracker.end_run()
    run_dir = tracker.run_path("partial")
    (run_dir / "artifacts.json").unlink()
    (run_dir / "metrics.json").unlink()
    loaded = tracker.load_run("partial")
    assert "artifacts" not in loaded and "metrics" not in loaded
    assert loaded["params"] == {"model": "m"}
    assert loaded["final_state"]["status"] == "finished"
    assert loaded["metadata"]["run_name"] == "partial"


def test_a_run_that_never_ended_has_every_key_from_its_journal(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    tracker.start_run(run_name="open")
    tracker.log_metrics({"x": 1.0})
    loaded = LocalFileTracker(tmp_path).load_run("open")
    assert {"metadata", "metrics", "params", "artifacts", "final_state"} <= set(loaded)
    assert loaded["final_state"]["status"] == "running"
    assert loaded["metrics"][0]["metrics"] == {"x": 1.0}
    assert loaded["params"] == {} and loaded["artifacts"] == []
    tracker.end_run()


def test_the_fixture_logs_a_summary_without_results_by_its_figures(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_summary="""
        from types import SimpleNamespace

        def test_summary(tracker):
            tracker.log_experiment_result(SimpleNamespace(
                success_rate=0.75, total_count=4, success_count=3, probe_name="p"))
    """)
    assert pytester.runpytest("--track", "local", "--track-dir=runs").ret == 0
    (module,) = only_session(pytester.path / "runs").modules.values()
    assert {k: v for k, v in module.metrics.items() if k.startswith("test_summary/")} == {
        "test_summary/success_rate": 0.75, "test_summary/total_count": 4.0,
        "test_summary/success_count": 3.0}
    assert module.params["test_summary/probe_name"] == "p"
