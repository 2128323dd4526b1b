"""Every kind of ``--track-baseline`` resolved against the real thing: run directories written
by real sessions, the local backend's runs, MLflow on sqlite and on a real server, a git
repository. Sessions run in subprocesses in git repositories (one branch each), shared by the
module: a session tracked to MLflow costs seconds, and a killed one must really be killed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import INNER_INI
from mlflow_server import MlflowServer, mlflow_server_fixture

from pytest_insidellms.gate.baseline import (
    Baseline,
    BaselineError,
    GitBaseline,
    LocalLatest,
    MissingBaseline,
    MlflowBaseline,
    PathBaseline,
    parse_baseline_spec,
    resolve_baseline,
)
from pytest_insidellms.records import read_records

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from mlflow.tracking import MlflowClient  # noqa: E402

PROJECT = "insideLLMs"
SUITE = """
import os, pathlib, signal
import pytest

ANSWERS = pathlib.Path(__file__).with_name("answers.txt").read_text().split()

@pytest.mark.experiment(name="qa")
@pytest.mark.parametrize("case", range(len(ANSWERS)))
def test_answer(case):
    assert ANSWERS[case] == "right"

def test_zz_end():
    stop = os.environ.get("BASELINE_STOP")
    if stop:
        os.kill(os.getpid(), getattr(signal, stop))
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

mlflow_server = mlflow_server_fixture("module")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "test_suite.py").write_text(SUITE)
    (path / "pytest.ini").write_text(INNER_INI)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "the suite")
    return path


def run_session(repo: Path, name: str, answers: str, *args: str, records: bool = True,
                env: dict[str, str] | None = None) -> int:
    """One tracked session named ``name``, its run files (if any) in ``repo/<name>``."""
    (repo / "answers.txt").write_text(answers)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("INSIDELLMS_", "MLFLOW_TRACKING", "WANDB_", "PYTEST_"))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--track-run-name", name, *args]
    if records:
        command += ["--track-records", name]
    done = subprocess.run(command, cwd=repo, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.returncode


@dataclass
class Sessions:
    """Six sessions of one suite, oldest first, each ended differently:

    main-1 (main; a case fails, so its run ends ``failed``) is the newest usable one on main;
    feature-1 (feature; all pass, ``finished``) the newest usable one; after it, on main:
    no-records (no --track-records), stopped (-x: ``failed``, records of a part of the
    suite), interrupted (SIGINT: ``killed``) and, local only, sigkilled (still ``running``).
    """

    repo: Path

    @property
    def track_dir(self) -> Path:
        return self.repo / "experiments"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.track_dir / 'mlflow.db'}"

    def records(self, name: str) -> list[dict[str, Any]]:
        return read_records(self.repo / name)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory,
             mlflow_server: MlflowServer) -> Sessions:
    # The server fixture comes first: it starts while these sessions run.
    repo = make_repo(tmp_path_factory.mktemp("sessions") / "repo")
    both = ("--track", "local,mlflow")
    assert run_session(repo, "main-1", "right right wrong right", *both) == 1
    git(repo, "checkout", "-q", "-b", "feature")
    assert run_session(repo, "feature-1", "right right right right", *both) == 0
    git(repo, "checkout", "-q", "main")
    assert run_session(repo, "no-records", "right right right right", *both,
                       records=False) == 0
    assert run_session(repo, "stopped", "wrong right right right", "-x", *both) == 1
    assert run_session(repo, "interrupted", "right right right right", *both,
                       env={"BASELINE_STOP": "SIGINT"}) == 2
    assert run_session(repo, "sigkilled", "right right right right", "--track", "local",
                       env={"BASELINE_STOP": "SIGKILL"}) == -9
    return Sessions(repo)


def resolve(text: str, where: Sessions | Path, **kwargs: Any) -> Baseline | MissingBaseline:
    repo = where.repo if isinstance(where, Sessions) else where
    spec = parse_baseline_spec(text, "--track-baseline")
    return resolve_baseline(spec, track_dir=repo / "experiments", project=PROJECT, root=repo,
                            **kwargs)


