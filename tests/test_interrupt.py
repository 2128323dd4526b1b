"""Ctrl-C and SIGTERM end every open run as killed, with everything logged so far kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_runs import only_session

SLOW_SUITE = """
import pathlib, time
import pytest

@pytest.mark.parametrize("n", range(3))
def test_done(tracker, n):
    tracker.log_metrics({f"done_{n}": n})

def test_hangs():
    pathlib.Path("ready").write_text("ready")
    time.sleep(60)
"""


def _interrupt(pytester: pytest.Pytester, sig: signal.Signals, *args: str,
               then: tuple[tuple[float, signal.Signals], ...] = ()) -> int:
    """Run the slow suite in a subprocess, send ``sig`` once it hangs (and each of ``then``
    after its delay), return its exit code."""
    pytester.makepyfile(test_slow=SLOW_SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDELLMS_", "PYTEST_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--track", "local", "-p", "no:randomly", *args],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    ready = Path(pytester.path, "ready")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        assert time.monotonic() < deadline, "the suite never reached its hanging test"
        time.sleep(0.05)
    time.sleep(0.3)  # let the reports of the finished tests reach the controller
    if sig is signal.SIGINT and "-n" in args:
        os.killpg(process.pid, sig)  # a terminal's Ctrl-C reaches the whole process group
    else:
        process.send_signal(sig)
    for delay, later in then:
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(later)
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert b"INTERNALERROR" not in output, output.decode()
    return process.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_signal_ends_every_run_killed_and_keeps_results(
    pytester: pytest.Pytester, sig: signal.Signals, workers: list[str]
) -> None:
    returncode = _interrupt(pytester, sig, *workers)
    assert returncode == pytest.ExitCode.INTERRUPTED

    session = only_session(pytester.path / "experiments")
    assert session.run.status == "killed"
    module = session.modules["test_slow.py"]
    assert module.status == "killed"
    assert {"test_done/0/done_0", "test_done/1/done_1", "test_done/2/done_2"} <= set(
        module.metrics)
    assert module.metrics["tests_passed"] == 3


@pytest.mark.parametrize("then", [
    ((0.01, signal.SIGINT),), ((0.2, signal.SIGINT),), ((0.3, signal.SIGTERM),),
    ((0.05, signal.SIGTERM), (0.05, signal.SIGINT)),
], ids=["SIGINT-10ms", "SIGINT-200ms", "SIGTERM-300ms", "SIGTERM-SIGINT"])
def test_any_sequence_of_signals_ends_every_run_killed(
    pytester: pytest.Pytester, then: tuple[tuple[float, signal.Signals], ...]
) -> None:
    returncode = _interrupt(pytester, signal.SIGINT, then=then)
    assert returncode == pytest.ExitCode.INTERRUPTED

    session = only_session(pytester.path / "experiments")
    assert session.run.status == "killed"
    assert session.modules["test_slow.py"].status == "killed"
    assert session.modules["test_slow.py"].metrics["tests_passed"] == 3
