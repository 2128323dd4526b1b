"""A tracking server that dies mid-session: tests carry on, nothing is lost, sync replays it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer, free_port

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
    assert during.data.params["model"] == "toy"  # type: ignore[attr-defined]
    assert runs["evals/test_c_after.py"].data.metrics["after"] == 1.0  # type: ignore[attr-defined]
    assert runs["evals/test_a_before.py"].data.metrics["test_result/2/total_count"] == 2  # type: ignore[attr-defined]

    for run in runs.values():
        run_id = run.info.run_id  # type: ignore[attr-defined]
        for key in run.data.metrics:  # type: ignore[attr-defined]
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert len(steps) == len(set(steps)), f"{key} duplicated in {run.info.run_name}"  # type: ignore[attr-defined]