def found(text: str, where: Sessions | Path, **kwargs: Any) -> Baseline:
    baseline = resolve(text, where, **kwargs)
    assert isinstance(baseline, Baseline), baseline
    return baseline


def missing(text: str, where: Sessions | Path, **kwargs: Any) -> str:
    baseline = resolve(text, where, **kwargs)
    assert isinstance(baseline, MissingBaseline), baseline
    assert baseline.spec == text
    return baseline.reason


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("out", PathBaseline("out", "out")),
    ("baselines/qa/records.jsonl", PathBaseline("baselines/qa/records.jsonl",
                                                "baselines/qa/records.jsonl")),
    ("./odd:name", PathBaseline("./odd:name", "./odd:name")),
    ("C:/runs/base", PathBaseline("C:/runs/base", "C:/runs/base")),
    ("local:latest", LocalLatest("local:latest")),
    ("local:latest?branch=release/1+x", LocalLatest("local:latest?branch=release/1+x",
                                                    "release/1+x")),
    ("mlflow:latest", MlflowBaseline("mlflow:latest")),
    ("mlflow:latest?branch=main", MlflowBaseline("mlflow:latest?branch=main", None, "main")),
    ("mlflow:0a1b2c3d4e5f", MlflowBaseline("mlflow:0a1b2c3d4e5f", "0a1b2c3d4e5f")),
    ("git:origin/main:baselines/qa", GitBaseline("git:origin/main:baselines/qa", "origin/main",
                                                 "baselines/qa")),
    ("git:HEAD~1:a/records.jsonl", GitBaseline("git:HEAD~1:a/records.jsonl", "HEAD~1",
                                               "a/records.jsonl")),
])
def test_each_accepted_form_parses_into_its_kind(text: str, expected: object) -> None:
    assert parse_baseline_spec(text, "--track-baseline") == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "nothing given"),
    ("s3:bucket/base", "unknown scheme 's3'"),
    ("local:newest", "expects latest"),
    ("local:0a1b2c", "expects latest"),
    ("mlflow:latest?branch=", "branch=NAME"),
    ("mlflow:latest?tag=x", "branch=NAME"),
    ("local:latest?branch=a&branch=b", "branch=NAME"),
    ("mlflow:0a1b2c?branch=main", "a run id takes no query"),
    ("mlflow:not/an/id", "expects latest or a run id"),
    ("git:HEAD", "git:<ref>:<path>"),
    ("git::baselines", "git:<ref>:<path>"),
    ("git:--output=x:baselines", "starts with '-'"),
])
def test_a_malformed_spec_is_an_error_naming_its_source_and_the_accepted_forms(
        text: str, why: str) -> None:
    with pytest.raises(BaselineError) as raised:
        parse_baseline_spec(text, "ini option insidellms_track_baseline")
    message = str(raised.value)
    assert message.startswith("ini option insidellms_track_baseline: ")
    assert why in message
    assert "local:latest?branch=NAME" in message and "git:<ref>:<path>" in message


def test_credentials_in_a_spec_are_masked_in_its_error() -> None:
    with pytest.raises(BaselineError) as raised:
        parse_baseline_spec("https://user:hunter2@example.com/base", "--track-baseline")
    assert "hunter2" not in str(raised.value)


# -- a path ----------------------------------------------------------------------------------


def test_a_run_directory_and_its_records_file_are_read(sessions: Sessions) -> None:
    expected = sessions.records("main-1")
    assert len(expected) == 5
    by_dir = found("main-1", sessions)
    assert by_dir.spec == "main-1"
    assert by_dir.source == str(sessions.repo / "main-1" / "records.jsonl")
    assert by_dir.records == expected
    assert found("main-1/records.jsonl", sessions).records == expected
    absolute = str(sessions.repo / "feature-1")
    assert found(absolute, sessions).records == sessions.records("feature-1")


