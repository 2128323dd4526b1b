"""The run journal: torn writes, a full disk, corrupted files, one pass, bounded open files."""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import (ExperimentResult, LocalFileTracker, ModelInfo, ProbeCategory,
                               ProbeResult)
from pytest_insidellms.experiment_tracking import journal
from pytest_insidellms.experiment_tracking.journal import (
    JOURNAL,
    JournalReader,
    JournalWriter,
    MetricsEntry,
    ParamsEntry,
)
from pytest_insidellms.experiment_tracking.local import load_run_dir
from pytest_insidellms.experiment_tracking.sync import sync_runs
from pytest_insidellms.testing import RecordingTracker


class FullDisk:
    """A disk with ``room`` bytes left: a write past it writes what fits, then the next write
    raises ENOSPC, as write(2) does. ``truncate_fails``: freeing space fails too."""

    def __init__(self, room: int, truncate_fails: bool = False) -> None:
        self.room = room
        self.truncate_fails = truncate_fails

    def open(self, path: Path) -> FullDisk.File:
        return FullDisk.File(self, open(path, "ab", buffering=0))

    class File:
        def __init__(self, disk: FullDisk, raw: Any) -> None:
            self.disk, self.raw = disk, raw

        def write(self, data: bytes, /) -> int:
            if self.disk.room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            written: int = self.raw.write(data[: self.disk.room])
            self.disk.room -= written
            return written

        def seek(self, offset: int, whence: int = 0, /) -> int:
            position: int = self.raw.seek(offset, whence)
            return position

        def truncate(self, size: int | None = None, /) -> int:
            if self.disk.truncate_fails:
                raise OSError(errno.ENOSPC, "No space left on device")
            kept: int = self.raw.truncate(size)
            return kept

        def close(self) -> None:
            self.raw.close()


def metrics(n: int) -> MetricsEntry:
    return MetricsEntry.at(n, {"n": float(n)}, 1_700_000_000.0 + n)


def steps(path: Path) -> list[int]:
    return [e.step for e in JournalReader(path) if isinstance(e, MetricsEntry)]


# -- a full disk ------------------------------------------------------------------------------


