"""LocalFileTracker: the reference layout, crash safety, safe paths, threads, odd values."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_insidellms import LocalFileTracker, TrackingConfig

END_FILES = ("metrics.json", "params.json", "artifacts.json", "final_state.json")


def reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def strict_json(path: Path) -> Any:
    """Parse a file as standard JSON: NaN/Infinity tokens are an error, not a float."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject_constant)


def utc_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0), f"{text} is not UTC"
    return parsed


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small file to log as an artifact."""
    path = tmp_path / "f.txt"
    path.write_text("x")
    return path


@pytest.fixture
def tracker(tmp_path: Path) -> LocalFileTracker:
    return LocalFileTracker(output_dir=tmp_path / "experiments",
                            config=TrackingConfig(project="proj", tags=["a", "b"], notes="n"))


# -- layout and formats ---------------------------------------------------------------------


def test_finished_run_has_the_reference_layout_and_formats(
    tracker: LocalFileTracker, tmp_path: Path
) -> None:
    source = tmp_path / "results.json"
    source.write_text('{"ok": true}')
    run_id = tracker.start_run("baseline")
    tracker.log_metrics({"accuracy": 0.9})
    tracker.log_metrics({"accuracy": 0.95, "loss": 0.1}, step=5)
    tracker.log_params({"model": "gpt-4", "temperature": 0.2})
    tracker.log_params({"temperature": 0.3})
    tracker.log_artifact(source, type="report")
    tracker.end_run()

    run_dir = tmp_path / "experiments" / "proj" / "baseline"
    assert run_id == "baseline"
    assert {p.name for p in run_dir.iterdir()} >= {
        "metadata.json", *END_FILES, "artifacts", "journal.jsonl"}
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temp files left"

    metadata = strict_json(run_dir / "metadata.json")
    assert metadata.keys() == {"run_id", "run_name", "project", "tags", "notes", "started_at"}
    assert (metadata["run_id"], metadata["run_name"], metadata["project"]) == (
        "baseline", "baseline", "proj")
    assert (metadata["tags"], metadata["notes"]) == (["a", "b"], "n")
    utc_iso(metadata["started_at"])

    metrics = strict_json(run_dir / "metrics.json")
    assert [(m["step"], m["metrics"]) for m in metrics] == [
        (0, {"accuracy": 0.9}), (5, {"accuracy": 0.95, "loss": 0.1})]
    assert all(m.keys() == {"step", "timestamp", "metrics"} for m in metrics)
    for m in metrics:
        utc_iso(m["timestamp"])

    assert strict_json(run_dir / "params.json") == {"model": "gpt-4", "temperature": 0.3}

    artifacts = strict_json(run_dir / "artifacts.json")
    assert artifacts == [{
        "name": "results.json", "type": "report",
        "path": str(run_dir / "artifacts" / "results.json"), "original_path": str(source)}]
    assert (run_dir / "artifacts" / "results.json").read_text() == '{"ok": true}'

    final = strict_json(run_dir / "final_state.json")
    assert final["status"] == "finished"
    assert utc_iso(final["ended_at"]) >= utc_iso(metadata["started_at"])


def test_load_run_reads_a_finished_run_like_its_files(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("r")
    tracker.log_metrics({"m": 1})
    tracker.log_params({"p": "v"})
    tracker.end_run("failed")
    loaded = tracker.load_run(run_id)
    run_dir = tracker.project_dir / run_id
    for key, file in [("metadata", "metadata.json"), ("metrics", "metrics.json"),
                      ("params", "params.json"), ("artifacts", "artifacts.json"),
                      ("final_state", "final_state.json")]:
        assert loaded[key] == strict_json(run_dir / file)
    assert loaded["final_state"]["status"] == "failed"


def test_nested_run_lives_under_its_parent_with_parent_run_id(tracker: LocalFileTracker) -> None:
    parent = tracker.start_run("suite")
    child = tracker.start_run("module_a", nested=True)
    tracker.log_metrics({"passed": 3})
    tracker.end_run()
    tracker.end_run()
    child_dir = tracker.project_dir / parent / "children" / child
    assert strict_json(child_dir / "metadata.json")["parent_run_id"] == parent
    assert strict_json(child_dir / "final_state.json")["status"] == "finished"
    assert "parent_run_id" not in strict_json(tracker.project_dir / parent / "metadata.json")
    assert tracker.load_run(child)["metrics"][0]["metrics"] == {"passed": 3.0}
    assert tracker.load_run(parent)["children"] == [child]
    assert tracker.list_runs() == [parent]


def test_run_id_defaults_to_run_name_then_experiment_name_then_timestamp(tmp_path: Path) -> None:
    named = LocalFileTracker(tmp_path, TrackingConfig(experiment_name="exp"))
    assert named.start_run("given") == "given"
    assert named.start_run() == "exp"
    plain = LocalFileTracker(tmp_path)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = plain.start_run()
    assert re.fullmatch(r"\d{8}_\d{6}", stamp)
    parsed = datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)
    assert before <= parsed <= datetime.now(timezone.utc)
    named.end_all_runs()
    plain.end_all_runs()


def test_colliding_run_names_get_a_unique_suffix_and_never_reuse_a_directory(
    tmp_path: Path,
) -> None:
    first = LocalFileTracker(tmp_path)
    second = LocalFileTracker(tmp_path)  # another process would look the same on disk
    ids = [first.start_run("same"), second.start_run("same")]
    first.log_metrics({"who": 1})
    second.log_metrics({"who": 2})
    first.end_run()
    second.end_run()
    ids.append(first.start_run("same"))
    first.end_run()
    assert ids == ["same", "same_2", "same_3"]
    assert [first.load_run(i)["metrics"][0]["metrics"]["who"] for i in ids[:2]] == [1.0, 2.0]
    assert first.load_run("same_3")["metrics"] == []


@pytest.mark.parametrize("hostile", ["../x", "/abs", "a/b", "..", "../../../../tmp/evil",
                                     "C:\\evil", "", "./.", "x/../../y"])
def test_hostile_run_ids_never_escape_the_project_directory(tmp_path: Path, hostile: str) -> None:
    out = tmp_path / "out"
    tracker = LocalFileTracker(out)
    run_id = tracker.start_run(run_id=hostile) if hostile else tracker.start_run(hostile)
    tracker.log_metrics({"m": 1})
    tracker.end_run()
    run_dir = tracker.run_path(run_id)
    assert run_dir.parent.resolve() == tracker.project_dir.resolve()
    assert "/" not in run_id and "\\" not in run_id and run_id not in ("", ".", "..")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not Path("/abs").exists() and not Path("/tmp/evil").exists()
    assert tracker.load_run(run_id)["final_state"]["status"] == "finished"


def test_hostile_project_name_stays_inside_output_dir(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path / "out", TrackingConfig(project="../../escape"))
    tracker.start_run("r")
    tracker.end_run()
    assert tracker.project_dir.parent == tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_load_run_does_not_resolve_traversal_ids(tracker: LocalFileTracker) -> None:
    tracker.start_run("x")
    tracker.end_run()
    with pytest.raises(FileNotFoundError):
        tracker.load_run("../proj/x")


def test_start_run_with_an_existing_run_id_resumes_it(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("resumable")
    tracker.log_metrics({"m": 1})
    tracker.log_metrics({"m": 2})
    tracker.end_run()
    assert tracker.start_run(run_id=run_id) == run_id
    assert tracker.load_run(run_id)["final_state"]["status"] == "running"
    tracker.log_metrics({"m": 3})
    tracker.end_run()
    loaded = tracker.load_run(run_id)
    assert [m["step"] for m in loaded["metrics"]] == [0, 1, 2]
    assert loaded["metadata"]["run_name"] == "resumable"


def test_starting_a_run_id_that_is_already_open_is_refused(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("open")
    with pytest.raises(RuntimeError, match="already open"):
        tracker.start_run(run_id=run_id)
    assert tracker.open_run_ids == [run_id]
    tracker.end_run()


def test_run_location_is_the_run_directory(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("here")
    assert tracker.run_location() == str(tracker.project_dir / run_id)
    tracker.end_run()


def test_list_runs_is_empty_for_a_new_output_dir(tmp_path: Path) -> None:
    assert LocalFileTracker(tmp_path / "nothing").list_runs() == []


# -- crash safety ---------------------------------------------------------------------------

CRASHING_CHILD = textwrap.dedent("""
    import sys
    from pytest_insidellms import LocalFileTracker

    out, artifact, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tracker = LocalFileTracker(out)
    run_id = tracker.start_run("victim")
    nested = tracker.start_run("inner", nested=True)
    for i in range(calls):
        tracker.log_metrics({"i": i, "half": i / 2}, run_id=run_id)
        tracker.log_params({f"p{i}": i}, run_id=run_id)
    tracker.log_metrics({"inner": 1.0})
    tracker.log_artifact(artifact, name="kept.txt", run_id=run_id)
    print(run_id, nested, flush=True)
    sys.stdin.read()  # hold the runs open until the parent kills us