def test_a_path_that_does_not_exist_or_an_empty_directory_is_missing(tmp_path: Path) -> None:
    assert missing("baselines/qa", tmp_path) == f"{tmp_path / 'baselines/qa'} does not exist"
    (tmp_path / "empty").mkdir()
    assert missing("empty", tmp_path) == f"{tmp_path / 'empty'} is empty"


@pytest.mark.parametrize(("content", "complaint"), [
    ('{"status": "success", "custom": {"replicate_key": "t::a"}}\nnot json\n', ":2: not JSON"),
    ('["a list"]\n', ":1: a record must be a JSON object"),
    ('{"status": "success", "custom": {}}\n', "record 1 has no custom.replicate_key"),
    ('{"custom": {"replicate_key": "t::a"}}\n', "record 1 has no status"),
    (b"\xff\xfe{}\n", "codec can't decode"),
])
def test_a_file_that_is_not_records_is_an_error_naming_the_spec(
        tmp_path: Path, content: str | bytes, complaint: str) -> None:
    target = tmp_path / "base" / "records.jsonl"
    target.parent.mkdir()
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    for text in ("base", "base/records.jsonl"):
        with pytest.raises(BaselineError) as raised:
            resolve(text, tmp_path)
        assert str(raised.value).startswith(f"baseline {text!r}: not readable records: ")
        assert complaint in str(raised.value)


def test_a_directory_with_other_files_but_no_records_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "notes.txt").write_text("hi")
    with pytest.raises(BaselineError,
                       match="baseline 'base': not readable records: .*records.jsonl"):
        resolve("base", tmp_path)


# -- local:latest ----------------------------------------------------------------------------


def test_local_latest_is_the_newest_completed_session_with_records(sessions: Sessions) -> None:
    baseline = found("local:latest", sessions)
    run_dir = sessions.track_dir / PROJECT / "feature-1"
    assert baseline.source == f"local run {run_dir}"
    assert baseline.records == sessions.records("feature-1")
    # What the sessions after it left, as the local backend reads them back:
    states = {name: json.loads((sessions.track_dir / PROJECT / name / "final_state.json")
                               .read_text())["status"]
              for name in ("main-1", "feature-1", "no-records", "stopped", "interrupted")}
    assert states == {"main-1": "failed", "feature-1": "finished", "no-records": "finished",
                      "stopped": "failed", "interrupted": "killed"}
    assert not (sessions.track_dir / PROJECT / "sigkilled" / "final_state.json").exists()


def test_local_latest_on_a_branch_passes_over_unfinished_partial_and_recordless_runs(
        sessions: Sessions) -> None:
    baseline = found("local:latest?branch=main", sessions)
    assert baseline.source == f"local run {sessions.track_dir / PROJECT / 'main-1'}"
    assert baseline.records == sessions.records("main-1")
    assert baseline.records != sessions.records("feature-1")
    reason = missing("local:latest?branch=main", sessions, exclude_run_ids={"main-1"})
    assert reason == (f"no completed session with records on branch 'main' under "
                      f"{sessions.track_dir / PROJECT} (passed over: 1 on another branch, 2 "
                      f"unfinished, 1 with a partial run, 1 without records)")


def test_local_latest_never_picks_an_excluded_run(sessions: Sessions) -> None:
    baseline = found("local:latest", sessions, exclude_run_ids=["feature-1"])
    assert baseline.records == sessions.records("main-1")


def test_local_latest_of_another_project_or_an_empty_track_dir_is_missing(
        sessions: Sessions, tmp_path: Path) -> None:
    spec = parse_baseline_spec("local:latest", "--track-baseline")
    other = resolve_baseline(spec, track_dir=sessions.track_dir, project="other", root=tmp_path)
    assert other == MissingBaseline("local:latest", "no completed session with records under "
                                                    f"{sessions.track_dir / 'other'}")
    assert isinstance(resolve("local:latest", tmp_path), MissingBaseline)


