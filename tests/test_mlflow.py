"""MLflowTracker against real MLflow: a sqlite store and a real ``mlflow server``, every
result read back with ``MlflowClient``.

A fresh sqlite database costs ~2 s (schema migration) and the server ~7 s to start, so both
are module-scoped and every test works in its own experiment. The server is launched before
the sqlite tests run, so its start-up overlaps them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import MlflowServer, free_port, mlflow_server_fixture

from pytest_insidellms.experiment_tracking import (
    TrackingConfig,
    TrackingError,
    TrackingWarning,
    create_tracker,
    sanitize_key,
)
from pytest_insidellms.experiment_tracking import mlflow as mlflow_backend
from pytest_insidellms.experiment_tracking.mlflow import MLflowTracker

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Imported after the telemetry switch: MLflow reads it on import.
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient

FLUSH_THREAD = "insidellms-mlflow-flush"

mlflow_server = mlflow_server_fixture("module")


@dataclass
class Store:
    kind: str
    uri: str
    client: Any  # an MlflowClient of its own, for reading back


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("mlflow-sqlite") / "mlflow.db"
    return f"sqlite:///{path.as_posix()}"


@pytest.fixture(scope="module", autouse=True)
def _start_server_early(request: pytest.FixtureRequest) -> None:
    wanted = any(
        item.module is request.module
        and getattr(getattr(item, "callspec", None), "params", {}).get("store") == "http"
        for item in request.session.items
        if isinstance(item, pytest.Function)
    )
    if wanted:
        request.getfixturevalue("mlflow_server")


@pytest.fixture(scope="module", params=["sqlite", "http"])
def store(request: pytest.FixtureRequest, sqlite_uri: str) -> Store:
    if request.param == "sqlite":
        uri = sqlite_uri
    else:
        server: MlflowServer = request.getfixturevalue("mlflow_server")
        uri = server.wait_ready()
    return Store(request.param, uri, MlflowClient(tracking_uri=uri))


@pytest.fixture
def sqlite_store(sqlite_uri: str) -> Store:
    return Store("sqlite", sqlite_uri, MlflowClient(tracking_uri=sqlite_uri))


MakeTracker = Callable[..., MLflowTracker]


@pytest.fixture
def make_tracker(request: pytest.FixtureRequest) -> Iterator[MakeTracker]:
    """Trackers in a fresh experiment per test; the timer is off unless asked for, so
    requests happen only when a test says so. Open runs are ended afterwards."""
    made: list[MLflowTracker] = []
    experiment = f"{request.node.name}-{uuid.uuid4().hex[:8]}"

    def make(store: Store, **kwargs: Any) -> MLflowTracker:
        kwargs.setdefault("experiment_name", experiment)
        kwargs.setdefault("flush_interval", 3600.0)
        tracker = MLflowTracker(tracking_uri=store.uri, **kwargs)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.end_all_runs()
        tracker.close()


def history(store: Store, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in store.client.get_metric_history(run_id, key)]


def get_run(store: Store, run_id: str) -> MlflowRun:
    run: MlflowRun = store.client.get_run(run_id)
    return run


# -- limits and SDK ----------------------------------------------------------------------------


def test_batch_and_value_limits_match_mlflows_own() -> None:
    from mlflow.utils import validation

    assert mlflow_backend.MAX_METRICS_PER_BATCH == validation.MAX_METRICS_PER_BATCH
    assert mlflow_backend.MAX_PARAMS_TAGS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert mlflow_backend.MAX_ENTITIES_PER_BATCH == validation.MAX_ENTITIES_PER_BATCH
    assert mlflow_backend.MAX_BATCH_LOG_REQUEST_SIZE == validation.MAX_BATCH_LOG_REQUEST_SIZE
    assert mlflow_backend.MAX_PARAM_VAL_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert mlflow_backend.MAX_TAG_VAL_LENGTH == validation.MAX_TAG_VAL_LENGTH


def test_missing_mlflow_raises_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"pip install 'pytest-insidellms\[mlflow\]'"):
        MLflowTracker(tracking_uri=f"sqlite:///{tmp_path}/never.db")
    assert not (tmp_path / "never.db").exists()


def test_unreachable_server_fails_fast_with_a_tracking_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
                 "MLFLOW_DISABLE_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"MLflow at {uri}: cannot open experiment") as info:
        create_tracker("mlflow", tracking_uri=uri, experiment_name="x")
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"a dead server took {elapsed:.1f} s to fail"
    assert info.value.errors[0][0] == "mlflow"
    # The bounds come from the tracker's scope, not from the environment (issue 11, item 21).
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_user_settings_for_http_retries_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(TrackingError):
        MLflowTracker(tracking_uri=f"http://127.0.0.1:{free_port()}")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


# -- runs ------------------------------------------------------------------------------------


def test_runs_carry_names_parent_tags_config_tags_and_notes(
    store: Store, make_tracker: MakeTracker, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    config = TrackingConfig(project="ignored", tags=["smoke", "nightly build"], notes="why: a test")
    tracker = make_tracker(store, config=config)
    session = tracker.start_run("session")
    module = tracker.start_run("evals/test_qa.py", nested=True)
    tracker.end_all_runs()
    assert capsys.readouterr().out == ""  # MLflow prints "View run" links unless told not to

    parent, child = get_run(store, session), get_run(store, module)
    assert (parent.info.run_name, child.info.run_name) == ("session", "evals/test_qa.py")
    assert child.data.tags["mlflow.parentRunId"] == session
    assert "mlflow.parentRunId" not in parent.data.tags
    for run in (parent, child):
        assert run.data.tags["smoke"] == run.data.tags["nightly build"] == "true"
        assert run.data.tags["mlflow.note.content"] == "why: a test"
        assert run.info.experiment_id == tracker.experiment_id
    experiment = store.client.get_experiment(tracker.experiment_id)
    assert experiment.name == tracker.experiment_name


def test_statuses_map_to_finished_failed_and_killed(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    ids = {}
    for status in ("finished", "failed", "killed"):
        ids[status] = tracker.start_run(status)
        child = tracker.start_run(f"{status}-child", nested=True)
        tracker.end_run(status, run_id=ids[status])  # ends the child with it
        ids[f"{status}-child"] = child
    for status in ("finished", "failed", "killed"):
        for run_id in (ids[status], ids[f"{status}-child"]):
            info = get_run(store, run_id).info
            assert info.status == status.upper()
            assert info.end_time is not None and info.end_time >= info.start_time


def test_interleaved_open_runs_keep_their_own_data(store: Store, make_tracker: MakeTracker) -> None:
    tracker = make_tracker(store)
    a = tracker.start_run("a")
    b = tracker.start_run("b")
    for step in range(3):
        tracker.log_metrics({"score": step}, run_id=a)
        tracker.log_metrics({"score": 10 + step}, run_id=b)
    tracker.log_params({"who": "a"}, run_id=a)
    tracker.log_params({"who": "b"}, run_id=b)
    tracker.end_run(run_id=a)
    tracker.log_metrics({"late": 1.0}, run_id=b)
    tracker.end_run(run_id=b)

    assert history(store, a, "score") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert history(store, b, "score") == [(0, 10.0), (1, 11.0), (2, 12.0)]
    assert get_run(store, a).data.params == {"who": "a"}
    assert get_run(store, b).data.params == {"who": "b"}
    assert "late" not in get_run(store, a).data.metrics
    assert get_run(store, b).data.metrics["late"] == 1.0


def test_run_location_is_the_ui_url_or_the_mlflow_ui_command(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    assert tracker.run_location() is None
    run_id = tracker.start_run("r")
    location = tracker.run_location()
    tracker.end_run()
    if store.kind == "http":
        assert location == f"{store.uri}/#/experiments/{tracker.experiment_id}/runs/{run_id}"
    else:
        assert location == f"mlflow ui --backend-store-uri {store.uri}"
    assert tracker.run_location(run_id) == location  # still known after the run ended


# -- metrics ---------------------------------------------------------------------------------


def test_metric_history_keeps_steps_and_ends_with_the_final_value(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    for passed in range(5):  # a running count, as the plugin logs outcome totals
        tracker.log_metrics({"passed": passed})
    for value in (9, 8, 7, 6, 5):  # one step, several values: the last one must win
        tracker.log_metrics({"same_step": value}, step=7)
    tracker.end_run()

    assert history(store, run_id, "passed") == [(s, float(s)) for s in range(5)]
    run = get_run(store, run_id)
    assert run.data.metrics["passed"] == 4.0
    assert [v for _, v in history(store, run_id, "same_step")] == [9.0, 8.0, 7.0, 6.0, 5.0]
    assert run.data.metrics["same_step"] == 5.0


def test_one_call_shares_a_timestamp_and_timestamps_increase_across_calls(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    for value in range(50):  # faster than one call a millisecond
        tracker.log_metrics({"a": value, "b": -value}, step=3)
    tracker.end_run()

    stamps = {key: [m.timestamp for m in store.client.get_metric_history(run_id, key)]
              for key in ("a", "b")}
    assert stamps["a"] == stamps["b"]
    assert all(later > earlier for earlier, later in zip(stamps["a"], stamps["a"][1:]))
    assert get_run(store, run_id).data.metrics == {"a": 49.0, "b": -49.0}


def test_nan_stays_nan_and_infinity_becomes_the_largest_float(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    tracker.log_metrics({"nan": math.nan, "inf": math.inf, "neg_inf": -math.inf, "ok": 0.5})
    tracker.end_run()
    metrics = get_run(store, run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == sys.float_info.max
    assert metrics["neg_inf"] == -sys.float_info.max
    assert metrics["ok"] == 0.5


def test_sanitised_nasty_keys_are_accepted_by_mlflow(
    store: Store, make_tracker: MakeTracker
) -> None:
    nasty = ["test_x[param-1]", "a//b", "/lead", "..x", "trail/", "a/./c", "./x", ".",
             "ünïcødé/ключ", "x" * 300, "y" * 300 + "/z", "with spaces", " padded ", "c:d",
             "tab\there", "a\\b", "semi;colon", "q?u=e&r#y", "a/../b", "dots...", "x/..."]
    expected = {sanitize_key(key) for key in nasty}
    assert len(expected) == len(nasty)
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    tracker.log_metrics({key: 1.0 for key in nasty})
    tracker.log_params({key: "v" for key in nasty})
    tracker.end_run()
    data = get_run(store, run_id).data
    assert set(data.metrics) == expected
    assert set(data.params) == expected


# -- params ----------------------------------------------------------------------------------


def test_params_become_strings_and_a_changed_value_is_kept_as_a_version(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    tracker.log_params({"model": "gpt-x", "k": 3, "temps": [0.0, 0.5], "cfg": {"a": 1, "b": "é"},
                        "flag": True, "none": None})
    tracker.log_params({"model": "gpt-x"})  # same value: nothing to do
    tracker.log_params({"model": "gpt-y"})
    tracker.log_params({"model": "gpt-y"})
    tracker.log_params({"model": "gpt-x"})  # back to the first value: still a change
    tracker.end_run()
    assert get_run(store, run_id).data.params == {
        "model": "gpt-x", "model.v2": "gpt-y", "model.v3": "gpt-x",
        "k": "3", "temps": "[0.0,0.5]", "cfg": '{"a":1,"b":"é"}', "flag": "True", "none": "None",
    }


def test_long_param_values_are_truncated_with_a_warning(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    with pytest.warns(TrackingWarning, match=r"param 'prompt' has 7000 characters.*6000"):
        tracker.log_params({"prompt": "p" * 6990 + "0123456789"})
    with pytest.warns(TrackingWarning):  # the same value once cut: skipped
        tracker.log_params({"prompt": "p" * 6000 + "tail differs after the cut"})
    tracker.end_run()
    assert get_run(store, run_id).data.params == {"prompt": "p" * 6000}


# -- batching --------------------------------------------------------------------------------


def test_batching_sends_thousands_of_values_in_a_handful_of_requests(
    store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(store)
    calls: list[tuple[int, int]] = []
    log_batch = tracker.client.log_batch

    def counting_log_batch(run_id: str, metrics: Any = (), params: Any = (), **kw: Any) -> Any:
        calls.append((len(metrics), len(params)))
        return log_batch(run_id, metrics=metrics, params=params, **kw)

    tracker.client.log_batch = counting_log_batch
    run_id = tracker.start_run("r")
    for step in range(100):
        tracker.log_metrics({f"metric_{k}": step * k for k in range(25)})
    tracker.log_params({f"param_{k}": k for k in range(150)})
    tracker.end_run()

    assert sum(m for m, _ in calls) == 2500 and sum(p for _, p in calls) == 150
    assert len(calls) <= 5, calls
    assert all(m <= 1000 and p <= 100 and m + p <= 1000 for m, p in calls)
    run = get_run(store, run_id)
    assert len(run.data.params) == 150
    assert len(run.data.metrics) == 25
    assert history(store, run_id, "metric_3")[-1] == (99, 297.0)
    assert len(history(store, run_id, "metric_24")) == 100


def test_big_param_values_are_split_below_the_request_size_limit(
    sqlite_store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(sqlite_store)
    sizes: list[int] = []
    log_batch = tracker.client.log_batch

    def measuring_log_batch(run_id: str, metrics: Any = (), params: Any = (), **kw: Any) -> Any:
        import json

        sizes.append(sum(len(json.dumps(p.key)) + len(json.dumps(p.value)) for p in params))
        return log_batch(run_id, metrics=metrics, params=params, **kw)

    tracker.client.log_batch = measuring_log_batch
    run_id = tracker.start_run("r")
    tracker.log_params({f"p{k}": "ж" * 6000 for k in range(60)})  # 36 kB each as JSON
    tracker.end_run()
    assert len(sizes) >= 3 and max(sizes) < mlflow_backend.MAX_BATCH_LOG_REQUEST_SIZE
    assert len(get_run(sqlite_store, run_id).data.params) == 60


def test_timer_flushes_an_open_run_and_its_thread_ends_with_the_last_run(
    sqlite_store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(sqlite_store, flush_interval=0.1)
    run_id = tracker.start_run("r")
    threads = [t for t in threading.enumerate() if t.name == FLUSH_THREAD]
    assert len(threads) == 1 and threads[0].daemon
    tracker.log_metrics({"seen": 1.0})
    deadline = time.monotonic() + 5
    while "seen" not in get_run(sqlite_store, run_id).data.metrics:
        assert time.monotonic() < deadline, "the timer never flushed"
        time.sleep(0.05)
    assert get_run(sqlite_store, run_id).info.status == "RUNNING"
    tracker.end_run()
    threads[0].join(timeout=5)
    assert not threads[0].is_alive()


def test_timer_leaves_a_run_alone_while_its_batches_keep_filling(
    sqlite_store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(sqlite_store, flush_interval=0.5)
    sent: list[int] = []
    log_batch = tracker.client.log_batch

    def counting_log_batch(run_id: str, metrics: Any = (), params: Any = (), **kw: Any) -> Any:
        sent.append(len(metrics))
        return log_batch(run_id, metrics=metrics, params=params, **kw)

    tracker.client.log_batch = counting_log_batch
    run_id = tracker.start_run("busy")
    for call in range(100):  # a full batch every 5 calls, about every 0.1 s
        tracker.log_metrics({f"m{k}": call for k in range(200)})
        time.sleep(0.02)
    assert sent and set(sent) == {1000}, sent  # no partial batch from the timer
    tracker.end_run()
    assert sum(sent) == 100 * 200
    assert get_run(sqlite_store, run_id).data.metrics["m7"] == 99.0


def test_flush_sends_buffered_data_at_once(sqlite_store: Store, make_tracker: MakeTracker) -> None:
    tracker = make_tracker(sqlite_store)
    run_id = tracker.start_run("r")
    tracker.log_metrics({"m": 1.0})
    tracker.log_params({"p": "x"})
    assert get_run(sqlite_store, run_id).data.metrics == {}
    tracker.flush()
    data = get_run(sqlite_store, run_id).data
    assert (data.metrics, data.params) == ({"m": 1.0}, {"p": "x"})


def test_a_failed_background_flush_is_raised_by_the_next_call(
    sqlite_store: Store, make_tracker: MakeTracker
) -> None:
    tracker = make_tracker(sqlite_store, flush_interval=0.05)
    run_id = tracker.start_run("r")
    sqlite_store.client.delete_run(run_id)  # MLflow now refuses to log to it
    tracker.log_metrics({"m": 1.0})
    deadline = time.monotonic() + 5
    with pytest.raises(TrackingError, match=rf"to run {run_id} failed") as info:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            tracker.log_metrics({"m": 2.0})
    assert info.value.errors[0][0] == "mlflow"
    sqlite_store.client.restore_run(run_id)
    tracker.end_run("failed")
    assert get_run(sqlite_store, run_id).info.status == "FAILED"


# -- artifacts -------------------------------------------------------------------------------


def test_artifacts_land_under_their_names(
    store: Store, make_tracker: MakeTracker, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"ok": true}')
    odd = tmp_path / "tmp123.txt"
    odd.write_text("renamed")
    bundle = tmp_path / "bundle"
    (bundle / "deep").mkdir(parents=True)
    (bundle / "a.txt").write_text("a")
    (bundle / "deep" / "b.txt").write_text("b")

    tracker = make_tracker(store)
    run_id = tracker.start_run("r")
    tracker.log_artifact(report)
    tracker.log_artifact(odd, name="summaries/final.txt", type="summary")
    tracker.log_artifact(bundle, name="outputs/bundle")
    tracker.end_run()

    out = Path(store.client.download_artifacts(run_id, "", str(tmp_path / "down")))
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["outputs/bundle/a.txt", "outputs/bundle/deep/b.txt", "report.json",
                     "summaries/final.txt"]
    assert (out / "summaries/final.txt").read_text() == "renamed"
    assert (out / "outputs/bundle/deep/b.txt").read_text() == "b"
    assert odd.read_text() == "renamed" and (bundle / "a.txt").exists()  # sources untouched


# -- resume ----------------------------------------------------------------------------------


def test_resume_reopens_a_run_and_continues_its_steps_and_params(
    store: Store, make_tracker: MakeTracker
) -> None:
    first = make_tracker(store)
    run_id = first.start_run("evals/test_qa.py")
    first.log_metrics({"m": 1.0})
    first.log_metrics({"m": 2.0})
    first.log_params({"model": "a"})
    first.log_params({"model": "b"})
    first.end_run("failed")

    second = make_tracker(store, experiment_name=first.experiment_name)
    assert second.start_run(run_id=run_id) == run_id
    assert get_run(store, run_id).info.status == "RUNNING"
    second.log_metrics({"m": 3.0})  # continues after the last step
    second.log_params({"model": "b"})  # the latest value again: skipped
    second.log_params({"model": "c"})
    second.end_run()

    run = get_run(store, run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "evals/test_qa.py"
    assert history(store, run_id, "m") == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert run.data.params == {"model": "a", "model.v2": "b", "model.v3": "c"}


def test_resuming_a_missing_run_names_the_id(store: Store, make_tracker: MakeTracker) -> None:
    tracker = make_tracker(store)
    missing = uuid.uuid4().hex
    with pytest.raises(ValueError, match=rf"cannot resume MLflow run '{missing}': no such run"):
        tracker.start_run(run_id=missing)
    assert tracker.open_run_ids == []


# -- living beside user code -----------------------------------------------------------------


def test_user_code_using_the_fluent_api_is_undisturbed(
    sqlite_store: Store, make_tracker: MakeTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store.uri)
    tracker = make_tracker(sqlite_store)
    user_experiment = sqlite_store.client.create_experiment(f"user-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run(experiment_id=user_experiment, run_name="user") as user_run:
        ours = tracker.start_run("ours")
        nested = tracker.start_run("ours-child", nested=True)
        mlflow.log_metric("user_metric", 1.0)
        tracker.log_metrics({"our_metric": 2.0})
        tracker.end_all_runs()
        assert mlflow.get_tracking_uri() == sqlite_store.uri
        active = mlflow.active_run()
        assert active is not None and active.info.run_id == user_run.info.run_id
        mlflow.log_param("after", "yes")
    assert mlflow.active_run() is None

    user = get_run(sqlite_store, user_run.info.run_id)
    assert user.info.status == "FINISHED"
    assert user.data.metrics == {"user_metric": 1.0} and user.data.params == {"after": "yes"}
    assert get_run(sqlite_store, nested).data.metrics == {"our_metric": 2.0}
    assert get_run(sqlite_store, ours).data.metrics == {}
    assert get_run(sqlite_store, nested).info.experiment_id == tracker.experiment_id


def test_relative_default_store_is_pinned_and_artifacts_go_beside_it(
    sqlite_uri: str, make_tracker: MakeTracker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = Path(sqlite_uri.removeprefix("sqlite:///"))
    monkeypatch.chdir(db.parent)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = f"proj-{uuid.uuid4().hex[:8]}"
    tracker = MLflowTracker(config=TrackingConfig(project=project))  # MLflow's own default URI
    monkeypatch.chdir(tmp_path)  # a later chdir must not move the store
    assert tracker.tracking_uri == sqlite_uri
    assert tracker.experiment_name == project
    client = MlflowClient(tracking_uri=sqlite_uri)
    location = client.get_experiment(tracker.experiment_id).artifact_location
    assert location == (db.parent / "mlartifacts").as_uri()
    note = tmp_path / "note.txt"
    note.write_text("x")
    run_id = tracker.start_run("r")
    tracker.log_artifact(note)
    tracker.end_run()
    assert (db.parent / "mlartifacts" / run_id / "artifacts" / "note.txt").read_text() == "x"


def test_explicit_artifact_location_and_experiment_from_config(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = f"exp-{uuid.uuid4().hex[:8]}"
    config = TrackingConfig(project="not-this", experiment_name=name)
    tracker = MLflowTracker(sqlite_store.uri, config=config, artifact_location="arts")
    assert tracker.experiment_name == name
    experiment = sqlite_store.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (tmp_path / "arts").as_uri()
    again = MLflowTracker(sqlite_store.uri, experiment_name=name)  # found, not recreated
    assert again.experiment_id == tracker.experiment_id


def test_logged_model_can_be_registered(sqlite_store: Store, tmp_path: Path) -> None:
    # MLflow's pyfunc module warns on import (about its own type hints), which our
    # warnings-as-errors setting would turn into a failure: save the model in a subprocess.
    name = f"exp-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(f"""
        import mlflow.pyfunc
        from pytest_insidellms.experiment_tracking.mlflow import MLflowTracker

        class Echo(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input: list[str], params=None) -> list[str]:
                return model_input

        tracker = MLflowTracker({sqlite_store.uri!r}, experiment_name={name!r})
        tracker.start_run("with-model")
        print(tracker.log_model(Echo(), "echo", pip_requirements=["mlflow"]))
        tracker.end_run()
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    model_uri = done.stdout.strip().splitlines()[-1]
    assert model_uri.startswith("runs:/") and model_uri.endswith("/echo")
    run_id = model_uri.split("/")[1]
    listed = {f.path for f in sqlite_store.client.list_artifacts(run_id, "echo")}
    assert "echo/MLmodel" in listed

    tracker = MLflowTracker(sqlite_store.uri, experiment_name=name)
    model_name = f"echo-{uuid.uuid4().hex[:8]}"
    first = tracker.register_model(model_uri, model_name)
    second = tracker.register_model(model_uri, model_name)  # the model exists: a new version
    assert (str(first.version), str(second.version)) == ("1", "2")
    stored = sqlite_store.client.get_model_version(model_name, "1")
    assert stored.run_id == run_id
    assert stored.source == f"{get_run(sqlite_store, run_id).info.artifact_uri}/echo"
