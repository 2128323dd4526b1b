"""`python -m pytest_insidellms sync` replays local runs into a backend, idempotently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import experiment_id
from mlflow.tracking import MlflowClient
from wandb_reader import read_runs

from pytest_insidellms import MLflowTracker, TrackingWarning
from pytest_insidellms.__main__ import main
from pytest_insidellms.experiment_tracking.spool import SpoolingTracker, read_sync_state
from pytest_insidellms.experiment_tracking.sync import sync_runs

SUITE = {
    "evals/test_qa": """
        import pytest
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        @pytest.mark.parametrize("n", [2, 3])
        def test_result(n):
            return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC,
                                    [ProbeResult(i) for i in range(n)])
    """,
    "evals/test_steps": """
        def test_curve(tracker, tmp_path):
            for step in (0, 5, 10):
                tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            tracker.log_params({"lr": 0.01, "layers": [1, 2]})
            report = tmp_path / "report.json"
            report.write_text('{"ok": true}')
            tracker.log_artifact(report, type="report")

        def test_fails():
            assert False
    """,
}


@pytest.fixture
def local_session(pytester: pytest.Pytester) -> Path:
    """A finished local session run of SUITE; returns its directory."""
    pytester.makepyfile(**SUITE)
    pytester.runpytest("--track", "local", "--track-project", "sync-demo",
                       "--track-tags", "nightly", "--track-notes", "replayed")
    (run_dir,) = (pytester.path / "experiments" / "sync-demo").iterdir()
    return run_dir


def test_a_local_session_replays_into_mlflow_with_its_structure(
    local_session: Path, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["sync", str(local_session), "--to", "mlflow", "--tracking-uri", uri]) == 0

    client = MlflowClient(tracking_uri=uri)
    runs = {r.info.run_name: r  # the run's project
            for r in client.search_runs([experiment_id(client, "sync-demo")])}
    session = runs[local_session.name]
    qa, steps = runs["evals/test_qa.py"], runs["evals/test_steps.py"]

    assert qa.data.tags["mlflow.parentRunId"] == session.info.run_id
    assert steps.data.tags["mlflow.parentRunId"] == session.info.run_id
    assert (qa.info.status, steps.info.status, session.info.status) == (
        "FINISHED", "FAILED", "FAILED")
    assert session.data.tags["nightly"] == "true"
    assert session.data.tags["mlflow.note.content"] == "replayed"
    assert qa.data.metrics["test_result/3/total_count"] == 3
    loss = client.get_metric_history(steps.info.run_id, "test_curve/loss")
    assert [(m.step, m.value) for m in loss] == [(0, 1.0), (5, 1 / 6), (10, 1 / 11)]
    assert steps.data.params["test_curve/lr"] == "0.01"
    assert steps.data.params["test_curve/layers"] == "[1,2]"
    assert [a.path for a in client.list_artifacts(steps.info.run_id)] == ["report.json"]


def test_syncing_twice_sends_nothing_twice(local_session: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["sync", str(local_session), "--to", "mlflow", "--tracking-uri", uri]) == 0
    assert main(["sync", str(local_session), "--to", "mlflow", "--tracking-uri", uri]) == 0
    assert "0 run(s) created, 0 resumed, 3 already up to date; 0 call(s) replayed" in (
        capsys.readouterr().out)

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([experiment_id(client, "sync-demo")])
    assert len(runs) == 3
    for run in runs:
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps))


def test_a_session_killed_with_sigkill_replays_as_killed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_hang="""
        import pathlib, time

        def test_logs(tracker):
            tracker.log_metrics({"kept": 42})

        def test_hangs():
            pathlib.Path("ready").write_text("1")
            time.sleep(60)
    """)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--track", "local", "-p", "no:randomly"],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(pytester.path / "ready", process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    (run_dir,) = (pytester.path / "experiments" / "insideLLMs").iterdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["sync", str(run_dir), "--to", "mlflow", "--tracking-uri", uri]) == 0

    client = MlflowClient(tracking_uri=uri)
    runs = {r.info.run_name: r for r in client.search_runs(
        [experiment_id(client, "insideLLMs")])}
    assert runs["test_hang.py"].info.status == "KILLED"
    assert runs[run_dir.name].info.status == "KILLED"
    assert runs["test_hang.py"].data.metrics["test_logs/kept"] == 42


def test_a_local_session_replays_into_wandb_offline(local_session: Path, tmp_path: Path) -> None:
    assert main(["sync", str(local_session), "--to", "wandb", "--mode", "offline",
                 "--track-dir", str(tmp_path)]) == 0

    runs = {r.display_name: r for r in read_runs(tmp_path)}
    session = runs[local_session.name]
    qa, steps = runs["evals/test_qa.py"], runs["evals/test_steps.py"]
    assert {r.group for r in runs.values()} == {session.run_id}
    assert (qa.job_type, session.job_type) == ("module", "session")
    assert (qa.exit_code, steps.exit_code) == (0, 1)
    assert session.project == "sync-demo"
    assert qa.summary["test_result/2/total_count"] == 2
    assert steps.config["test_curve/lr"] == 0.01


def test_sync_of_nothing_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", str(tmp_path), "--to", "mlflow"]) == 1
    assert "no run found" in capsys.readouterr().err


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, "pytest ended before reaching the hanging test"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)


class LosesTheModuleCreate(MLflowTracker):
    """MLflow creates the run named ``module``; the answer is lost on the way back."""

    def _open_run(self, name: str, run_id: str | None, parent: Any) -> Any:
        run = super()._open_run(name, run_id, parent)
        if name == "module":
            raise ConnectionError("connection closed before the response")
        return run


def test_an_mlflow_run_whose_creation_was_in_doubt_is_found_not_created_twice(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    remote = LosesTheModuleCreate(uri, "doubt")
    spool = SpoolingTracker(remote, tmp_path / "spool")
    with pytest.warns(TrackingWarning, match="connection closed"):
        session = spool.start_run("session")
        module = spool.start_run("module", nested=True)
        spool.log_metrics({"m": 1.0}, step=3, run_id=module)
        spool.end_run(run_id=session)
        spool.flush()
    remote.close()
    session_id = read_sync_state(spool.spool.project_dir / session)[spool.key or ""]["run_id"]
    client = MlflowClient(tracking_uri=uri)
    experiment = experiment_id(client, "doubt")
    # An older run of the same name and parent, still RUNNING: not the one in doubt.
    decoy = client.create_run(experiment, run_name="module", start_time=1_000,
                              tags={"mlflow.parentRunId": session_id}).info.run_id

    sync_runs(spool.spool.project_dir, lambda config: MLflowTracker(uri, "doubt", config=config))
    runs = client.search_runs([experiment])
    modules = {r.info.run_id: r for r in runs if r.info.run_name == "module"}
    assert len(runs) == 3 and len(modules) == 2  # session, the decoy, the run in doubt
    (found,) = [r for run_id, r in modules.items() if run_id != decoy]
    assert found.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(found.info.run_id, "m")] == [
        (3, 1.0)]
    assert modules[decoy].info.status == "RUNNING" and modules[decoy].data.metrics == {}


def test_credentials_in_the_tracking_uri_never_reach_sync_output_or_sync_state(
    local_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow_server import MlflowServer

    from pytest_insidellms.experiment_tracking.spool import sync_key

    with MlflowServer(tmp_path / "server") as server:
        server.wait_ready()
        uri = server.url.replace("http://", "http://user:s3cret-token@")
        assert main(["sync", str(local_session), "--to", "mlflow", "--tracking-uri", uri]) == 0
        out = capsys.readouterr()
        assert "s3cret-token" not in out.out + out.err
        assert "#/experiments/" in out.out and "http://user:" in out.out  # the run's page
        states = [read_sync_state(meta.parent) for meta in local_session.rglob("metadata.json")]
        assert len(states) == 3 and all(len(state) == 1 for state in states)
        assert not any("s3cret-token" in key for state in states for key in state)
        key = sync_key(MLflowTracker(uri, experiment_name="sync-demo"))
        assert "s3cret-token" not in key and "user:" in key and server.url[7:] in key
    # A failing server's error is masked too (no retries: the port is closed).
    dead = "http://user:s3cret-token@127.0.0.1:9/"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main(["sync", str(local_session), "--to", "mlflow", "--tracking-uri", dead]) == 1
    err = capsys.readouterr().err
    assert "sync failed" in err and "s3cret-token" not in err