def test_local_latest_breaks_a_tie_of_end_times_by_run_id(sessions: Sessions,
                                                          tmp_path: Path) -> None:
    project_dir = tmp_path / "experiments" / PROJECT
    project_dir.mkdir(parents=True)
    for copy, source in (("b", "main-1"), ("a", "feature-1")):
        shutil.copytree(sessions.track_dir / PROJECT / source, project_dir / copy)
        state = project_dir / copy / "final_state.json"
        state.write_text(json.dumps({**json.loads(state.read_text()),
                                     "ended_at": "2030-01-01T00:00:00+00:00"}))
    baseline = found("local:latest", tmp_path)
    assert baseline.source == f"local run {project_dir / 'b'}"
    assert baseline.records == sessions.records("main-1")


def test_a_newest_session_whose_records_are_corrupt_is_an_error(sessions: Sessions,
                                                                 tmp_path: Path) -> None:
    project_dir = tmp_path / "experiments" / PROJECT
    shutil.copytree(sessions.track_dir / PROJECT / "feature-1", project_dir / "feature-1")
    (project_dir / "feature-1" / "artifacts" / "records" / "records.jsonl").write_text("{oops\n")
    with pytest.raises(BaselineError, match="baseline 'local:latest': not readable records: "
                                            ".*records.jsonl:1: not JSON"):
        resolve("local:latest", tmp_path)


# -- mlflow ----------------------------------------------------------------------------------


