"""TensorBoardTracker against real tensorboardX, read back with tensorboard's EventAccumulator."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorboardX
import tensorboardX.proto.summary_pb2
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.compat.proto import summary_pb2 as tensorboard_summary_pb2
from tensorboard_reader import hparams_trials, load, read_run, run_ids

from pytest_insidellms.experiment_tracking import TensorBoardTracker, TrackingConfig, create_tracker
from pytest_insidellms.experiment_tracking.names import safe_dir_name

MakeTracker = Callable[..., TensorBoardTracker]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def make_tracker(log_dir: Path) -> Iterator[MakeTracker]:
    """Trackers on ``log_dir`` (tensorboardX writer); any run left open is ended afterwards."""
    made: list[TensorBoardTracker] = []

    def make(**kwargs: Any) -> TensorBoardTracker:
        kwargs.setdefault("log_dir", log_dir)
        kwargs.setdefault("writer", "tensorboardX")
        tracker = TensorBoardTracker(**kwargs)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.end_all_runs()


@pytest.fixture
def tracker(make_tracker: MakeTracker) -> TensorBoardTracker:
    return make_tracker()


def f32(value: float) -> float:
    """What a float32 scalar reads back as."""
    return float(np.float32(value))


# -- directory layout --------------------------------------------------------------------------


def test_run_directory_is_named_after_the_run_and_its_id_is_the_tensorboard_run_name(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    run_id = tracker.start_run("baseline")
    tracker.log_metrics({"accuracy": 0.5})
    tracker.end_run()

    assert run_id == "baseline"
    assert (log_dir / "baseline").is_dir()
    assert run_ids(log_dir) == ["baseline"]  # the hparams live in the run, not a sub-run


def test_unnamed_run_directory_is_a_utc_timestamp(tracker: TensorBoardTracker, log_dir: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    run_id = tracker.start_run()
    tracker.end_run()

    stamp = datetime.strptime(run_id, "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)
    assert before <= stamp <= datetime.now(timezone.utc)
    assert read_run(log_dir / run_id).text("run/name") == run_id


def test_nested_run_is_a_subdirectory_of_its_parent_and_records_its_parent(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    session = tracker.start_run("session")
    module = tracker.start_run("test_a.py", nested=True)
    deeper = tracker.start_run("case", parent_run_id=module)
    tracker.end_run(run_id=session)

    assert (module, deeper) == ("session/test_a.py", "session/test_a.py/case")
    assert (log_dir / "session" / "test_a.py" / "case").is_dir()
    assert read_run(log_dir / module).text("run/parent") == "session"
    assert read_run(log_dir / deeper).text("run/parent") == "session/test_a.py"
    assert "run/parent" not in read_run(log_dir / session).texts


def test_runs_with_the_same_name_never_share_a_directory(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    (log_dir / "nightly").mkdir(parents=True)  # left by an earlier session
    first, second = make_tracker(), make_tracker()
    ids = [first.start_run("nightly"), second.start_run("nightly"), first.start_run("nightly")]
    first.end_all_runs()
    second.end_all_runs()

    assert ids == ["nightly_2", "nightly_3", "nightly_4"]
    assert not any((log_dir / "nightly").iterdir())


def test_nested_run_cannot_take_the_parents_artifacts_or_hparams_directory(
    tracker: TensorBoardTracker,
) -> None:
    tracker.start_run("session")
    children = [tracker.start_run(name, nested=False, parent_run_id="session")
                for name in ("artifacts", "HParams")]
    tracker.end_run(run_id="session")

    assert children == ["session/artifacts_2", "session/HParams_2"]


@pytest.mark.parametrize(
    ("name", "directory"),
    [
        ('a<b>c:d"e/f\\g|h?i*j', "a_b_c_d_e_f_g_h_i_j"),
        ("tab\there\x00\x1f", "tab_here__"),
        ("ends with dots and spaces. . ", "ends with dots and spaces"),
        (" .hidden", "hidden"),
        ("..", "run"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1", "_com1"),
        ("COM10", "COM10"),
        ("évaluation 🚀", "évaluation 🚀"),
        ("x" * 300, "x" * 100),
    ],
)
def test_directory_names_are_valid_on_windows(name: str, directory: str) -> None:
    assert safe_dir_name(name) == directory


def test_run_with_a_windows_invalid_name_keeps_its_exact_name_as_text(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    name = 'eval: gpt-4o | "quick"?'
    run_id = tracker.start_run(name)
    tracker.end_run()

    assert run_id == "eval_ gpt-4o _ _quick__"
    assert read_run(log_dir / run_id).text("run/name") == name


# -- what a run records ------------------------------------------------------------------------


def test_scalars_keep_steps_values_and_wall_times_as_float32(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    run_id = tracker.start_run("scalars")
    started = time.time()
    tracker.log_metrics({"accuracy": 0.1, "loss": 2.5}, step=3)
    tracker.log_metrics({"accuracy": 0.2})  # continues after the highest step: 4
    tracker.log_metrics({"accuracy": 0.3, "odd": math.nan, "big": math.inf}, step=1)
    tracker.end_run()

    run = read_run(log_dir / run_id)
    assert run.scalars["accuracy"] == [(3, f32(0.1)), (4, f32(0.2)), (1, f32(0.3))]
    assert run.scalars["loss"] == [(3, 2.5)]
    assert math.isnan(run.scalars["odd"][0][1]) and run.scalars["big"] == [(1, math.inf)]
    assert all(started <= t <= time.time() for t in run.wall_times["accuracy"])


def test_params_are_a_markdown_table_per_call(tracker: TensorBoardTracker, log_dir: Path) -> None:
    run_id = tracker.start_run("params")
    tracker.log_params({"model": "gpt-4o", "temperature": 0.2})
    tracker.log_metrics({"accuracy": 1.0}, step=2)
    tracker.log_params({"prompt": "a | b\nc", "stop": ["\n"], "seed": None})
    tracker.end_run()

    texts = read_run(log_dir / run_id).texts["params"]
    assert texts == [
        (0, "| param | value |\n| --- | --- |\n| model | gpt-4o |\n| temperature | 0.2 |"),
        (2, (
            '| param | value |\n| --- | --- |\n| prompt | a \\| b<br>c |\n| stop | ["\\\\n"] |'
            "\n| seed | null |"
        )),
    ]


def test_hparams_hold_the_final_params_and_each_metrics_last_logged_value(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    run_id = tracker.start_run("hparams")
    tracker.log_params({"model": "a", "temperature": 0.2, "greedy": True, "seed": 7})
    tracker.log_params({"model": "b", "stop": ["x", "y"], "budget": None, "huge": 2**60})
    tracker.log_metrics({"accuracy": 0.9}, step=5)
    tracker.log_metrics({"accuracy": 0.1, "latency": 3.0}, step=2)
    tracker.end_run("failed")

    run = read_run(log_dir / run_id)
    assert run.hparams == {
        "model": "b", "temperature": 0.2, "greedy": True, "seed": 7.0,
        "stop": '["x", "y"]', "budget": "null", "huge": str(2**60),
    }
    # TensorBoard's reading of the run's own scalars (accuracy at step 2 was logged last):
    # the value at the highest step would have needed every metric written a second time.
    assert run.hparam_metrics == {"accuracy": f32(0.1), "latency": 3.0, "run/status_code": 1.0}
    assert run_ids(log_dir) == [run_id]


def test_every_metric_value_is_one_scalar_event_and_no_run_is_added(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    logged: dict[str, dict[str, int]] = {}  # run -> tag -> values logged
    session = tracker.start_run("session")
    for module in range(3):
        run_id = tracker.start_run(f"module-{module}", nested=True)
        tracker.log_params({"model": "m", f"seed{module}": module})
        for call in range(20):
            metrics = {f"t{call}/accuracy": call / 20, f"t{call}/count": float(call), "loss": 1.0}
            tracker.log_metrics(metrics)
            for key in metrics:
                logged.setdefault(run_id, {}).setdefault(key, 0)
                logged[run_id][key] += 1
        tracker.end_run()
    tracker.end_run()

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    assert sorted(multiplexer.Runs()) == sorted([session, *logged])
    for run_id in [session, *logged]:
        acc = load(log_dir / run_id)
        counts = {tag: len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"]}
        assert counts == {**logged.get(run_id, {}), "run/status_code": 1}, run_id
    assert sum(sum(tags.values()) for tags in logged.values()) == 3 * 20 * 3


def test_hparams_trials_are_the_runs_themselves_with_names_that_tell_them_apart(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    session = tracker.start_run("nightly evaluation session")
    tracker.log_params({"suite": "evals"})
    first = tracker.start_run("test_a.py", nested=True)
    tracker.log_params({"model": "a", "temperature": 0.5})
    tracker.log_metrics({"accuracy": 0.25}, step=3)
    tracker.log_metrics({"accuracy": 0.75}, step=4)
    tracker.end_run("failed")
    second = tracker.start_run("test_b.py", nested=True)
    tracker.log_params({"model": "b"})
    deeper = tracker.start_run("case", nested=True)
    tracker.end_run(run_id=session)

    trials = hparams_trials(log_dir)
    assert sorted(trials) == sorted([session, first, second, deeper])
    names = {run: trial.name for run, trial in trials.items()}
    assert names == {
        session: "nightly evaluation session",
        first: "test_a.py < nightly evaluation session",
        second: "test_b.py < nightly evaluation session",
        deeper: "case < test_b.py < nightly evaluation session",
    }
    # The first characters differ: where the dashboard cuts a name, trials stay apart.
    assert len({name[:6] for name in names.values()}) == len(names)
    assert trials[first].hparams == {"model": "a", "temperature": 0.5}
    assert trials[first].metrics == {"accuracy": 0.75, "run/status_code": 1.0}
    assert trials[first].status == "STATUS_FAILURE"
    assert trials[second].hparams == {"model": "b"}
    assert trials[second].status == "STATUS_SUCCESS"
    assert trials[session].metrics == {"run/status_code": 0.0}


def test_resuming_a_run_with_an_old_hparams_sub_run_moves_its_params_into_the_run(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    run_dir = log_dir / "old run"
    with tensorboardX.SummaryWriter(logdir=str(run_dir)) as old:  # how earlier versions wrote
        old.add_scalar("accuracy", 0.5, 3)
        old.add_hparams({"model": "a", "seed": 1}, {"accuracy": 0.5}, name="hparams")
    assert run_ids(log_dir) == ["old run", "old run/hparams"]

    tracker = make_tracker()
    tracker.start_run(run_id="old run")
    tracker.log_params({"model": "b"})
    tracker.log_metrics({"accuracy": 0.75})
    tracker.end_run()

    assert run_ids(log_dir) == ["old run"]
    run = read_run(run_dir)
    assert run.hparams == {"model": "b", "seed": 1.0}
    assert run.scalars["accuracy"] == [(3, 0.5), (4, 0.75)]


def test_artifacts_are_copied_and_described_as_text(
    tracker: TensorBoardTracker, log_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    report.write_text("<h1>ok</h1>")
    folder = tmp_path / "outputs"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "a.json").write_text("{}")
    run_id = tracker.start_run("artifacts")
    tracker.log_artifact(report, type="report")
    tracker.log_artifact(report)
    tracker.log_artifact(folder, name="sub/outputs", type="dir")
    tracker.end_run()

    run_dir = log_dir / run_id
    assert (run_dir / "artifacts" / "report.html").read_text() == "<h1>ok</h1>"
    assert (run_dir / "artifacts" / "report_2.html").read_text() == "<h1>ok</h1>"
    assert (run_dir / "artifacts" / "sub" / "outputs" / "deep" / "a.json").read_text() == "{}"
    assert report.exists() and (folder / "deep" / "a.json").exists()
    texts = [text for _, text in read_run(run_dir).texts["artifacts"]]
    assert texts[0] == (
        "| name | type | path | source |\n| --- | --- | --- | --- |\n"
        f"| report.html | report | {run_dir / 'artifacts' / 'report.html'} | {report} |"
    )
    assert "| report_2.html | file |" in texts[1]
    assert "| sub/outputs | dir |" in texts[2]


def test_log_artifacts_off_copies_nothing(make_tracker: MakeTracker, log_dir: Path, tmp_path: Path) -> None:
    tracker = make_tracker(config=TrackingConfig(log_artifacts=False))
    (tmp_path / "a.txt").write_text("a")
    run_id = tracker.start_run("quiet")
    tracker.log_artifact(tmp_path / "a.txt")
    tracker.end_run()

    assert not (log_dir / run_id / "artifacts").exists()
    assert "artifacts" not in read_run(log_dir / run_id).texts


def test_name_project_tags_and_notes_are_written_at_start(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    config = TrackingConfig(project="evals", tags=["nightly", "gpt-4o"], notes="key sk-abcdefghijklmnopqrstuv, first try")
    tracker = make_tracker(config=config)
    run_id = tracker.start_run("meta")
    tracker.log_metrics({"x": 1.0}, step=9)
    tracker.end_run()

    texts = read_run(log_dir / run_id).texts
    assert texts["run/name"] == [(0, "meta")]
    assert texts["run/project"] == [(0, "evals")]
    assert texts["run/tags"] == [(0, "- nightly\n- gpt-4o")]
    assert texts["run/notes"] == [(0, "key ***REDACTED***, first try")]


@pytest.mark.parametrize(("status", "code"), [("finished", 0.0), ("failed", 1.0), ("killed", 2.0)])
def test_end_run_writes_status_text_and_code_at_the_last_step(
    tracker: TensorBoardTracker, log_dir: Path, status: str, code: float
) -> None:
    run_id = tracker.start_run("status")
    tracker.log_metrics({"x": 1.0}, step=4)
    tracker.end_run(status)

    run = read_run(log_dir / run_id)
    assert run.texts["run/status"] == [(4, status)]
    assert run.scalars["run/status_code"] == [(4, code)]


def test_ending_a_parent_ends_its_children_with_the_same_status(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    tracker.start_run("session")
    child = tracker.start_run("module", nested=True)
    tracker.end_run("killed", run_id="session")

    assert tracker.open_run_ids == []
    assert read_run(log_dir / child).text("run/status") == "killed"


def test_histogram_follows_the_step_rule(tracker: TensorBoardTracker, log_dir: Path) -> None:
    run_id = tracker.start_run("histogram")
    tracker.log_metrics({"x": 1.0}, step=4)
    tracker.log_histogram("latency/ms", [1.0, 2.0, 3.0, 10.0])
    tracker.log_histogram("latency/ms", np.array([[5, 5], [5, 5]]), step=2)
    tracker.log_metrics({"x": 2.0})
    tracker.end_run()

    run = read_run(log_dir / run_id)
    (step_a, first), (step_b, second) = run.histograms["latency/ms"]
    assert (step_a, first.num, first.min, first.max, first.sum) == (5, 4, 1.0, 10.0, 16.0)
    assert (step_b, second.num, second.sum) == (2, 4, 20.0)
    assert run.scalars["x"] == [(4, 1.0), (6, 2.0)]


@pytest.mark.parametrize(
    ("values", "error"),
    [([], ValueError), ([1.0, math.nan], ValueError), ([1.0, math.inf], ValueError),
     (["a", "b"], TypeError), ([object()], TypeError)],
)
def test_histogram_rejects_what_it_cannot_bin(
    tracker: TensorBoardTracker, log_dir: Path, values: list[Any], error: type[Exception]
) -> None:
    run_id = tracker.start_run("bad histogram")
    with pytest.raises(error, match="histogram 'h'"):
        tracker.log_histogram("h", values)
    tracker.end_run()
    assert read_run(log_dir / run_id).histograms == {}


def test_histogram_needs_an_open_run_and_a_valid_step(tracker: TensorBoardTracker) -> None:
    with pytest.raises(RuntimeError, match="no active run"):
        tracker.log_histogram("h", [1.0])
    tracker.start_run("steps")
    with pytest.raises(TypeError, match="step"):
        tracker.log_histogram("h", [1.0], step=-1)


# -- flushing and closing ----------------------------------------------------------------------


def test_flush_makes_everything_logged_visible_while_the_run_is_open(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    tracker = make_tracker(flush_secs=60)
    run_id = tracker.start_run("live")
    tracker.log_metrics({"x": 1.0}, step=0)
    tracker.flush()
    assert read_run(log_dir / run_id).scalars["x"] == [(0, 1.0)]

    tracker.log_metrics({"x": 2.0}, step=1)
    tracker.log_params({"p": 1})
    tracker.log_histogram("h", [1.0])
    tracker.flush()
    run = read_run(log_dir / run_id)
    assert run.scalars["x"] == [(0, 1.0), (1, 2.0)]
    assert "params" in run.texts and "h" in run.histograms
    assert tracker.open_run_ids == [run_id]


def test_writer_flushes_on_its_interval_without_being_asked(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    tracker = make_tracker(flush_secs=0.2)
    run_id = tracker.start_run("interval")
    tracker.log_metrics({"x": 1.0}, step=0)
    time.sleep(0.3)  # past the first flush, so the next one is the interval's
    tracker.log_metrics({"x": 2.0}, step=1)
    deadline = time.monotonic() + 5
    while len(read_run(log_dir / run_id).scalars.get("x", [])) < 2:
        assert time.monotonic() < deadline, "step 1 never reached the disk"
        time.sleep(0.05)


def _writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if type(t).__name__ == "_EventLoggerThread"}


def test_no_writer_stays_open_after_its_run_ends(tracker: TensorBoardTracker) -> None:
    before = _writer_threads()
    tracker.start_run("a")
    tracker.start_run("b", nested=True)
    tracker.flush()
    tracker.start_run("c")
    assert len(_writer_threads() - before) == 3
    tracker.end_all_runs()
    assert _writer_threads() - before == set()


# -- resume ------------------------------------------------------------------------------------


def test_resume_appends_to_the_run_and_continues_its_steps_and_params(
    make_tracker: MakeTracker, log_dir: Path
) -> None:
    first = make_tracker()
    run_id = first.start_run("long eval")
    first.log_metrics({"accuracy": 0.5}, step=0)
    first.log_metrics({"accuracy": 0.6}, step=7)
    first.log_params({"model": "a", "seed": 1})
    first.end_run("failed")
    # Give the first hparams file the name a write in an earlier second would have had
    # (tensorboardX names files by the second; a same-second write would overwrite it).
    (old_hparams,) = (log_dir / run_id).glob("*.hparams")
    old_hparams.rename(old_hparams.with_name("events.out.tfevents.1000000000.earlier.hparams"))

    second = make_tracker()
    assert second.start_run("another name", run_id=run_id) == run_id
    second.log_metrics({"accuracy": 0.7})
    second.log_params({"model": "b"})
    second.end_run()

    run = read_run(log_dir / run_id)
    assert run.scalars["accuracy"] == [(0, 0.5), (7, f32(0.6)), (8, f32(0.7))]
    assert run.texts["run/name"] == [(0, "long eval")]
    assert [status for _, status in run.texts["run/status"]] == ["failed", "finished"]
    assert run.hparams == {"model": "b", "seed": 1.0}
    assert run.hparam_metrics == {"accuracy": f32(0.7), "run/status_code": 0.0}
    assert run_ids(log_dir) == [run_id]
    assert len(list((log_dir / run_id).glob("*.hparams"))) == 1


def test_resume_of_an_unknown_id_creates_a_run_with_that_id(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    assert tracker.start_run("x", run_id="team/ci-123") == "team/ci-123"
    tracker.log_metrics({"x": 1.0})
    tracker.end_run()
    assert read_run(log_dir / "team" / "ci-123").scalars["x"] == [(0, 1.0)]


def test_nested_resume_accepts_the_full_id_or_a_name_under_the_parent(
    tracker: TensorBoardTracker, log_dir: Path
) -> None:
    session = tracker.start_run("session")
    child = tracker.start_run("m", nested=True)
    tracker.log_metrics({"x": 1.0}, run_id=child)
    tracker.end_run(run_id=child)

    assert tracker.start_run(run_id="session/m", parent_run_id=session) == "session/m"
    tracker.end_run(run_id="session/m")
    assert tracker.start_run(run_id="m", parent_run_id=session) == "session/m"
    tracker.log_metrics({"x": 2.0}, run_id="session/m")
    tracker.end_run(run_id=session)

    assert read_run(log_dir / "session" / "m").scalars["x"] == [(0, 1.0), (1, 2.0)]


def test_run_ids_that_escape_or_are_open_or_reserved_are_refused(tracker: TensorBoardTracker) -> None:
    with pytest.raises(ValueError, match="'..'"):
        tracker.start_run(run_id="../elsewhere")
    session = tracker.start_run("session")
    with pytest.raises(RuntimeError, match="already open"):
        tracker.start_run(run_id="./session")
    with pytest.raises(ValueError, match="reserves"):
        tracker.start_run(run_id="session/hparams")
    assert tracker.open_run_ids == [session]


# -- construction ------------------------------------------------------------------------------


def test_create_tracker_builds_a_tensorboard_tracker_with_a_view_command(log_dir: Path) -> None:
    tracker = create_tracker("tensorboard", log_dir=log_dir, writer="tensorboardX")
    assert isinstance(tracker, TensorBoardTracker)
    assert tracker.run_location() == f"tensorboard --logdir {log_dir}"
    spaced = TensorBoardTracker(log_dir=log_dir / "with space", writer="tensorboardX")
    assert spaced.run_location() == f"tensorboard --logdir '{log_dir / 'with space'}'"


def test_missing_tensorboardX_raises_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, log_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'pytest-insidellms\[tensorboard\]'"):
        create_tracker("tensorboard", log_dir=log_dir)


def test_auto_writer_uses_tensorboardX_when_torch_is_missing(
    monkeypatch: pytest.MonkeyPatch, log_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    assert TensorBoardTracker(log_dir=log_dir).writer_kind == "tensorboardX"


def test_torch_writer_without_torch_raises_a_clear_import_error(
    monkeypatch: pytest.MonkeyPatch, log_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"writer='torch' needs PyTorch"):
        TensorBoardTracker(log_dir=log_dir, writer="torch")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"writer": "keras"}, "writer must be one of"), ({"flush_secs": 0}, "flush_secs"),
     ({"flush_secs": True}, "flush_secs")],
)
def test_bad_constructor_arguments_are_refused(
    log_dir: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TensorBoardTracker(log_dir=log_dir, **kwargs)


class TorchSignatureWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter, which cannot be installed here:
    torch's exact signatures (``log_dir=``, ``add_hparams(run_name=)``, no ``**kwargs``),
    writing through tensorboardX, which produces the same event files."""

    def __init__(self, log_dir: str | None = None, comment: str = "", purge_step: int | None = None,
                 max_queue: int = 10, flush_secs: int = 120, filename_suffix: str = "") -> None:
        self._writer = tensorboardX.SummaryWriter(
            logdir=log_dir, max_queue=max_queue, flush_secs=flush_secs, filename_suffix=filename_suffix
        )
        self.file_writer = TorchFileWriter(self._writer)

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None,
                   walltime: float | None = None, new_style: bool = False,
                   double_precision: bool = False) -> None:
        self._writer.add_scalar(tag, scalar_value, global_step, walltime)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        self._writer.add_text(tag, text_string, global_step, walltime)

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None,
                      bins: str = "tensorflow", walltime: float | None = None,
                      max_bins: int | None = None) -> None:
        self._writer.add_histogram(tag, values, global_step, bins, walltime, max_bins)

    def add_hparams(self, hparam_dict: dict[str, Any], metric_dict: dict[str, float],
                    hparam_domain_discrete: Any = None, run_name: str | None = None,
                    global_step: int | None = None) -> None:
        self._writer.add_hparams(hparam_dict, metric_dict, name=run_name, global_step=global_step)

    def flush(self) -> None:
        # torch's flush waits for its queue; closing is how tensorboardX gets there.
        self._writer.close()

    def close(self) -> None:
        self._writer.close()


