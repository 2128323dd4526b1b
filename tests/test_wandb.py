"""WandBTracker against the real wandb SDK in offline mode, read back from the ``.wandb`` files.

One module-scoped session (a tree of runs, two of them live and interleaved) feeds most
tests; the others build small trackers of their own. Everything is written under tmp paths.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wandb
from wandb_reader import WandbRunFile, read_run_file, read_runs

from pytest_insidellms.experiment_tracking import (
    TrackingConfig,
    TrackingWarning,
    WandBTracker,
    create_tracker,
)
from pytest_insidellms.experiment_tracking.wandb import (
    PARENT_KEY,
    STEP_METRIC,
)
from pytest_insidellms.experiment_tracking.names import (
    wandb_artifact_name as artifact_name,
    wandb_artifact_type as artifact_type,
)

WANDB_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR",
             "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE",
             "WANDB_TAGS", "WANDB_NOTES", "WANDB_NAME", "WANDB_RUN_ID", "WANDB_RESUME")


@pytest.fixture(scope="module", autouse=True)
def clean_wandb_env() -> Any:
    """No W&B settings from the developer's environment; what the tracker sets is undone."""
    with pytest.MonkeyPatch.context() as mp:
        for name in WANDB_ENV:
            mp.delenv(name, raising=False)
        yield


@dataclass
class Session:
    root: Path
    ids: dict[str, str]
    runs: dict[str, WandbRunFile]  # by run id
    locations: dict[str, str | None]

    def run(self, label: str) -> WandbRunFile:
        return self.runs[self.ids[label]]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    root = tmp_path_factory.mktemp("wandb-session")
    report = root / "inputs" / "summary.json"
    report.parent.mkdir()
    report.write_text('{"accuracy": 0.75}')
    dataset = root / "inputs" / "golden set"
    (dataset / "sub").mkdir(parents=True)
    (dataset / "a.jsonl").write_text("{}\n")
    (dataset / "sub" / "b.jsonl").write_text("{}\n")

    config = TrackingConfig(project="evals", tags=["nightly", "gpt-4o"], notes="baseline")
    tracker = WandBTracker(mode="offline", dir=root / "out", config=config)
    ids: dict[str, str] = {}
    ids["session"] = tracker.start_run("session")
    ids["qa"] = tracker.start_run("evals/test_qa.py", parent_run_id=ids["session"])
    ids["math"] = tracker.start_run("evals/test_math.py", parent_run_id=ids["session"])
    # Two module runs live at once, their calls interleaved, steps out of order in "qa".
    tracker.log_metrics({"accuracy": 0.5}, step=0, run_id=ids["qa"])
    tracker.log_metrics({"accuracy": 0.9}, step=0, run_id=ids["math"])
    tracker.log_metrics({"accuracy": 0.75}, step=5, run_id=ids["qa"])
    tracker.log_metrics({"accuracy": 1.0}, step=1, run_id=ids["math"])
    tracker.log_metrics({"accuracy": 0.6}, step=2, run_id=ids["qa"])
    tracker.log_metrics({"not_a_number": math.nan, "too_big": math.inf}, run_id=ids["math"])
    tracker.log_params({"model": "gpt-4o", "temperature": 0.0}, run_id=ids["qa"])
    tracker.log_params({"temperature": 0.7, "judge": {"name": "strict", "k": 3}}, run_id=ids["qa"])
    tracker.log_table(
        "answers",
        [{"question": "2+2", "answer": "4", "correct": True},
         {"question": "key?", "answer": "sk-proj-abcdefghijklmnopqrstuvwx", "correct": False}],
        run_id=ids["math"],
    )
    ids["case"] = tracker.start_run("evals/test_qa.py::test_hard", parent_run_id=ids["qa"])
    ids["deep"] = tracker.start_run("deeper", parent_run_id=ids["case"])
    tracker.log_artifact(report, name="reports/summary.json", type="report", run_id=ids["session"])
    tracker.log_artifact(dataset, type="dataset", run_id=ids["session"])
    tracker.log_artifact(report, name="internal.json", type="wandb-history", run_id=ids["session"])
    tracker.end_run("killed", run_id=ids["case"])  # ends "deep" (killed) too
    tracker.end_run("failed", run_id=ids["math"])
    locations = {label: tracker.run_location(rid) for label, rid in ids.items()}
    tracker.end_run("finished", run_id=ids["session"])  # ends "qa" (finished) too
    locations["session_after_end"] = tracker.run_location(ids["session"])
    runs = {run.run_id: run for run in read_runs(root / "out")}
    return Session(root=root, ids=ids, runs=runs, locations=locations)