def mlflow_runs(uri: str) -> dict[str, Any]:
    """The session runs of the project's experiment, by run name."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(PROJECT)
    assert experiment is not None
    return {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])
            if "mlflow.parentRunId" not in run.data.tags}


def test_mlflow_latest_on_sqlite_is_the_newest_completed_session_with_records(
        sessions: Sessions) -> None:
    runs = mlflow_runs(sessions.mlflow_uri)
    assert {name: run.info.status for name, run in runs.items()} == {
        "main-1": "FAILED", "feature-1": "FINISHED", "no-records": "FINISHED",
        "stopped": "FAILED", "interrupted": "KILLED"}
    # The newer runs are passed over: no records, partial records (-x), killed.
    assert [n for n, _ in sorted(runs.items(), key=lambda item: item[1].info.end_time)] == [
        "main-1", "feature-1", "no-records", "stopped", "interrupted"]
    baseline = found("mlflow:latest", sessions, mlflow_uri=sessions.mlflow_uri)
    assert baseline.source == f"mlflow run {runs['feature-1'].info.run_id} ({sessions.mlflow_uri})"
    assert baseline.records == sessions.records("feature-1")


def test_mlflow_latest_defaults_to_the_store_a_tracked_session_used(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert found("mlflow:latest", sessions).records == sessions.records("feature-1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sessions.mlflow_uri)
    elsewhere = sessions.repo.parent / "elsewhere"  # the embedded store would be here
    spec = parse_baseline_spec("mlflow:latest", "--track-baseline")
    baseline = resolve_baseline(spec, track_dir=elsewhere, project=PROJECT, root=sessions.repo)
    assert isinstance(baseline, Baseline) and baseline.records == sessions.records("feature-1")
    assert not elsewhere.exists()


def test_mlflow_latest_on_a_branch_and_without_any_on_sqlite(sessions: Sessions) -> None:
    runs = mlflow_runs(sessions.mlflow_uri)
    on_main = found("mlflow:latest?branch=main", sessions, mlflow_uri=sessions.mlflow_uri)
    assert on_main.source == f"mlflow run {runs['main-1'].info.run_id} ({sessions.mlflow_uri})"
    assert on_main.records == sessions.records("main-1")
    reason = missing("mlflow:latest?branch=main", sessions, mlflow_uri=sessions.mlflow_uri,
                     exclude_run_ids=[runs["main-1"].info.run_id])
    assert reason == (f"no completed session run with records on branch 'main' in MLflow "
                      f"experiment {PROJECT!r} at {sessions.mlflow_uri} (passed over: 1 "
                      f"unfinished, 1 without complete records)")
    assert missing("mlflow:latest?branch=gone", sessions,
                   mlflow_uri=sessions.mlflow_uri).startswith(
        "no completed session run with records on branch 'gone'")


def test_mlflow_latest_excludes_the_current_session_by_run_id_never_by_name(
        sessions: Sessions) -> None:
    runs = mlflow_runs(sessions.mlflow_uri)
    baseline = found("mlflow:latest", sessions, mlflow_uri=sessions.mlflow_uri,
                     exclude_run_ids={runs["feature-1"].info.run_id})
    assert baseline.records == sessions.records("main-1")
    by_name = found("mlflow:latest", sessions, mlflow_uri=sessions.mlflow_uri,
                    exclude_run_ids={"feature-1"})  # another session may share a run's name
    assert by_name.records == sessions.records("feature-1")


def test_mlflow_run_id_on_sqlite_found_not_found_and_without_records(sessions: Sessions) -> None:
    runs = mlflow_runs(sessions.mlflow_uri)
    uri = sessions.mlflow_uri
    run_id = runs["interrupted"].info.run_id  # named explicitly, even a killed run serves
    baseline = found(f"mlflow:{run_id}", sessions, mlflow_uri=uri)
    assert baseline.source == f"mlflow run {run_id} ({uri})"
    assert baseline.records == sessions.records("interrupted")
    with pytest.raises(BaselineError, match=f"baseline 'mlflow:{'0' * 32}': MLflow at .*: Run "
                                            "not found"):
        resolve(f"mlflow:{'0' * 32}", sessions, mlflow_uri=uri)
    recordless = runs["no-records"].info.run_id
    with pytest.raises(BaselineError, match=f"MLflow run {recordless} at .* has no "
                                            "records/records.jsonl artifact"):
        resolve(f"mlflow:{recordless}", sessions, mlflow_uri=uri)
    with pytest.raises(BaselineError, match="this session's own run"):
        resolve(f"mlflow:{run_id}", sessions, mlflow_uri=uri, exclude_run_ids=[run_id])


def test_mlflow_without_a_store_or_an_experiment(sessions: Sessions, tmp_path: Path) -> None:
    absent = f"sqlite:///{tmp_path / 'none.db'}"
    assert missing("mlflow:latest", tmp_path, mlflow_uri=absent) == f"no MLflow store at {absent}"
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(BaselineError, match="Run not found"):
        resolve("mlflow:0a1b", tmp_path, mlflow_uri=absent)
    spec = parse_baseline_spec("mlflow:latest", "--track-baseline")
    other = resolve_baseline(spec, track_dir=sessions.track_dir, project="other",
                             root=sessions.repo, mlflow_uri=sessions.mlflow_uri)
    assert isinstance(other, MissingBaseline) and "experiment 'other'" in other.reason


@pytest.fixture(scope="module")
def served(mlflow_server: MlflowServer,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two sessions (main, then feature) tracked to the real server."""
    url = mlflow_server.wait_ready()
    repo = make_repo(tmp_path_factory.mktemp("served") / "repo")
    env = {"MLFLOW_TRACKING_URI": url}
    assert run_session(repo, "main-1", "right wrong right right", "--track", "mlflow",
                       env=env) == 1
    git(repo, "checkout", "-q", "-b", "feature")
    assert run_session(repo, "feature-1", "right right right right", "--track", "mlflow",
                       env=env) == 0
    return repo, url


def test_mlflow_latest_and_run_id_on_a_real_server(served: tuple[Path, str]) -> None:
    repo, url = served
    runs = mlflow_runs(url)
    assert set(runs) == {"main-1", "feature-1"}
    latest = found("mlflow:latest", repo, mlflow_uri=url)
    assert latest.source == f"mlflow run {runs['feature-1'].info.run_id} ({url})"
    assert latest.records == read_records(repo / "feature-1")
    on_main = found("mlflow:latest?branch=main", repo, mlflow_uri=url)
    assert on_main.records == read_records(repo / "main-1")
    by_id = found(f"mlflow:{runs['main-1'].info.run_id}", repo, mlflow_uri=url)
    assert by_id.records == read_records(repo / "main-1")
    with pytest.raises(BaselineError, match="Run not found"):
        resolve(f"mlflow:{'0' * 32}", repo, mlflow_uri=url)
    assert "branch 'gone'" in missing("mlflow:latest?branch=gone", repo, mlflow_uri=url)