class TorchFileWriter:
    """torch's FileWriter: takes tensorboard's protobuf classes (tensorboardX's wants its own
    copies of them, so they are converted here)."""

    def __init__(self, writer: tensorboardX.SummaryWriter) -> None:
        self._writer = writer

    def add_summary(self, summary: Any, global_step: int | None = None,
                    walltime: float | None = None) -> None:
        assert isinstance(summary, tensorboard_summary_pb2.Summary), type(summary)
        converted = tensorboardX.proto.summary_pb2.Summary.FromString(summary.SerializeToString())
        self._writer.file_writer.add_summary(converted, global_step, walltime)


def test_torch_writer_path_uses_torch_keywords_end_to_end(
    monkeypatch: pytest.MonkeyPatch, log_dir: Path
) -> None:
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch.utils")
    tensorboard = types.ModuleType("torch.utils.tensorboard")
    tensorboard.SummaryWriter = TorchSignatureWriter  # type: ignore[attr-defined]
    for module in (torch, utils, tensorboard):
        monkeypatch.setitem(sys.modules, module.__name__, module)

    first = TensorBoardTracker(log_dir=log_dir)  # auto picks torch when it imports
    assert first.writer_kind == "torch"
    run_id = first.start_run("torch run")
    first.log_metrics({"x": 1.0}, step=3)
    first.log_params({"lr": 0.5})
    first.log_histogram("h", [1.0, 2.0])
    first.end_run()
    second = TensorBoardTracker(log_dir=log_dir, writer="torch")
    second.start_run(run_id=run_id)
    second.log_metrics({"x": 2.0})
    second.end_run()

    run = read_run(log_dir / run_id)
    assert run.scalars["x"] == [(3, 1.0), (5, 2.0)]  # the histogram took step 4
    assert run.hparams == {"lr": 0.5}
    assert run_ids(log_dir) == [run_id]


def test_importing_the_backend_module_does_not_import_an_sdk() -> None:
    code = (
        "import sys, pytest_insidellms.experiment_tracking.tensorboard\n"
        "print(sorted(m for m in ('tensorboardX', 'torch', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