# -- runs, names, hierarchy -------------------------------------------------------------------


def test_each_run_is_one_offline_run_file_with_its_display_name(session: Session) -> None:
    assert set(session.runs) == set(session.ids.values())
    names = {label: session.run(label).display_name for label in session.ids}
    assert names == {
        "session": "session", "qa": "evals/test_qa.py", "math": "evals/test_math.py",
        "case": "evals/test_qa.py::test_hard", "deep": "deeper",
    }
    assert all(run.project == "evals" for run in session.runs.values())


def test_a_tree_of_runs_shares_the_root_run_id_as_group(session: Session) -> None:
    assert {run.group for run in session.runs.values()} == {session.ids["session"]}


def test_job_type_follows_depth_session_module_nested(session: Session) -> None:
    job_types = {label: session.run(label).job_type for label in session.ids}
    assert job_types == {"session": "session", "qa": "module", "math": "module",
                         "case": "nested", "deep": "nested"}


def test_child_config_records_its_parent_run_id(session: Session) -> None:
    parents = {label: session.run(label).config.get(PARENT_KEY) for label in session.ids}
    ids = session.ids
    assert parents == {"session": None, "qa": ids["session"], "math": ids["session"],
                       "case": ids["qa"], "deep": ids["case"]}


def test_custom_job_types_replace_the_defaults(tmp_path: Path) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path, job_types=["suite", "file"])
    top = tracker.start_run("top")
    tracker.start_run("child", parent_run_id=top)
    tracker.start_run("grandchild", nested=True)
    tracker.end_all_runs()
    assert sorted(r.job_type for r in read_runs(tmp_path)) == ["file", "file", "suite"]


def test_tags_and_notes_come_from_the_config(session: Session) -> None:
    for run in session.runs.values():
        assert run.tags == ["nightly", "gpt-4o"]
        assert run.notes == "baseline"


# -- params, metrics, summary -----------------------------------------------------------------


def test_params_go_to_the_config_and_a_changed_value_is_kept(session: Session) -> None:
    config = session.run("qa").config
    assert config["model"] == "gpt-4o"
    assert config["temperature"] == 0.7
    assert config["judge"] == {"name": "strict", "k": 3}