""")


def test_sigkill_mid_run_loses_no_logged_call(tmp_path: Path) -> None:
    calls = 50
    artifact = tmp_path / "a.txt"
    artifact.write_text("payload")
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CHILD, str(out), str(artifact), str(calls)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # printed only after every call returned
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    run_id, nested_id = line.split()

    tracker = LocalFileTracker(out)
    loaded = tracker.load_run(run_id)
    assert loaded["final_state"]["status"] == "running"
    assert loaded["final_state"]["ended_at"] is None
    assert [m["metrics"] for m in loaded["metrics"]] == [
        {"i": float(i), "half": i / 2} for i in range(calls)]
    assert [m["step"] for m in loaded["metrics"]] == list(range(calls))
    assert loaded["params"] == {f"p{i}": i for i in range(calls)}
    assert [a["name"] for a in loaded["artifacts"]] == ["kept.txt"]
    assert Path(loaded["artifacts"][0]["path"]).read_text() == "payload"
    assert tracker.load_run(nested_id)["metrics"][0]["metrics"] == {"inner": 1.0}
    assert tracker.list_runs() == [run_id]

    # The killed run can be resumed and finished; its step count carries on.
    tracker.start_run(run_id=run_id)
    tracker.log_metrics({"i": 99})
    tracker.end_run("killed")
    finished = tracker.load_run(run_id)
    assert finished["final_state"]["status"] == "killed"
    assert [m["step"] for m in finished["metrics"]] == list(range(calls + 1))
    assert len(strict_json(tracker.run_path(run_id) / "metrics.json")) == calls + 1


def test_every_call_is_on_disk_before_it_returns(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("live")
    reader = LocalFileTracker(tracker.output_dir, tracker.config)
    for i in range(3):
        tracker.log_metrics({"i": i})
        assert len(reader.load_run(run_id)["metrics"]) == i + 1
    tracker.log_params({"p": 1})
    assert reader.load_run(run_id)["params"] == {"p": 1}
    tracker.end_run()


def test_a_journal_line_cut_short_is_skipped_and_resuming_starts_a_fresh_line(tracker: LocalFileTracker) -> None:
    run_id = tracker.start_run("torn")
    tracker.log_metrics({"m": 1})
    with open(tracker.run_path(run_id) / "journal.jsonl", "a", encoding="utf-8") as journal:
        journal.write('{"kind": "metrics", "step": 1, "timest')  # a write cut by a kill
    assert [m["metrics"] for m in tracker.load_run(run_id)["metrics"]] == [{"m": 1.0}]
    tracker.end_run()
    assert [m["metrics"] for m in tracker.load_run(run_id)["metrics"]] == [{"m": 1.0}]
    # Resuming after the torn write must not glue the next entry onto the torn line.
    tracker.start_run(run_id=run_id)
    tracker.log_metrics({"m": 2})
    tracker.end_run()
    assert [m["metrics"] for m in tracker.load_run(run_id)["metrics"]] == [{"m": 1.0}, {"m": 2.0}]


# -- threads --------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [8, 16])
def test_concurrent_logging_from_threads_loses_nothing(
    tracker: LocalFileTracker, tmp_path: Path, threads: int
) -> None:
    per_thread = 100
    source = tmp_path / "shared.txt"
    source.write_text("x")
    run_id = tracker.start_run("threads")
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                tracker.log_metrics({f"t{n}": i})
                tracker.log_params({f"t{n}_last": i})
            tracker.log_artifact(source, name="same.txt")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tracker.end_run()

    assert errors == []
    loaded = tracker.load_run(run_id)
    assert sorted(m["step"] for m in loaded["metrics"]) == list(range(threads * per_thread))
    for n in range(threads):
        seen = [m["metrics"][f"t{n}"] for m in loaded["metrics"] if f"t{n}" in m["metrics"]]
        assert seen == [float(i) for i in range(per_thread)]  # and in order, per thread
        assert loaded["params"][f"t{n}_last"] == per_thread - 1
    paths = {a["path"] for a in loaded["artifacts"]}
    assert len(paths) == threads  # every copy kept under its own name
    assert all(Path(p).read_text() == "x" for p in paths)


def test_threads_logging_to_their_own_runs_stay_separate(tracker: LocalFileTracker) -> None:
    run_ids = [tracker.start_run(f"module_{n}") for n in range(8)]

    def work(run_id: str) -> None:
        for i in range(50):
            tracker.log_metrics({"i": i}, run_id=run_id)

    workers = [threading.Thread(target=work, args=(r,)) for r in run_ids]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tracker.end_all_runs()
    for run_id in run_ids:
        metrics = tracker.load_run(run_id)["metrics"]
        assert [(m["step"], m["metrics"]["i"]) for m in metrics] == [
            (i, float(i)) for i in range(50)]


# -- values ---------------------------------------------------------------------------------


def test_non_finite_metrics_are_written_as_valid_json_and_read_back_as_floats(
    tracker: LocalFileTracker,
) -> None:
    run_id = tracker.start_run("nan")
    tracker.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf,
                         "np_nan": np.float32("nan"), "ok": 1.0})
    tracker.log_params({"threshold": math.inf, "nested": {"v": [math.nan]}})
    live = tracker.load_run(run_id)["metrics"][0]["metrics"]  # from the journal
    tracker.end_run()
    run_dir = tracker.run_path(run_id)
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=reject_constant)
    on_disk = strict_json(run_dir / "metrics.json")[0]["metrics"]
    assert on_disk == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity",
                       "np_nan": "NaN", "ok": 1.0}
    for metrics in (live, tracker.load_run(run_id)["metrics"][0]["metrics"]):
        assert all(isinstance(v, float) for v in metrics.values())
        assert math.isnan(metrics["nan"]) and math.isnan(metrics["np_nan"])
        assert metrics["inf"] == math.inf and metrics["ninf"] == -math.inf
    assert strict_json(run_dir / "params.json") == {
        "threshold": "Infinity", "nested": {"v": ["NaN"]}}


def test_non_json_param_values_are_coerced_to_json(tracker: LocalFileTracker) -> None:
    class Model:
        def __str__(self) -> str:
            return "Model(gpt)"

    run_id = tracker.start_run("odd")
    tracker.log_params({
        "set": {3, 1, 2},
        "object": Model(),
        "np_int": np.int64(7),
        "np_float": np.float64(0.25),
        "np_array": np.array([1, 2]),
        "path": Path("/data/x"),
        "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "tuple": (1, "a"),
        "bytes": b"raw",
        "none": None,
        "nested": {1: {"deep": {4, 5}}},
    })
    tracker.end_run()
    assert strict_json(tracker.run_path(run_id) / "params.json") == {
        "set": [1, 2, 3],
        "object": "Model(gpt)",
        "np_int": 7,
        "np_float": 0.25,
        "np_array": "[1 2]",
        "path": "/data/x",
        "when": "2024-01-02T03:04:05+00:00",
        "tuple": [1, "a"],
        "bytes": "raw",
        "none": None,
        "nested": {"1": {"deep": [4, 5]}},
    }


@pytest.mark.parametrize("value", [np.float64(0.5), np.float32(0.5), np.int64(3), np.int8(3),
                                   Fraction(1, 2), 10**300])
def test_numeric_metric_types_are_accepted_as_floats(tracker: LocalFileTracker, value: Any) -> None:
    run_id = tracker.start_run("num")
    tracker.log_metrics({"v": value})
    tracker.end_run()
    stored = tracker.load_run(run_id)["metrics"][0]["metrics"]["v"]
    assert type(stored) is float and stored == float(value)


@pytest.mark.parametrize(("value", "error"), [
    (True, TypeError), (np.bool_(False), TypeError), (None, TypeError), ("0.9", TypeError),
    (1 + 2j, TypeError), ([1.0], TypeError), (10**400, ValueError),
])
def test_bad_metric_values_raise_naming_the_key_and_lose_nothing_logged_before(
    tracker: LocalFileTracker, value: Any, error: type[Exception]
) -> None:
    run_id = tracker.start_run("bad")
    tracker.log_metrics({"good": 1.0})
    with pytest.raises(error, match="'bad_metric'"):
        tracker.log_metrics({"fine": 2.0, "bad_metric": value})
    tracker.log_metrics({"good": 3.0})
    tracker.end_run()
    metrics = tracker.load_run(run_id)["metrics"]
    # The rejected call logged nothing at all, not even its valid values, and took no step.
    assert [(m["step"], m["metrics"]) for m in metrics] == [(0, {"good": 1.0}), (1, {"good": 3.0})]


# -- artifacts ------------------------------------------------------------------------------


def test_missing_artifact_raises_file_not_found_naming_the_path(
    tracker: LocalFileTracker, tmp_path: Path
) -> None:
    tracker.start_run("r")
    missing = tmp_path / "nope" / "report.html"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        tracker.log_artifact(missing)
    tracker.end_run()


def test_directory_artifact_is_copied_whole_and_the_source_is_untouched(
    tracker: LocalFileTracker, tmp_path: Path
) -> None:
    source = tmp_path / "report"
    (source / "sub").mkdir(parents=True)
    (source / "index.html").write_text("<h1>")
    (source / "sub" / "data.csv").write_text("a,b")
    run_id = tracker.start_run("dir")
    tracker.log_artifact(source, type="report")
    tracker.end_run()
    copied = tracker.run_path(run_id) / "artifacts" / "report"
    assert (copied / "index.html").read_text() == "<h1>"
    assert (copied / "sub" / "data.csv").read_text() == "a,b"
    assert (source / "index.html").read_text() == "<h1>"
    assert (source / "sub" / "data.csv").is_file()
    assert tracker.load_run(run_id)["artifacts"][0]["type"] == "report"


def test_artifact_is_captured_at_call_time_and_never_moved(
    tracker: LocalFileTracker, tmp_path: Path
) -> None:
    source = tmp_path / "out.txt"
    source.write_text("first")
    run_id = tracker.start_run("snap")
    tracker.log_artifact(source)
    source.write_text("second")
    tracker.log_artifact(source)
    tracker.end_run()
    artifacts = tracker.load_run(run_id)["artifacts"]
    assert [a["name"] for a in artifacts] == ["out.txt", "out.txt"]
    assert [Path(a["path"]).name for a in artifacts] == ["out.txt", "out_2.txt"]
    assert [Path(a["path"]).read_text() for a in artifacts] == ["first", "second"]
    assert source.read_text() == "second"


def test_artifact_name_can_place_it_in_a_subdirectory(
    tracker: LocalFileTracker, source: Path
) -> None:
    run_id = tracker.start_run("sub")
    tracker.log_artifact(source, name="reports/./daily/f.txt")
    tracker.end_run()
    assert (tracker.run_path(run_id) / "artifacts" / "reports" / "daily" / "f.txt").is_file()
    assert tracker.load_run(run_id)["artifacts"][0]["name"] == "reports/daily/f.txt"


@pytest.mark.parametrize("name", ["../../etc", "/etc/passwd", "a/../../b", "..", "../x",
                                  "a\\..\\..\\b", "C:\\x", "."])
def test_hostile_artifact_names_are_refused_and_write_nothing(
    tracker: LocalFileTracker, tmp_path: Path, source: Path, name: str
) -> None:
    run_id = tracker.start_run("r")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="artifact name"):
        tracker.log_artifact(source, name=name)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    tracker.end_run()
    assert tracker.load_run(run_id)["artifacts"] == []


def test_artifact_name_cannot_write_through_a_copied_symlink(
    tracker: LocalFileTracker, tmp_path: Path, source: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(outside)
    tracker.start_run("links")
    tracker.log_artifact(tree)  # the link is copied as a link
    with pytest.raises(ValueError, match="outside"):
        tracker.log_artifact(source, name="tree/link/evil.txt")
    tracker.end_run()
    assert list(outside.iterdir()) == []


def test_log_artifacts_false_makes_log_artifact_a_no_op(tmp_path: Path, source: Path) -> None:
    tracker = LocalFileTracker(tmp_path / "out", TrackingConfig(log_artifacts=False))
    run_id = tracker.start_run("off")
    tracker.log_artifact(source)
    tracker.end_run()
    assert tracker.load_run(run_id)["artifacts"] == []
    assert list((tracker.run_path(run_id) / "artifacts").iterdir()) == []
    assert source.read_text() == "x"