def test_a_write_cut_by_a_full_disk_is_rolled_back(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / JOURNAL
    writer = JournalWriter(path)
    writer.append(metrics(0))
    disk = FullDisk(room=10)  # the next entry fits only in part
    monkeypatch.setattr(JournalWriter, "opener", disk.open)
    with pytest.raises(OSError) as raised:
        writer.append(metrics(1))
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes().endswith(b"\n")  # the 10 bytes are gone again
    disk.room = 10_000  # space was freed
    writer.append(metrics(2))
    reader = JournalReader(path)
    assert [e.step for e in reader if isinstance(e, MetricsEntry)] == [0, 2]
    assert reader.skipped_lines == []


def test_a_torn_line_that_cannot_be_rolled_back_never_swallows_the_next_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / JOURNAL
    writer = JournalWriter(path)
    writer.append(metrics(0))
    disk = FullDisk(room=25, truncate_fails=True)
    monkeypatch.setattr(JournalWriter, "opener", disk.open)
    with pytest.raises(OSError):
        writer.append(metrics(1))
    with pytest.raises(OSError):  # still full: nothing written, still torn
        writer.append(metrics(2))
    assert not path.read_bytes().endswith(b"\n")
    disk.room = 10_000
    writer.append(metrics(3))
    writer.append(metrics(4))
    reader = JournalReader(path)
    assert [e.step for e in reader if isinstance(e, MetricsEntry)] == [0, 3, 4]
    assert reader.skipped_lines == [2]
    assert reader.skipped == 1


def test_a_full_disk_fails_the_call_and_the_run_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("r")
    tracker.log_metrics({"m": 1})
    disk = FullDisk(room=30, truncate_fails=True)
    monkeypatch.setattr(JournalWriter, "opener", disk.open)
    with pytest.raises(OSError):
        tracker.log_metrics({"m": 2})
    live = tracker.load_run(run_id)
    assert live["journal_skipped_lines"] == [2]
    assert [m["metrics"] for m in live["metrics"]] == [{"m": 1.0}]
    disk.room = 10_000
    tracker.log_params({"p": 1})
    tracker.log_metrics({"m": 3})
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert [(m["step"], m["metrics"]) for m in loaded["metrics"]] == [(0, {"m": 1.0}),
                                                                    (2, {"m": 3.0})]
    assert loaded["params"] == {"p": 1}
    assert loaded["journal_skipped_lines"] == [2]
    assert loaded["final_state"]["journal_skipped_lines"] == [2]


def test_a_real_full_device_raises_enospc_and_writes_nothing() -> None:
    device = Path("/dev/full")  # Linux: every write fails with ENOSPC
    if not device.exists():
        pytest.skip("no /dev/full on this system; the simulated disk above covers the logic")
    writer = JournalWriter(device)
    with pytest.raises(OSError) as raised:
        writer.append(metrics(0))
    assert raised.value.errno == errno.ENOSPC


def test_the_default_append_file_rolls_back_with_truncate(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    handle = journal.open_append(path)
    assert handle.write(b"kept\n") == 5
    assert handle.write(b"torn") == 4
    end = handle.seek(0, 2)
    handle.truncate(end - 4)
    handle.close()
    assert path.read_bytes() == b"kept\n"


# -- corrupted files --------------------------------------------------------------------------


def corrupted_run(tmp_path: Path) -> tuple[LocalFileTracker, str]:
    """A run whose journal was damaged on disk: a line cut short in the middle, binary
    garbage, a block of NULs, a line that is JSON but no entry, and a cut last line."""
    tracker = LocalFileTracker(tmp_path / "out")
    run_id = tracker.start_run("damaged")
    for n in range(4):
        tracker.log_metrics({"n": n})
    tracker.log_params({"p": "kept"})
    path = tracker.run_path(run_id) / JOURNAL
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = [
        lines[0],                   # 1 step 0
        lines[1][: len(lines[1]) // 2] + b"\n",  # 2 step 1, cut short
        b"\xff\xfe\x00garbage\x80\n",  # 3
        lines[2],                   # 4 step 2
        b"\x00" * 64 + b"\n",       # 5
        b'{"kind": "metrics", "step": "three"}\n',  # 6 JSON, but no entry
        b'[1, 2]\n',                # 7
        lines[3],                   # 8 step 3
        lines[4],                   # 9 params
        lines[0][:20],              # 10 cut at the end of the file
    ]
    path.write_bytes(b"".join(damaged))
    return tracker, run_id


def test_the_reader_resynchronises_on_newlines_and_names_what_it_skipped(tmp_path: Path) -> None:
    tracker, run_id = corrupted_run(tmp_path)
    reader = JournalReader(tracker.run_path(run_id) / JOURNAL)
    entries = list(reader)
    assert [e.step for e in entries if isinstance(e, MetricsEntry)] == [0, 2, 3]
    assert [e.params for e in entries if isinstance(e, ParamsEntry)] == [{"p": "kept"}]
    assert reader.skipped_lines == [2, 3, 5, 6, 7, 10]
    list(reader)
    assert reader.skipped_lines == [2, 3, 5, 6, 7, 10]  # a second pass counts afresh


def test_load_run_reports_skipped_lines_before_and_after_the_run_ends(tmp_path: Path) -> None:
    tracker, run_id = corrupted_run(tmp_path)
    live = tracker.load_run(run_id)
    assert [m["step"] for m in live["metrics"]] == [0, 2, 3]
    assert live["journal_skipped_lines"] == [2, 3, 5, 6, 7, 10]
    # Resuming starts on a fresh line after the cut last line.
    tracker.end_run()
    tracker.start_run(run_id=run_id)
    tracker.log_metrics({"n": 9})
    tracker.end_run()
    loaded = load_run_dir(tracker.run_path(run_id))
    assert [m["step"] for m in loaded["metrics"]] == [0, 2, 3, 4]
    assert loaded["journal_skipped_lines"] == [2, 3, 5, 6, 7, 10]


def test_a_clean_run_reports_no_skipped_lines(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("clean")
    tracker.log_metrics({"a": 1})
    assert tracker.load_run(run_id)["journal_skipped_lines"] == []
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert loaded["journal_skipped_lines"] == []
    assert "journal_skipped_lines" not in loaded["final_state"]


def test_sync_replays_the_readable_entries_and_reports_the_skipped_lines(tmp_path: Path) -> None:
    tracker, run_id = corrupted_run(tmp_path)
    tracker.end_run()
    target = RecordingTracker()
    report = sync_runs(tracker.run_path(run_id), lambda config: target)
    (run,) = target.runs.values()
    assert run.history("n") == [(0, 0.0), (2, 2.0), (3, 3.0)]
    assert run.params == {"p": "kept"}
    journal_path = str(tracker.run_path(run_id) / JOURNAL)
    assert report.skipped_lines == {journal_path: [2, 3, 5, 6, 7, 10]}
    assert report.summary().endswith(
        f"; 6 unreadable journal line(s) skipped ({journal_path} line(s) 2, 3, 5, 6, 7, 10)")


# -- one pass ---------------------------------------------------------------------------------


def test_end_run_and_resume_read_the_journal_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[Path] = []
    original = JournalReader.__iter__

    def counted(self: JournalReader) -> Iterator[journal.JournalEntry]:
        passes.append(self.path)
        return original(self)

    monkeypatch.setattr(JournalReader, "__iter__", counted)
    tracker = LocalFileTracker(tmp_path)
    run_id = tracker.start_run("r")
    for n in range(5):
        tracker.log_metrics({"n": n})
    tracker.log_params({"p": 1})
    assert passes == []  # logging never reads
    tracker.end_run()
    assert passes == []  # it wrote every line itself: its mirror holds what the file does
    tracker.start_run(run_id=run_id)
    assert len(passes) == 1  # a resumed run reads its journal once
    tracker.end_run()
    assert len(passes) == 2  # and once at its end: it did not write all of it
    metrics_file = json.loads((tracker.run_path(run_id) / "metrics.json").read_text())
    assert [m["step"] for m in metrics_file] == [0, 1, 2, 3, 4]


def _log_everything(tracker: LocalFileTracker, tmp_path: Path) -> str:
    run_id = tracker.start_run("r")
    tracker.log_metrics({"x": 1.0, "nan": math.nan, "inf": -math.inf, "é/ü": 3})
    tracker.log_params({"nested": [1, {"q": "v"}], "f": 2.5, "none": None})
    tracker.log_metrics({"x": 2}, step=7)
    source = tmp_path / "notes.txt"
    source.write_text("hi")
    tracker.log_artifact(source, "notes.txt")
    tracker.log_experiment_result(
        ExperimentResult(experiment_id="e", model_info=ModelInfo(name="m", provider="p", model_id="m-1"),
                         probe_name="probe", probe_category=ProbeCategory.REASONING,
                         results=[ProbeResult(input="a"), ProbeResult(input="b")]),
        "case/1/")
    case_lines = tracker.journal_writer(run_id, journal.open_append)
    case_lines.append(journal.CaseEntry({"nodeid": "t.py::x", "outcome": "passed"}))
    return run_id


RUN_FILES = ("metrics.json", "params.json", "artifacts.json", "final_state.json")


def test_the_mirror_writes_the_bytes_the_journal_gives(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path / "runs")
    run_id = _log_everything(tracker, tmp_path)
    tracker.end_run()
    run_dir = tracker.run_path(run_id)
    mirrored = {name: (run_dir / name).read_bytes() for name in RUN_FILES}
    state = json.loads(mirrored["final_state.json"])
    journal.materialize(run_dir, {"status": state["status"], "ended_at": state["ended_at"]})
    assert {name: (run_dir / name).read_bytes() for name in RUN_FILES} == mirrored
    assert state["metrics_count"] == 3 and state["total_steps"] == 9


@pytest.mark.parametrize("spoil", ["appended elsewhere", "past the limit"])
def test_a_journal_the_mirror_does_not_match_is_read_back(
    tmp_path: Path, spoil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if spoil == "past the limit":
        monkeypatch.setattr(journal.JournalMirror.__init__, "__defaults__", (100,))
    tracker = LocalFileTracker(tmp_path / "runs")
    run_id = _log_everything(tracker, tmp_path)
    path = tracker.run_path(run_id) / JOURNAL
    if spoil == "appended elsewhere":  # another process, or a person
        with open(path, "ab") as handle:
            handle.write(b'{"kind": "params", "params": {"late": 1}}\nnot json\n')
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert [m["step"] for m in loaded["metrics"]] == [0, 7, 8]
    if spoil == "appended elsewhere":
        assert loaded["params"]["late"] == 1
        assert loaded["final_state"]["journal_skipped_lines"] == [9]
    else:
        assert "journal_skipped_lines" not in loaded["final_state"]


# -- open files -------------------------------------------------------------------------------

MANY_OPEN_RUNS = textwrap.dedent("""
    import resource, sys
    from pytest_insidellms import LocalFileTracker

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    tracker = LocalFileTracker(sys.argv[1])
    ids = [tracker.start_run("session")]
    for n in range(500):
        ids.append(tracker.start_run(f"module_{n}", parent_run_id=ids[0]))
    for round in range(3):
        for n, run_id in enumerate(ids):
            tracker.log_metrics({"n": n, "round": round}, run_id=run_id)
            tracker.log_params({"last_round": round}, run_id=run_id)
    tracker.end_all_runs()
    print(" ".join(ids))
""")


def test_hundreds_of_open_runs_fit_in_64_file_descriptors(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", MANY_OPEN_RUNS, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = done.stdout.split()
    assert len(ids) == 501
    tracker = LocalFileTracker(tmp_path)
    for n, run_id in enumerate(ids):
        loaded = tracker.load_run(run_id)
        assert [(m["step"], m["metrics"]) for m in loaded["metrics"]] == [
            (r, {"n": float(n), "round": float(r)}) for r in range(3)]
        assert loaded["params"] == {"last_round": 2}
        assert loaded["final_state"]["status"] == "finished"