@pytest.fixture
def config_updates(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``config.update`` the SDK receives (the real one still runs)."""
    calls: list[dict[str, Any]] = []
    real_update: Any = wandb.sdk.wandb_config.Config.update

    def update(self: Any, d: Any, allow_val_change: bool | None = None) -> None:
        calls.append(dict(d))
        real_update(self, d, allow_val_change=allow_val_change)

    monkeypatch.setattr(wandb.sdk.wandb_config.Config, "update", update)
    return calls


def test_params_of_many_calls_reach_the_config_in_one_update(
    tmp_path: Path, config_updates: list[dict[str, Any]]
) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path, flush_interval=60)
    run_id = tracker.start_run("many results")
    for i in range(100):
        tracker.log_metrics({f"t{i}/accuracy": i / 100})
        tracker.log_params({f"t{i}/model": f"m{i}", "shared": i})
    assert config_updates == []  # gathered, not sent one call at a time
    tracker.end_run()

    assert len(config_updates) == 1
    (run,) = read_runs(tmp_path)
    assert run.run_id == run_id
    assert run.config == {**{f"t{i}/model": f"m{i}" for i in range(100)}, "shared": 99}
    assert [run.values(f"t{i}/accuracy") for i in (0, 99)] == [[0.0], [0.99]]


def test_pending_params_are_sent_by_flush_and_while_the_tracker_is_idle(
    tmp_path: Path, config_updates: list[dict[str, Any]]
) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path, flush_interval=60)
    tracker.start_run("explicit")
    tracker.log_params({"model": "a"})
    tracker.flush()
    assert config_updates == [{"model": "a"}]
    tracker.end_run()

    idle = WandBTracker(mode="offline", dir=tmp_path / "idle", flush_interval=0.1)
    idle.start_run("idle")
    idle.log_params({"seed": 3})
    deadline = time.monotonic() + 5
    while {"seed": 3} not in config_updates:
        assert time.monotonic() < deadline, "the params never left the tracker"
        time.sleep(0.02)
    idle.end_run()
    assert config_updates.count({"seed": 3}) == 1


def test_a_failed_background_send_is_raised_by_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any, d: Any, allow_val_change: bool | None = None) -> None:
        raise wandb.Error("config is locked")

    monkeypatch.setattr(wandb.sdk.wandb_config.Config, "update", refuse)
    tracker = WandBTracker(mode="offline", dir=tmp_path, flush_interval=0.05)
    tracker.start_run("locked")
    tracker.log_params({"model": "a"})
    time.sleep(0.5)
    with pytest.raises(wandb.Error, match="config is locked"):
        tracker.log_metrics({"x": 1.0})
    tracker.log_metrics({"x": 2.0})  # raised once
    tracker.end_run()


def test_metrics_keep_their_explicit_steps_even_when_a_lower_step_follows(session: Session) -> None:
    qa = session.run("qa")
    logged = [(row[STEP_METRIC], row["accuracy"]) for row in qa.history if "accuracy" in row]
    assert logged == [(0, 0.5), (5, 0.75), (2, 0.6)]


def test_every_metric_is_charted_against_the_step_metric(session: Session) -> None:
    assert session.run("qa").metric_steps["*"] == STEP_METRIC


def test_interleaved_live_runs_keep_their_own_history(session: Session) -> None:
    math_run = session.run("math")
    assert [(r[STEP_METRIC], r["accuracy"]) for r in math_run.history if "accuracy" in r] == [
        (0, 0.9), (1, 1.0)]
    assert math_run.config == {PARENT_KEY: session.ids["session"]}


def test_an_omitted_step_continues_after_the_highest_step(session: Session) -> None:
    row = next(r for r in session.run("math").history if "not_a_number" in r)
    assert row[STEP_METRIC] == 2


def test_non_finite_metric_values_are_stored(session: Session) -> None:
    row = next(r for r in session.run("math").history if "not_a_number" in r)
    assert math.isnan(row["not_a_number"])
    assert row["too_big"] == math.inf


def test_status_goes_to_the_summary_and_the_exit_code(session: Session) -> None:
    outcome = {label: (session.run(label).summary["status"], session.run(label).exit_code)
               for label in session.ids}
    assert outcome == {
        "session": ("finished", 0), "qa": ("finished", 0), "math": ("failed", 1),
        "case": ("killed", 255), "deep": ("killed", 255),
    }


# -- artifacts, tables, locations -------------------------------------------------------------


def test_artifacts_are_logged_with_names_and_types_wandb_accepts(session: Session) -> None:
    artifacts = {a["name"]: a for a in session.run("session").artifacts}
    assert artifacts["reports_summary.json"]["type"] == "report"
    assert artifacts["reports_summary.json"]["files"] == ["summary.json"]
    assert artifacts["golden_set"]["type"] == "dataset"
    assert artifacts["golden_set"]["files"] == ["a.jsonl", "sub/b.jsonl"]
    # W&B reserves "wandb-*" types for itself.
    assert artifacts["internal.json"]["type"] == "user-wandb-history"


def test_artifact_names_and_types_are_mapped_to_wandb_rules() -> None:
    assert artifact_name("reports/run 1:final?.json") == "reports_run_1_final_.json"
    long_a, long_b = "x" * 200 + "a", "x" * 200 + "b"
    assert len(artifact_name(long_a)) == 128
    assert artifact_name(long_a) != artifact_name(long_b)
    assert artifact_type("my/type", "n") == "my_type"
    assert artifact_type("job", "n") == "user-job"
    assert artifact_type("run_table", "run-x") == "user-run_table"
    assert artifact_type("run_table", "mine") == "run_table"


def test_log_table_logs_rows_at_the_current_step_with_cells_redacted(session: Session) -> None:
    math_run = session.run("math")
    row = next(r for r in math_run.history if "answers" in r)
    assert row[STEP_METRIC] == 2  # the run's highest step when the table was logged
    table_file = math_run.path.parent / "files" / row["answers"]["path"]
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["question", "answer", "correct"]
    assert table["data"] == [["2+2", "4", True], ["key?", "***REDACTED***", False]]


def test_log_table_takes_lists_with_columns_and_rejects_unknown_keys(tmp_path: Path) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path)
    tracker.start_run("tables")
    with pytest.raises(ValueError, match="columns"):
        tracker.log_table("t", [[1, 2]])
    with pytest.raises(ValueError, match="outside the columns"):
        tracker.log_table("t", [{"a": 1}, {"a": 2, "b": 3}])
    tracker.log_table("t", [[1, "x"], [2, "y"]], columns=["n", "s"])
    tracker.end_run()
    (run,) = read_runs(tmp_path)
    row = next(r for r in run.history if "t" in r)
    assert row[STEP_METRIC] == 0
    table = json.loads((run.path.parent / "files" / row["t"]["path"]).read_text())
    assert table == {"columns": ["n", "s"], "data": [[1, "x"], [2, "y"]]}


def test_run_location_is_the_offline_dir_with_its_sync_command(session: Session) -> None:
    session_file = session.run("session").path
    # The command names the session run's directory first, then its nested runs' (issue 12
    # item 1: the test below checks it names every run of the tree).
    expected = f"{session_file.parent} (upload with: wandb sync {session_file.parent}"
    assert str(session.locations["session"]).startswith(expected)
    assert str(session.locations["session_after_end"]).startswith(expected)


# -- resume, settings, environment ------------------------------------------------------------


def test_run_id_resumes_the_run_under_the_same_id_and_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # the mode comes from the environment here
    tracker = WandBTracker(dir=tmp_path)
    run_id = tracker.start_run("resumable")
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.end_run("failed")
    assert tracker.start_run("resumable", run_id=run_id) == run_id
    tracker.log_metrics({"loss": 0.5}, step=1)
    tracker.end_run()
    first, second = read_runs(tmp_path)
    assert (first.run_id, second.run_id) == (run_id, run_id)
    assert (first.resumed, second.resumed) == (False, True)
    assert second.group == run_id and second.display_name == "resumable"
    assert second.values("loss") == [0.5] and second.exit_code == 0


def test_each_run_gets_fresh_settings_and_caller_settings_override_defaults(
    tmp_path: Path,
) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path, settings={"x_save_requirements": True})
    first = tracker.start_run("one")
    second = tracker.start_run("two")
    tracker.end_all_runs()
    runs = {r.run_id: r for r in read_runs(tmp_path)}
    assert first != second and set(runs) == {first, second}
    assert all((r.path.parent / "files" / "requirements.txt").is_file() for r in runs.values())


def test_init_kwargs_that_the_tracker_sets_itself_raise_typeerror(tmp_path: Path) -> None:
    # group and job_type are the tracker's own arguments now (issue 12 item 15).
    with pytest.raises(TypeError, match="id, name"):
        WandBTracker(mode="offline", dir=tmp_path, name="n", id="i")


def test_project_comes_from_the_argument_else_the_config_which_is_not_mutated(
    tmp_path: Path,
) -> None:
    config = TrackingConfig(project="from-config")
    assert WandBTracker(mode="offline", dir=tmp_path, config=config).project == "from-config"
    assert WandBTracker(project="arg", mode="offline", dir=tmp_path, config=config).project == "arg"
    assert config.project == "from-config"
    with pytest.raises(ValueError, match="invalid"):
        WandBTracker(project="team/evals", mode="offline", dir=tmp_path)


def test_long_tags_are_shortened_with_a_warning(tmp_path: Path) -> None:
    config = TrackingConfig(tags=["t" * 70, "ok", " "])
    with pytest.warns(TrackingWarning, match="64"):
        tracker = WandBTracker(mode="offline", dir=tmp_path, config=config)
    tracker.start_run("tagged")
    tracker.end_run()
    assert read_runs(tmp_path)[0].tags == ["t" * 64, "ok"]


def test_no_mode_sets_a_wandb_variable_and_values_the_user_set_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, item 21: the tracker configures W&B without the process environment."""
    for name in WANDB_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "my-cache"))
    before = dict(os.environ)
    for mode in ("offline", "online"):
        WandBTracker(mode=mode, dir=tmp_path)  # constructing contacts nothing
        assert dict(os.environ) == before
    assert os.environ["WANDB_CACHE_DIR"] == str(tmp_path / "my-cache")


