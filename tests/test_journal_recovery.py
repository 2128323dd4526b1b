"""After SIGKILL, every finished test's outcome and every finished marker case is in its
module run's journal (the local backend's run, a remote backend's spool): a case line is
written as each test finishes, not when its experiment completes or the 2 s tally is due."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms.experiment_tracking.journal import (
    JOURNAL,
    CaseEntry,
    JournalReader,
    JournalWriter,
    read_cases,
)
from pytest_insidellms.experiment_tracking.local import load_run_dir
from pytest_insidellms.session.experiments import probe_result_of_line
from pytest_insidellms.types import ResultStatus

SUITE = {
    "test_a_plain": """
        import pytest

        def test_passes():
            pass

        def test_fails():
            assert False

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass
    """,
    # The session is killed in the middle of the experiment: it never completes.
    "test_b_marked": """
        import os, signal
        import pytest

        @pytest.mark.experiment(name="qa", model_name="toy")
        @pytest.mark.parametrize("n", range(5))
        def test_case(n):
            if n == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            assert n != 1
    """,
}
FINISHED = {
    "test_a_plain.py": [("test_a_plain.py::test_passes", "passed"),
                        ("test_a_plain.py::test_fails", "failed"),
                        ("test_a_plain.py::test_skipped", "skipped")],
    "test_b_marked.py": [("test_b_marked.py::test_case[0]", "passed"),
                         ("test_b_marked.py::test_case[1]", "failed"),
                         ("test_b_marked.py::test_case[2]", "passed")],
}


def killed_session(pytester: pytest.Pytester, *args: str,
                   env: dict[str, str] | None = None) -> None:
    pytester.makepyfile(**SUITE)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", *args],
        cwd=pytester.path, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})})
    assert process.returncode == -9, process.stdout + process.stderr


def module_dirs(project_dir: Path) -> dict[str, Path]:
    (session_dir,) = (p for p in project_dir.iterdir() if (p / "metadata.json").is_file())
    found = {}
    for child in (session_dir / "children").iterdir():
        found[load_run_dir(child)["metadata"]["run_name"]] = child
    return found


def assert_every_finished_case_is_recovered(modules: dict[str, Path]) -> None:
    assert set(modules) == set(FINISHED)
    for name, expected in FINISHED.items():
        lines = read_cases(modules[name])
        assert [(line["nodeid"], line["outcome"]) for line in lines] == expected
    marked = read_cases(modules["test_b_marked.py"])
    assert {line["experiment"] for line in marked} == {"qa"}
    results = [probe_result_of_line(line) for line in marked]
    assert [r.status if r else None for r in results] == [
        ResultStatus.SUCCESS, ResultStatus.ERROR, ResultStatus.SUCCESS]
    assert [r.input if r else None for r in results] == [
        "test_case[0]", "test_case[1]", "test_case[2]"]
    assert results[1] is not None and "assert 1 != 1" in (results[1].error or "")
    assert marked[1]["error_type"] == "AssertionError"
    # The outcome counts follow from the lines, however stale the last tally metric was.
    counts = Counter(line["outcome"] for name in FINISHED for line in read_cases(modules[name]))
    assert counts == {"passed": 3, "failed": 2, "skipped": 1}


def test_sigkill_leaves_every_finished_outcome_and_marker_case_in_the_local_journal(
    pytester: pytest.Pytester,
) -> None:
    killed_session(pytester, "--track", "local")
    modules = module_dirs(pytester.path / "experiments" / "insideLLMs")
    assert_every_finished_case_is_recovered(modules)
    marked = load_run_dir(modules["test_b_marked.py"])
    assert marked["final_state"]["status"] == "running"
    # The experiment never completed, so only the case lines hold its cases.
    assert not any(key.startswith("qa/") for entry in marked["metrics"] for key in entry["metrics"])
    assert marked["journal_skipped_lines"] == []


def test_sigkill_leaves_them_in_the_spool_of_an_unreachable_remote(
    pytester: pytest.Pytester,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    killed_session(pytester, "--track", "mlflow", "-W", "ignore::pytest.PytestWarning",
                   env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    spool = pytester.path / "experiments" / "spool" / "mlflow"
    (project_dir,) = (p for p in spool.rglob("*") if p.is_dir() and any(
        (c / "metadata.json").is_file() and (c / "children").is_dir() for c in p.iterdir()))
    assert_every_finished_case_is_recovered(module_dirs(project_dir))


def test_case_lines_are_neither_replayed_nor_counted_nor_skipped(tmp_path: Path) -> None:
    # The spool and sync count a journal's calls by position: a case line must not shift them.
    writer = JournalWriter(tmp_path / JOURNAL)
    from pytest_insidellms.experiment_tracking.journal import ParamsEntry

    writer.append(ParamsEntry({"a": 1}))
    writer.append(CaseEntry({"nodeid": "m.py::t", "outcome": "passed"}))
    writer.append(ParamsEntry({"b": 2}))
    reader = JournalReader(tmp_path / JOURNAL)
    entries: list[Any] = list(reader)
    assert entries == [ParamsEntry({"a": 1}), ParamsEntry({"b": 2})]
    assert reader.cases == [{"nodeid": "m.py::t", "outcome": "passed"}]
    assert reader.skipped_lines == []
