"""A tracking server that dies mid-session: tests carry on, nothing is lost, sync replays it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer, experiment_id, free_port

from pytest_insidellms import MLflowTracker, TrackingWarning
from pytest_insidellms.experiment_tracking.spool import SpoolingTracker
from pytest_insidellms.experiment_tracking.sync import sync_runs

SUITE = {
    "evals/test_a_before": """
        import pytest
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        @pytest.mark.parametrize("n", [1, 2])
        def test_result(n, tracker):
            tracker.log_metrics({"before": n})
            return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC,
                                    [ProbeResult(i) for i in range(n)])
    """,
    "evals/test_b_during": """
        import os, pathlib, signal, socket, time
        import pytest
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        def test_server_goes_down():
            pid = int(pathlib.Path(os.environ["SERVER_PID_FILE"]).read_text())
            os.killpg(pid, signal.SIGKILL)
            port = int(os.environ["SERVER_PORT"])
            for _ in range(200):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) != 0:
                        return
                time.sleep(0.05)
            raise AssertionError("the server did not go down")

        @pytest.mark.parametrize("n", [3, 4])
        def test_result(n, tracker):
            tracker.log_metrics({"during": n}, step=n)
            tracker.log_params({"model": "toy"})
            return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC,
                                    [ProbeResult(i) for i in range(n)])
    """,
    "evals/test_c_after": """
        def test_after(tracker):
            tracker.log_metrics({"after": 1.0})
    """,
}


def test_a_server_outage_is_spooled_reported_once_and_replayed_exactly_once(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    server = MlflowServer(tmp_path / "server", port=port)
    url = server.wait_ready()
    try:
        assert server.process is not None
        (tmp_path / "pid").write_text(str(server.process.pid))
        monkeypatch.setenv("SERVER_PID_FILE", str(tmp_path / "pid"))
        monkeypatch.setenv("SERVER_PORT", str(port))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        pytester.makepyfile(**SUITE)

        result = pytester.runpytest("--track", "mlflow", "-p", "no:randomly")

        # the tests are unaffected; the outage is reported once, with the way to replay it
        result.assert_outcomes(passed=6)
        assert result.ret == pytest.ExitCode.OK
        output = result.stdout.str()
        assert "INTERNALERROR" not in output
        assert output.count("python -m pytest_insidellms sync") == 1
        spool = pytester.path / "experiments" / "spool" / "mlflow"
        assert any(spool.rglob("journal.jsonl"))
    finally:
        server.stop()

    restarted = MlflowServer(tmp_path / "server", port=port)
    restarted.wait_ready()
    try:
        replay = [sys.executable, "-m", "pytest_insidellms", "sync", str(spool), "--to", "mlflow",
                  "--tracking-uri", url]
        first = subprocess.run(replay, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        client = MlflowClient(tracking_uri=url)
        runs = _runs_by_name(client)
        _assert_everything_landed_once(client, runs)

        second = subprocess.run(replay, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert "0 call(s) replayed" in second.stdout
        assert _runs_by_name(client).keys() == runs.keys()
        _assert_everything_landed_once(client, _runs_by_name(client))
    finally:
        restarted.stop()


def _runs_by_name(client: MlflowClient) -> dict[str, object]:
    experiment = client.get_experiment_by_name("insideLLMs")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    names = Counter(r.info.run_name for r in runs)
    assert all(count == 1 for count in names.values()), names  # no run created twice
    return {r.info.run_name: r for r in runs}


def _assert_everything_landed_once(client: MlflowClient, runs: dict[str, object]) -> None:
    modules = {"evals/test_a_before.py", "evals/test_b_during.py", "evals/test_c_after.py"}
    assert modules < set(runs)
    (session_name,) = set(runs) - modules
    session = runs[session_name]
    for name in modules:
        run = runs[name]
        assert run.data.tags["mlflow.parentRunId"] == session.info.run_id  # type: ignore[attr-defined]
        assert run.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert session.info.status == "FINISHED"  # type: ignore[attr-defined]

    during = runs["evals/test_b_during.py"]
    metrics = during.data.metrics  # type: ignore[attr-defined]
    assert metrics["test_result/3/total_count"] == 3
    assert metrics["test_result/4/total_count"] == 4
    assert metrics["tests_passed"] == 3
    assert during.data.params["test_result/3/model"] == "toy"  # type: ignore[attr-defined]
    assert runs["evals/test_c_after.py"].data.metrics["test_after/after"] == 1.0  # type: ignore[attr-defined]
    assert runs["evals/test_a_before.py"].data.metrics["test_result/2/total_count"] == 2  # type: ignore[attr-defined]

    for run in runs.values():
        run_id = run.info.run_id  # type: ignore[attr-defined]
        for key in run.data.metrics:  # type: ignore[attr-defined]
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert len(steps) == len(set(steps)), f"{key} duplicated in {run.info.run_name}"  # type: ignore[attr-defined]


def test_a_server_down_at_start_is_an_outage_and_sync_delivers_once_it_is_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def build(experiment: str) -> Callable[[], MLflowTracker]:
        return lambda: MLflowTracker(tracking_uri=url, experiment_name=experiment)

    # Nothing listens yet: the tracker cannot even be built, on the delivery thread.
    spool = SpoolingTracker(build("late"), tmp_path / "spool", backend_name="mlflow")
    # Warned once, by whichever call comes first after the failure.
    with pytest.warns(TrackingWarning, match="mlflow failed: TrackingError.*cannot open"):
        started = time.perf_counter()
        session = spool.start_run("session")
        module = spool.start_run("module", nested=True)
        for step in (1, 2):
            spool.log_metrics({"loss": 1.0 / step}, step=step, run_id=module)
        spool.log_params({"model": "toy"}, run_id=module)
        spool.end_run(run_id=session)
        assert time.perf_counter() - started < 2.0  # the caller never waited for the server
        spool.flush()
    outage = spool.outage()
    assert outage is not None
    assert outage.startswith(f"mlflow failed (TrackingError: MLflow at {url}: cannot open "
                             "experiment 'late'")
    assert outage.endswith(f"replay with: python -m pytest_insidellms sync "
                           f"{spool.spool.project_dir} --to mlflow")

    server = MlflowServer(tmp_path / "server", port=port)
    server.wait_ready()
    try:
        report = sync_runs(spool.spool.project_dir,
                           lambda config: MLflowTracker(url, "late", config=config))
        assert (len(report.created), report.entries) == (2, 3)
        client = MlflowClient(tracking_uri=url)
        runs = {r.info.run_name: r for r in client.search_runs(
            [experiment_id(client, "late")])}
        assert runs["module"].data.tags["mlflow.parentRunId"] == runs["session"].info.run_id
        history = client.get_metric_history(runs["module"].info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
        assert runs["module"].data.params == {"model": "toy"}
        assert {r.info.status for r in runs.values()} == {"FINISHED"}

        # With the server up, the spool delivers on its own and keeps nothing.
        live = SpoolingTracker(build("live"), tmp_path / "live", backend_name="mlflow")
        run_id = live.start_run("direct")
        live.log_metrics({"acc": 0.5})
        location = live.run_location(run_id)  # waits until the remote has the run
        experiment = client.get_experiment_by_name("live")
        assert experiment is not None
        assert location is not None and location.startswith(
            f"{url}/#/experiments/{experiment.experiment_id}/runs/")
        live.end_run()
        live.close()
        assert live.outage() is None
        assert not (tmp_path / "live").exists()
        (direct,) = client.search_runs([experiment.experiment_id])
        assert (direct.info.run_name, direct.info.status) == ("direct", "FINISHED")
        assert direct.data.metrics == {"acc": 0.5}
        assert location.endswith(direct.info.run_id)
    finally:
        server.stop()