def test_disabled_mode_writes_no_run_files(tmp_path: Path) -> None:
    report = tmp_path / "r.txt"
    report.write_text("x")
    tracker = WandBTracker(mode="disabled", dir=tmp_path / "out")
    tracker.start_run("nothing")
    tracker.log_metrics({"a": 1.0})
    tracker.log_artifact(report)
    assert tracker.run_location() is None
    tracker.end_run()
    assert list((tmp_path / "out").rglob("*")) == []  # W&B itself creates the empty dir


# -- finish, extras, SDK ----------------------------------------------------------------------


def test_a_hanging_finish_becomes_a_warning_and_the_run_completes_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_finish = wandb.Run.finish

    def slow_finish(self: Any, exit_code: int | None = None) -> None:
        release.wait(10)
        real_finish(self, exit_code=exit_code)

    monkeypatch.setattr(wandb.Run, "finish", slow_finish)
    tracker = WandBTracker(mode="offline", dir=tmp_path, finish_timeout=0.2)
    run_id = tracker.start_run("slow")
    started = time.monotonic()
    with pytest.warns(TrackingWarning, match=f"did not finish run {run_id} within 0.2 s"):
        tracker.end_run("failed")
    assert time.monotonic() - started < 2
    assert tracker.open_run_ids == []
    release.set()
    (path,) = tmp_path.rglob(f"offline-run-*/run-{run_id}.wandb")
    assert read_run_file(path, wait_for_exit=10).exit_code == 1