def test_credentials_in_a_server_uri_are_masked_in_the_source(served: tuple[Path, str]) -> None:
    repo, url = served
    with_password = url.replace("http://", "http://user:hunter2@")
    baseline = found("mlflow:latest", repo, mlflow_uri=with_password)
    assert baseline.records == read_records(repo / "feature-1")
    assert "hunter2" not in baseline.source and "user:" in baseline.source


def test_an_unreachable_server_is_an_error_not_a_missing_baseline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow_server import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(BaselineError, match="baseline 'mlflow:latest': MLflow at "
                                            "http://127.0.0.1:[0-9]+: "):
        resolve("mlflow:latest", tmp_path, mlflow_uri=f"http://127.0.0.1:{free_port()}")


# -- git:<ref>:<path> ------------------------------------------------------------------------


#: A repository, the lines of its two committed baselines, its three commits (oldest first).
History = tuple[Path, list[list[str]], list[str]]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A repository whose first commit has no baseline, the second commits one and the third
    (HEAD) changes it; returns the repo, the two baselines' lines and the commit ids."""
    repo = tmp_path_factory.mktemp("history") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("no baseline yet\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    versions = []
    for status in ("success", "error"):
        lines = [json.dumps({"status": status, "custom": {"replicate_key": f"t.py::{k}"}})
                 for k in ("a", "b")]
        target = repo / "baselines" / "qa" / "records.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"baseline: {status}")
        versions.append(lines)
    commits = git(repo, "rev-list", "--reverse", "HEAD").split()
    return repo, versions, commits


def test_git_reads_records_committed_at_a_ref(
        history: History) -> None:
    repo, versions, commits = history
    older = found("git:HEAD~1:baselines/qa", repo)
    assert older.source == f"git {commits[1]}:baselines/qa/records.jsonl"
    assert older.records == [json.loads(line) for line in versions[0]]
    newer = found("git:main:baselines/qa/records.jsonl", repo)
    assert newer.records == [json.loads(line) for line in versions[1]]
    # A path relative to the root given, from a subdirectory.
    (repo / "sub").mkdir(exist_ok=True)
    spec = parse_baseline_spec("git:HEAD~1:./../baselines/qa", "--track-baseline")
    from_sub = resolve_baseline(spec, track_dir=repo / "experiments", project=PROJECT,
                                root=repo / "sub")
    assert isinstance(from_sub, Baseline) and from_sub.records == older.records


def test_git_ref_without_the_path_is_missing(history: History) -> None:
    repo, _, commits = history
    assert missing("git:HEAD~2:baselines/qa", repo) == (
        f"HEAD~2 ({commits[0][:12]}) has no baselines/qa/records.jsonl")
    assert "has no baselines/other/records.jsonl" in missing("git:HEAD:baselines/other", repo)


def test_git_bad_ref_or_no_repository_is_an_error(
        history: History, tmp_path: Path) -> None:
    repo, _, _ = history
    with pytest.raises(BaselineError, match="baseline 'git:origin/main:baselines/qa': git "
                                            "knows no commit 'origin/main'"):
        resolve("git:origin/main:baselines/qa", repo)
    with pytest.raises(BaselineError, match="knows no commit 'HEAD~9'"):
        resolve("git:HEAD~9:baselines/qa", repo)
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(BaselineError, match=f"{outside} is not in a git repository"):
        resolve("git:HEAD:baselines/qa", outside)


def test_git_committed_file_that_is_not_records_is_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "base.jsonl").write_text("version https://git-lfs.github.com/spec/v1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "an LFS pointer, not records")
    with pytest.raises(BaselineError, match="baseline 'git:HEAD:base.jsonl': not readable "
                                            "records: .*:1: not JSON"):
        resolve("git:HEAD:base.jsonl", repo)
