"""Nothing lost on a kill or under threads; nothing secret written anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from local_runs import only_session

from pytest_insidellms import LocalFileTracker

N_BEFORE_KILL = 25

KILL_SUITE = f"""
import pathlib, time
import pytest
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

@pytest.mark.parametrize("n", range({N_BEFORE_KILL}))
def test_result(n, tracker):
    tracker.log_params({{f"param_{{n}}": n}})
    return ExperimentResult("e", ModelInfo("m", "p", "i"), "qa", ProbeCategory.LOGIC,
                            [ProbeResult(i) for i in range(n + 1)])

def test_zz_hangs():
    pathlib.Path("ready").write_text("ready")
    time.sleep(60)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_sigkill_after_n_tests_loses_none_of_their_results(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_kill=KILL_SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDELLMS_", "PYTEST_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--track", "local", "-p", "no:randomly", *workers],
        cwd=pytester.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (pytester.path / "ready").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the finished tests' reports reach the controller
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole session, workers included
        process.wait()

    session = only_session(pytester.path / "experiments")
    module = session.modules["test_kill.py"]
    assert session.run.status == "running" and module.status == "running"  # honest: crashed
    for n in range(N_BEFORE_KILL):
        assert module.metrics[f"test_result/{n}/total_count"] == n + 1
        assert module.params[f"test_result/{n}/param_{n}"] == n


def test_sixteen_threads_logging_through_the_fixture_lose_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_threads="""
        import threading

        def test_threads(tracker):
            def work(thread):
                for i in range(50):
                    tracker.log_metrics({f"t{thread}_m{i}": i})
                    tracker.log_params({f"t{thread}_p{i}": i})
            threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)
    module = only_session(pytester.path / "experiments").modules["test_threads.py"]
    assert len(module.metrics) == 16 * 50 + 7  # + the 7 outcome metrics
    assert len(module.params) == 16 * 50


def test_sixteen_threads_on_one_tracker_lose_nothing(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("threads")
    barrier = threading.Barrier(16)

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(100):
            tracker.log_metrics({f"t{thread}": i}, run_id=run_id)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracker.end_run(run_id=run_id)

    entries = tracker.load_run(run_id)["metrics"]
    assert len(entries) == 1600
    assert sorted(e["step"] for e in entries) == list(range(1600))  # no step handed out twice


SECRET = "sk-proj-PLANTEDsecretVALUE0123456789abcdef"


def test_a_planted_secret_reaches_no_file_of_any_backend(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # the environment is never logged wholesale
    pytester.makeconftest(f"""
        def pytest_insidellms_session_params(config):
            return {{"client": {{"base_url": "https://api.example", "api_key": "{SECRET}"}}}}
    """)
    pytester.makepyfile(test_leak=f"""
        def test_leaks(tracker):
            tracker.log_params({{"openai_api_key": "{SECRET}",
                                 "headers": {{"Authorization": "Bearer {SECRET}"}},
                                 "prompt": "my key is {SECRET}, keep it safe"}})
            tracker.session.log_params({{"dsn": "postgres://user:{SECRET}@db/x"}})
    """)
    result = pytester.runpytest(
        "--track", "local,mlflow,tensorboard,wandb", "--track-notes", f"token {SECRET}",
        "--track-tags", f"nightly,{SECRET}")
    result.assert_outcomes(passed=1)

    written = [p for p in (pytester.path / "experiments").rglob("*") if p.is_file()]
    assert len(written) > 20  # every backend wrote something
    leaks = [p for p in written if SECRET.encode() in p.read_bytes()]
    assert leaks == []
    module = only_session(pytester.path / "experiments").modules["test_leak.py"]
    assert module.params["test_leaks/prompt"] == "my key is ***REDACTED***, keep it safe"