def test_watch_model_calls_watch_on_the_addressed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object, int]] = []

    def spy(self: Any, model: object, log_freq: int = 1000, **kwargs: Any) -> None:
        calls.append((self.id, model, log_freq))

    monkeypatch.setattr(wandb.Run, "watch", spy)
    tracker = WandBTracker(mode="offline", dir=tmp_path)
    first = tracker.start_run("first")
    tracker.start_run("second")
    model = object()
    tracker.watch_model(model, log_freq=7, run_id=first)
    tracker.end_all_runs()
    assert calls == [(first, model, 7)]


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_watch_model_without_torch_reports_that_wandb_needs_it(tmp_path: Path) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path)
    tracker.start_run("no-torch")
    with pytest.raises(wandb.Error, match="torch"):
        tracker.watch_model(object())
    tracker.end_run()


def test_missing_sdk_raises_importerror_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'pytest-insidellms\[wandb\]'"):
        WandBTracker(mode="offline", dir=tmp_path)
    with pytest.raises(ImportError, match=r"\[wandb\]"):
        create_tracker("wandb", mode="offline", dir=tmp_path)


def test_importing_the_backend_module_does_not_import_wandb() -> None:
    code = ("import sys, pytest_insidellms.experiment_tracking.wandb, pytest_insidellms;"
            " assert 'wandb' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


_NETWORK_PROBE = """
import atexit, json, sys
seen = []
def audit(event, args):
    if event == "socket.connect":
        seen.append(["connect", repr(args[1])])
    elif event == "socket.getaddrinfo":
        seen.append(["getaddrinfo", str(args[0])])
sys.addaudithook(audit)
# Registered before wandb is imported, so it runs after wandb's own exit handlers.
atexit.register(lambda: open("network.json", "w").write(json.dumps(seen)))
from pytest_insidellms.experiment_tracking import WandBTracker
tracker = WandBTracker(mode="offline", dir="out")
session = tracker.start_run("session")
tracker.start_run("module", nested=True)
tracker.log_metrics({"a": 1.0})
tracker.log_params({"p": 1})
tracker.log_artifact(__file__, type="code-file")
tracker.end_all_runs()
"""


def test_an_offline_session_opens_no_network_connection(tmp_path: Path) -> None:
    """Python-level sockets only (a sys.audit hook); wandb-core, the Go service, is not seen
    here (checked by hand with strace: it connects to nothing but its unix socket)."""
    (tmp_path / "network.py").write_text(_NETWORK_PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    subprocess.run([sys.executable, "network.py"], cwd=tmp_path, env=env, timeout=120,
                   check=True)
    seen = json.loads((tmp_path / "network.json").read_text())
    assert len(read_runs(tmp_path / "out")) == 2
    assert [e for e in seen if e[0] == "getaddrinfo"
            and e[1] not in ("localhost", "127.0.0.1", "::1")] == []
    # AF_UNIX addresses are paths (reprs of str); inet ones are (host, port) tuples.
    inet = [e for e in seen if e[0] == "connect" and e[1].startswith("(")]
    assert all(e[1].startswith(("('127.0.0.1'", "('::1'", "('localhost'")) for e in inet), inet


def test_offline_location_names_one_sync_command_for_every_run_of_the_tree(
    tmp_path: Path,
) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path)
    other = tracker.start_run("another session")  # a tree of its own: not in the command
    tracker.end_run()
    root = tracker.start_run("session")
    tracker.start_run("test_a.py", parent_run_id=root)
    tracker.end_run()
    tracker.start_run("test_b.py", parent_run_id=root)
    tracker.end_all_runs()
    location = tracker.run_location(root)
    assert location is not None
    command = location.partition("(upload with: ")[2].rstrip(")")
    words = command.split()
    assert words[:2] == ["wandb", "sync"]
    expected = {str(run.path.parent) for run in read_runs(tmp_path)
                if run.display_name in ("session", "test_a.py", "test_b.py")}
    assert len(expected) == 3 and set(words[2:]) == expected and len(words) == 5
    assert all(other not in word for word in words)
    # wandb's own CLI accepts the command as printed and would upload those runs, and no more.
    dry = subprocess.run([sys.executable, "-m", "wandb", *words[1:], "--dry-run"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    mentioned = {line for line in (dry.stdout + dry.stderr).splitlines() if ".wandb" in line}
    assert len(mentioned) == 3 and not any(other in line for line in mentioned)
