"""SpoolingTracker: the caller pays the journal append only; a delivery thread feeds the
remote in order; a slow, hanging, failing or unbuildable remote is an outage, never a loss."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from pytest_insidellms import LocalFileTracker, MultiTracker, TrackingConfig, TrackingWarning
from pytest_insidellms.experiment_tracking import base
from pytest_insidellms.experiment_tracking.spool import SpoolingTracker, read_sync_state
from pytest_insidellms.experiment_tracking.sync import sync_runs
from pytest_insidellms.testing import RecordedRun, RecordingTracker

#: What a caller's call may cost: a journal append, with room for a loaded machine.
CALLER_BUDGET = 0.2


class SlowRemote(RecordingTracker):
    """Every backend hook takes ``delay`` seconds, like a remote behind a slow network."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def _open_run(self, name: str, run_id: str | None, parent: RecordedRun | None) -> RecordedRun:
        time.sleep(self.delay)
        return super()._open_run(name, run_id, parent)

    def _record_metrics(self, run: RecordedRun, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        time.sleep(self.delay)
        super()._record_metrics(run, metrics, step, timestamp)

    def _record_params(self, run: RecordedRun, params: dict[str, Any]) -> None:
        time.sleep(self.delay)
        super()._record_params(run, params)

    def _close_run(self, run: RecordedRun, status: str, ended_at: datetime) -> None:
        time.sleep(self.delay)
        super()._close_run(run, status, ended_at)


class HangingRemote(RecordingTracker):
    """Hangs in the metrics call of step ``hang_at`` until ``gate`` is set (an HTTP call that
    never answers); ``passed`` is set once that call went through."""

    def __init__(self, hang_at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hang_at = hang_at
        self.gate, self.passed = threading.Event(), threading.Event()

    def _record_metrics(self, run: RecordedRun, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        if step == self.hang_at:
            self.gate.wait(60)
            super()._record_metrics(run, metrics, step, timestamp)
            self.passed.set()
            return
        super()._record_metrics(run, metrics, step, timestamp)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "report.txt"
    path.write_text("as logged")
    return path


def replay_target(name: str) -> RecordingTracker:
    """A fresh destination under the same backend name, so ``sync`` finds the spool's ids."""
    return RecordingTracker(backend_name=name)


def test_a_slow_remote_never_blocks_the_caller(tmp_path: Path, artifact: Path) -> None:
    remote = SlowRemote(delay=0.4, backend_name="slow")
    spool = SpoolingTracker(remote, tmp_path / "spool")
    costs: dict[str, float] = {}
    ids: dict[str, str] = {}
    costs["start_run"] = timed(lambda: ids.update(session=spool.start_run("session")))
    costs["start_run nested"] = timed(lambda: ids.update(module=spool.start_run("m", nested=True)))
    for step in range(4):
        costs[f"log_metrics {step}"] = timed(lambda: spool.log_metrics({"loss": 1.0 / (step + 1)}))
    costs["log_params"] = timed(lambda: spool.log_params({"model": "toy"}))
    costs["log_artifact"] = timed(lambda: spool.log_artifact(artifact))
    costs["end_run nested"] = timed(lambda: spool.end_run(run_id=ids["module"]))
    costs["end_run"] = timed(lambda: spool.end_run(run_id=ids["session"]))
    slow = {call: cost for call, cost in costs.items() if cost > CALLER_BUDGET}
    assert slow == {}, slow
    assert ids["session"] == "session"  # the spool's id: the remote's is not known yet
    assert len(remote.calls) < 10  # the remote had 10 calls of 0.4 s to make

    spool.flush()
    assert spool.outage() is None
    assert [call[0] for call in remote.calls if call[0] != "flush"] == [
        "start_run", "start_run", *["log_metrics"] * 4, "log_params", "log_artifact",
        "end_run", "end_run"]
    session, module = remote.runs.values()
    assert module.parent is session
    assert module.history("loss") == [(step, 1.0 / (step + 1)) for step in range(4)]
    assert module.params == {"model": "toy"}
    assert (session.status, module.status) == ("finished", "finished")
    assert not (tmp_path / "spool").exists()  # all delivered: the spool is gone


def test_a_hanging_remote_is_an_outage_after_close_and_sync_replays_the_rest(
    tmp_path: Path,
) -> None:
    remote = HangingRemote(hang_at=2, backend_name="hanging")
    spool = SpoolingTracker(remote, tmp_path / "spool", flush_interval=0)
    run_id = spool.start_run("r")
    for step in range(5):
        assert timed(lambda: spool.log_metrics({"m": float(step)})) < CALLER_BUDGET
    spool.log_params({"p": 1})
    assert timed(spool.end_run) < CALLER_BUDGET
    with pytest.warns(TrackingWarning, match="TimeoutError"):  # told at once, once
        assert timed(lambda: spool.close(timeout=0.5)) < 0.5 + 5  # bounded, however it hangs

    outage = spool.outage()
    assert outage is not None
    assert outage.startswith("hanging failed (TimeoutError: hanging had not taken the "
                             "spooled calls after 0.5 s)")
    assert outage.endswith(f"replay with: python -m pytest_insidellms sync "
                           f"{spool.spool.project_dir} --to hanging")
    remote.gate.set()  # the call that hung completes after all
    assert remote.passed.wait(10)
    (remote_run,) = remote.runs.values()
    run_dir = spool.spool.project_dir / run_id
    state = read_sync_state(run_dir)["hanging"]
    assert state == {"run_id": remote_run.run_id, "delivered": 2}  # flushed before the hang

    target = replay_target("hanging")
    report = sync_runs(run_dir, lambda config: target)
    (replayed,) = target.runs.values()
    assert replayed.run_id == remote_run.run_id and replayed.resumed
    assert remote_run.history("m")[:2] + replayed.history("m") == [
        (step, float(step)) for step in range(5)]
    assert replayed.params == {"p": 1} and replayed.status == "finished"
    assert report.entries == 4
    again = sync_runs(run_dir, lambda config: replay_target("hanging"))
    assert (again.entries, again.up_to_date) == (0, 1)


def test_the_first_remote_failure_stops_delivery_and_the_rest_replays_exactly(
    tmp_path: Path, artifact: Path
) -> None:
    remote = RecordingTracker(backend_name="flaky")
    spool = SpoolingTracker(remote, tmp_path / "spool")
    run_id = spool.start_run("session")
    child = spool.start_run("module", nested=True)
    for step in range(3):
        spool.log_metrics({"m": step}, run_id=child)
    spool.flush()
    remote.fail_on.add("log_params")
    spool.log_params({"p": "lost in transit"}, run_id=child)
    with pytest.warns(TrackingWarning, match="flaky failed: OSError"):
        spool.flush()
    spool.log_metrics({"m": 3}, run_id=child)
    spool.log_artifact(artifact, run_id=child)
    spool.end_run(run_id=run_id)
    spool.flush()

    assert spool.outage() == (
        "flaky failed (OSError: flaky: log_params failed (injected)); 3 call(s) after the "
        f"failure kept in {spool.spool.project_dir}; replay with: python -m pytest_insidellms "
        f"sync {spool.spool.project_dir} --to flaky")
    remote_session, remote_module = remote.runs.values()
    assert remote_module.history("m") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert remote_module.status is None  # its end never reached the remote
    target = replay_target("flaky")
    sync_runs(spool.spool.project_dir, lambda config: target)
    replayed = target.runs[remote_module.run_id]
    assert replayed.history("m") == [(3, 3.0)]
    assert replayed.params == {"p": "lost in transit"}
    assert [a.content for a in replayed.artifacts] == [b"as logged"]
    assert replayed.parent is target.runs[remote_session.run_id]
    assert {r.status for r in target.runs.values()} == {"finished"}


def test_a_remote_factory_is_built_on_the_delivery_thread(tmp_path: Path) -> None:
    built_on: list[threading.Thread] = []

    def build() -> RecordingTracker:
        built_on.append(threading.current_thread())
        return RecordingTracker(backend_name="lazy")

    spool = SpoolingTracker(build, tmp_path / "spool", backend_name="lazy")
    assert spool.remote is None and spool.backend_name == "lazy"
    run_id = spool.start_run("r")
    assert spool.run_location(run_id) == f"lazy://{run_id}#0"  # waits for the remote run
    spool.log_metrics({"a": 1})
    spool.flush()
    assert built_on and built_on[0] is not threading.main_thread()
    remote = spool.remote
    assert isinstance(remote, RecordingTracker)
    assert remote.runs[f"{run_id}#0"].history("a") == [(0, 1.0)]
    spool.end_run()
    spool.close()


def test_a_remote_that_cannot_be_built_is_an_outage_with_everything_spooled(
    tmp_path: Path,
) -> None:
    def unreachable() -> RecordingTracker:
        raise ConnectionError("cannot reach the tracking server")

    spool = SpoolingTracker(unreachable, tmp_path / "spool", backend_name="remote",
                            config=TrackingConfig(project="p"))
    # Warned once, by whichever call comes first after the failure.
    with pytest.warns(TrackingWarning, match="ConnectionError"):
        run_id = spool.start_run("session")
        spool.log_metrics({"m": 1})
        spool.flush()
    assert spool.run_location(run_id) == str(spool.spool.project_dir / run_id)
    spool.log_params({"p": 2})
    spool.end_run()
    spool.flush()
    outage = spool.outage()
    assert outage is not None and "remote failed (ConnectionError: cannot reach" in outage
    assert "3 call(s) after the failure" in outage
    targets: list[RecordingTracker] = []

    def target(config: TrackingConfig) -> RecordingTracker:
        targets.append(RecordingTracker(config, backend_name="remote"))
        return targets[-1]

    sync_runs(spool.spool.project_dir, target)
    (run,) = targets[0].runs.values()
    assert (run.name, run.history("m"), run.params, run.status) == (
        "session", [(0, 1.0)], {"p": 2}, "finished")
    assert run.project == "p"


def test_the_remote_gets_the_spools_copy_of_an_artifact(tmp_path: Path, artifact: Path) -> None:
    remote = SlowRemote(delay=0.2)
    spool = SpoolingTracker(remote, tmp_path / "spool")
    spool.start_run("r")
    spool.log_artifact(artifact)
    artifact.write_text("changed once the call returned")
    spool.end_run()
    spool.flush()
    (run,) = remote.runs.values()
    assert [(a.name, a.content) for a in run.artifacts] == [("report.txt", b"as logged")]


def test_a_value_is_validated_once_through_multi_and_spool(tmp_path: Path) -> None:
    remote = RecordingTracker()
    spool = SpoolingTracker(remote, tmp_path / "spool")
    multi = MultiTracker([LocalFileTracker(tmp_path / "local"), spool])
    multi.start_run("r")
    counted: dict[str, int] = {}

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] = counted.get(name, 0) + 1
            return real(*args, **kwargs)
        return wrapper

    with mock.patch.object(base, "validate_metrics", counting("metrics", base.validate_metrics)), \
            mock.patch.object(base, "validate_params", counting("params", base.validate_params)), \
            mock.patch.object(base.ExperimentTracker, "_resolve",
                              counting("resolve", base.ExperimentTracker._resolve)):
        multi.log_metrics({"a": 1}, step=4)
        multi.log_params({"p": 1})
        multi.flush()
    assert counted == {"metrics": 1, "params": 1, "resolve": 2}
    (run,) = remote.runs.values()
    assert (run.history("a"), run.params) == ([(4, 1.0)], {"p": 1})
    multi.end_run()


def test_run_location_is_the_remotes_while_it_works_else_the_spool(tmp_path: Path) -> None:
    remote = RecordingTracker(backend_name="rec", id_format="remote-{number}")
    spool = SpoolingTracker(remote, tmp_path / "spool")
    run_id = spool.start_run("r")
    assert spool.run_location(run_id) == "rec://remote-1"
    remote.fail_on.add("log_metrics")
    spool.log_metrics({"a": 1})
    with pytest.warns(TrackingWarning, match="rec failed"):
        spool.flush()
    assert spool.run_location(run_id) == str(spool.spool.project_dir / run_id)
    spool.end_run()


def test_the_delivery_thread_runs_only_while_there_is_work(tmp_path: Path) -> None:
    def delivery_threads() -> Iterator[threading.Thread]:
        return (t for t in threading.enumerate() if t.name == "insidellms-spool-idle")

    spool = SpoolingTracker(RecordingTracker(backend_name="idle"), tmp_path / "spool")
    spool.start_run("r")
    spool.log_metrics({"a": 1})
    assert [t.name for t in delivery_threads()] == ["insidellms-spool-idle"]
    spool.end_run()
    spool.flush()
    deadline = time.monotonic() + 10
    while any(delivery_threads()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(delivery_threads()) == []


class LostResponse(RecordingTracker):
    """Creates the run named ``lost``, then fails as if the answer never came back."""

    def __init__(self, lost: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lost = lost

    def _open_run(self, name: str, run_id: str | None, parent: RecordedRun | None) -> RecordedRun:
        run = super()._open_run(name, run_id, parent)
        if name == self.lost:
            self.lost = ""  # once
            raise ConnectionError("connection closed before the response")
        return run


@pytest.mark.parametrize("lost", ["session", "module"])
def test_a_run_created_without_an_answer_is_found_by_sync_not_created_twice(
    tmp_path: Path, lost: str
) -> None:
    remote = LostResponse(lost, backend_name="remote")
    spool = SpoolingTracker(remote, tmp_path / "spool")
    with pytest.warns(TrackingWarning, match="connection closed"):
        session = spool.start_run("session")
        module = spool.start_run("module", nested=True)
        spool.log_metrics({"m": 1}, run_id=module)
        spool.end_run(run_id=session)
        spool.flush()
    lost_dir = spool.spool.project_dir / session
    if lost == "module":
        lost_dir = lost_dir / "children" / module
    assert read_sync_state(lost_dir)["remote"] == {"start_in_doubt": True}
    (in_doubt,) = [run_id for run_id, run in remote.runs.items() if run.name == lost]
    remote.end_all_runs("killed")  # the remote's own process ended; its runs stay recorded

    sync_runs(spool.spool.project_dir, lambda config: remote)
    by_name = {run.name: run for run in remote.runs.values()}
    assert len(remote.runs) == len(by_name) == 2  # found, not created a second time
    assert by_name[lost].run_id == in_doubt
    assert by_name["module"].parent is by_name["session"]
    assert by_name["module"].history("m") == [(0, 1.0)]
    assert {run.status for run in remote.runs.values()} == {"finished"}
    assert remote.calls_of("find_run") == [(None, lost, None if lost == "session"
                                            else by_name["session"].run_id)]
