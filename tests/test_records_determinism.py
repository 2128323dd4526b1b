"""The four run files are a function of the session and its results, byte for byte."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from records_cases import session, suite
from test_records_summary import trial_cases

import pytest_insidellms
from pytest_insidellms.records import FILES, RecordsSession, write_records, write_tracking
from pytest_insidellms.records import canonical

TESTS = Path(__file__).parent


def files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def test_any_case_order_and_any_directory_give_the_same_bytes(tmp_path: Path) -> None:
    cases = suite() + trial_cases()
    definition = session(cases)
    reference = files(write_records(tmp_path / "first", definition, cases).directory)
    for seed in range(5):
        shuffled = cases.copy()
        random.Random(seed).shuffle(shuffled)
        # The collected ids arrive in another order too (another worker count, --dist mode).
        collected = list(definition.collected)
        random.Random(seed + 100).shuffle(collected)
        again = session(shuffled, collected=collected)
        target = tmp_path / f"elsewhere-{seed}" / "deeper"
        assert files(write_records(target, again, shuffled).directory) == reference


def test_another_working_directory_and_checkout_path_give_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(root: Path) -> dict[str, bytes]:
        root.mkdir(parents=True)
        monkeypatch.chdir(root)
        cases = suite()
        failing = cases[1]
        cases[1] = type(failing)(failing.nodeid, failing.module, failing.outcome,
                                 error_type="OSError",
                                 error=f"{root}/evals/test_qa.py:9: cannot read {root}/data")
        definition = session(cases, hidden_paths=(str(root),))
        return files(write_records(Path("run"), definition, cases).directory)

    assert run(tmp_path / "checkout-a") == run(tmp_path / "other" / "checkout-b")


@contextlib.contextmanager
def no_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any read of the wall clock or the local time zone fails the test."""
    def forbidden(*_: object, **__: object) -> float:
        raise AssertionError("a run file depends on the clock")

    class NoNow(datetime):
        @classmethod
        def now(cls, tz: object = None) -> NoNow:
            raise AssertionError("a run file depends on the clock")

        @classmethod
        def utcnow(cls) -> NoNow:
            raise AssertionError("a run file depends on the clock")

    with monkeypatch.context() as patch:
        for name in ("time", "time_ns", "localtime", "gmtime", "ctime", "strftime"):
            patch.setattr(time, name, forbidden)
        patch.setattr(canonical, "datetime", NoNow)
        yield


def test_writing_the_run_files_reads_no_clock(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cases = suite()
    with no_clock(monkeypatch):
        written = write_records(tmp_path, session(cases), cases)
    assert written.records == 10


def test_another_process_hash_seed_and_time_zone_give_the_same_bytes(tmp_path: Path) -> None:
    """Set iteration order changes with PYTHONHASHSEED; the files must not."""
    reference = files(write_records(tmp_path / "here", session(suite()), suite()).directory)
    script = (
        "import sys; from pathlib import Path\n"
        "from records_cases import session, suite\n"
        "from pytest_insidellms.records import write_records\n"
        "write_records(Path(sys.argv[1]), session(suite()), suite())\n"
    )
    root = Path(pytest_insidellms.__file__).parent.parent
    for seed, zone in (("1", "Pacific/Auckland"), ("4242", "America/Los_Angeles")):
        target = tmp_path / f"seed-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": zone, "LC_ALL": "C",
               "PYTHONPATH": os.pathsep.join([str(root), str(TESTS)])}
        subprocess.run([sys.executable, "-c", script, str(target)], env=env, check=True,
                       cwd=tmp_path, timeout=120)
        assert files(target) == reference


def test_volatile_facts_go_to_tracking_json_only(tmp_path: Path) -> None:
    cases = suite()
    definition = session(cases)
    written = write_records(tmp_path, definition, cases)
    path = write_tracking(tmp_path, written.run_id, cases=cases, started=1.0, stopped=2.0,
                          backends={"mlflow": {"run_id": "abc123", "uri": "sqlite:///x.db"}})
    tracking = json.loads(path.read_text())
    assert tracking["run_id"] == written.run_id
    assert tracking["backends"]["mlflow"]["run_id"] == "abc123"
    assert tracking["cases"][cases[0].nodeid]["latency_ms"] == 812.345
    assert tracking["host"]["python_version"]
    everything = b"".join(files(tmp_path).values())
    for volatile in (b"abc123", b"sqlite", b"812.345", b"1700000000", b"99.0"):
        assert volatile not in everything
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "tracking.json"])


def test_an_interrupted_session_says_so_in_the_manifest_only(tmp_path: Path) -> None:
    cases = suite()
    complete = write_records(tmp_path / "a", session(cases), cases)
    cut = write_records(tmp_path / "b", session(cases, run_completed=False), cases)
    assert complete.run_id == cut.run_id
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["run_completed"] is False
    for name in FILES:
        if name != "manifest.json":
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_files_are_replaced_whole_and_leave_no_temp_files(tmp_path: Path) -> None:
    cases = suite()
    write_records(tmp_path, RecordsSession("p", ["x"]), cases[:2])
    write_records(tmp_path, session(cases), cases)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 10
