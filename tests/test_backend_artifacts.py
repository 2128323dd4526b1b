"""Artifacts, names and constructor arguments every backend treats alike: a second artifact of
a taken name kept under the local backend's name, the path the caller logged shown as the
source, MLflow's UI tags, and constructor arguments mirrored into the tracker's config copy.
Real backends: MLflow on sqlite, W&B offline, TensorBoard event files, local files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from tensorboard_reader import read_run
from wandb_reader import read_runs

from pytest_insidellms.experiment_tracking import LocalFileTracker, TrackingConfig
from pytest_insidellms.experiment_tracking.mlflow import (
    ARTIFACT_SOURCE_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_DEVELOPMENT,
    MLflowTracker,
)
from pytest_insidellms.experiment_tracking.names import numbered_name
from pytest_insidellms.experiment_tracking.tensorboard import TensorBoardTracker
from pytest_insidellms.experiment_tracking.wandb import WandBTracker


@pytest.fixture(autouse=True)
def no_wandb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE"):
        monkeypatch.delenv(name, raising=False)


def _files(tmp_path: Path) -> list[tuple[Path, str]]:
    """Three artifacts logged under one name, and one under a folder name, each from its own
    file (the copies must not be the same file, or a lost one would go unnoticed)."""
    logged = []
    for n, (name, text) in enumerate([("report.txt", "first"), ("report.txt", "second"),
                                      ("report.txt", "third"), ("out/a.tar.gz", "archive")]):
        source = tmp_path / "sources" / str(n) / Path(name).name
        source.parent.mkdir(parents=True)
        source.write_text(text, "utf-8")
        logged.append((source, name))
    return logged


EXPECTED_NAMES = ["out/a.tar.gz", "report.txt", "report_2.txt", "report_3.txt"]


def _log_all(tracker: Any, tmp_path: Path) -> str:
    run_id: str = tracker.start_run("artifacts")
    for source, name in _files(tmp_path):
        # origin: the path the caller logged, as the plugin passes it for a staged copy.
        tracker.log_artifact(source, name, "report", origin=f"/user/{name}")
    tracker.end_run()
    return run_id


def test_numbered_name_numbers_the_leaf_as_the_local_backend_does() -> None:
    assert numbered_name("a.txt", set()) == "a.txt"
    assert numbered_name("a.txt", {"a.txt"}) == "a_2.txt"
    assert numbered_name("a.txt", {"a.txt", "a_2.txt"}) == "a_3.txt"
    assert numbered_name("d/x.tar.gz", {"d/x.tar.gz"}) == "d/x.tar_2.gz"
    assert numbered_name(".env", {".env"}) == ".env_2"
    assert numbered_name("dir", {"dir"}) == "dir_2"


def test_local_keeps_every_artifact_of_a_name_and_its_logged_source(tmp_path: Path) -> None:
    tracker = LocalFileTracker(tmp_path / "runs")
    run_id = _log_all(tracker, tmp_path)
    artifacts = tracker.load_run(run_id)["artifacts"]
    kept = sorted(Path(a["path"]).relative_to(tracker.run_path(run_id) / "artifacts").as_posix()
                  for a in artifacts)
    assert kept == EXPECTED_NAMES
    assert sorted(a["original_path"] for a in artifacts) == sorted(
        f"/user/{name}" for _, name in _files(tmp_path / "again"))


def test_mlflow_keeps_both_artifacts_under_the_local_names(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, experiment_name="artifacts")
    run_id = _log_all(tracker, tmp_path)
    client = MlflowClient(uri)
    names = sorted(
        [f.path for f in client.list_artifacts(run_id) if not f.is_dir]
        + [f.path for f in client.list_artifacts(run_id, "out")])
    assert names == EXPECTED_NAMES
    contents = {name: Path(client.download_artifacts(run_id, name, str(tmp_path / "dl")))
                .read_text("utf-8") for name in ("report.txt", "report_2.txt", "report_3.txt")}
    assert contents == {"report.txt": "first", "report_2.txt": "second", "report_3.txt": "third"}
    tags = client.get_run(run_id).data.tags
    assert {k: v for k, v in tags.items() if k.startswith(ARTIFACT_SOURCE_TAG)} == {
        f"{ARTIFACT_SOURCE_TAG}/{name}": f"/user/{logged}"
        for name, logged in zip(EXPECTED_NAMES, ["out/a.tar.gz", *["report.txt"] * 3])}


def test_mlflow_numbers_after_what_a_resumed_run_already_holds(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = tmp_path / "report.txt"
    source.write_text("x", "utf-8")
    tracker = MLflowTracker(uri, experiment_name="resume")
    run_id = tracker.start_run("r")
    tracker.log_artifact(source)
    tracker.end_run()
    again = MLflowTracker(uri, experiment_name="resume")
    again.start_run("r", run_id=run_id)
    again.log_artifact(source)
    again.end_run()
    assert sorted(f.path for f in MlflowClient(uri).list_artifacts(run_id)) == [
        "report.txt", "report_2.txt"]


def test_wandb_keeps_both_artifacts_under_the_local_names(tmp_path: Path) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path / "wb")
    _log_all(tracker, tmp_path)
    (run,) = read_runs(tmp_path / "wb")
    logged = {a["metadata"]["name"]: a for a in run.artifacts}
    assert sorted(logged) == EXPECTED_NAMES
    # Distinct W&B artifacts (not versions of one), each holding the file under its own name.
    assert len({a["name"] for a in run.artifacts}) == 4
    assert logged["report_2.txt"]["files"] == ["report_2.txt"]
    assert {name: a["metadata"]["source"] for name, a in logged.items()} == {
        "out/a.tar.gz": "/user/out/a.tar.gz", "report.txt": "/user/report.txt",
        "report_2.txt": "/user/report.txt", "report_3.txt": "/user/report.txt"}


def test_tensorboard_keeps_both_artifacts_and_shows_the_logged_source(tmp_path: Path) -> None:
    tracker = TensorBoardTracker(tmp_path / "tb", writer="tensorboardX")
    run_id = _log_all(tracker, tmp_path)
    run_dir = tracker.run_dir(run_id)
    kept = sorted(p.relative_to(run_dir / "artifacts").as_posix()
                  for p in (run_dir / "artifacts").rglob("*") if p.is_file())
    assert kept == EXPECTED_NAMES
    tables = [text for _, text in read_run(run_dir).texts["artifacts"]]
    assert all("/user/" in table for table in tables) and len(tables) == 4
    assert not any(str(tmp_path / "sources") in table for table in tables)


# -- MLflow's UI ---------------------------------------------------------------------------


def test_mlflow_tags_what_its_ui_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    checkout = tmp_path / "repo"
    checkout.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q", "-b", "evals"], ["remote", "add", "origin",
                 "https://user:s3cret@example.com/team/repo.git"],
                 ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run([*git, *args], cwd=checkout, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, check=True,
                            capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(checkout)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, experiment_name="ui")
    run_id = tracker.start_run("r")
    tracker.end_run()
    client = MlflowClient(uri)
    assert client.get_experiment(tracker.experiment_id).tags[EXPERIMENT_KIND_TAG] == (
        MODEL_DEVELOPMENT)
    tags = client.get_run(run_id).data.tags
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"]
    assert tags["mlflow.user"]
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.branch"] == "evals"
    assert tags["mlflow.source.git.repoURL"].startswith("https://user:")
    assert "s3cret" not in tags["mlflow.source.git.repoURL"]


def test_mlflow_gives_an_existing_experiment_its_kind_but_keeps_one_it_has(
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    bare = client.create_experiment("bare")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    MLflowTracker(uri, experiment_name="bare")
    MLflowTracker(uri, experiment_name="chosen")
    assert client.get_experiment(bare).tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


# -- constructor arguments -------------------------------------------------------------------


def test_mlflow_experiment_name_is_mirrored_into_the_config_copy(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TrackingConfig()
    tracker = MLflowTracker(uri, experiment_name="x", config=config)
    assert tracker.config.experiment_name == "x"
    assert config.experiment_name is None  # the caller's config is not touched
    with tracker:
        run_id = tracker._context_runs[-1]
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.run_name == "x"
    assert run.info.experiment_id == tracker.experiment_id


def test_wandb_project_group_and_job_type_arguments(tmp_path: Path) -> None:
    tracker = WandBTracker(project="p", mode="offline", dir=tmp_path, group="my-group",
                           job_type="eval")
    assert tracker.config.project == "p"
    root = tracker.start_run("root")
    tracker.start_run("child", parent_run_id=root)
    tracker.end_all_runs()
    runs = {run.display_name: run for run in read_runs(tmp_path)}
    assert {name: (run.group, run.job_type, run.project) for name, run in runs.items()} == {
        "root": ("my-group", "eval", "p"), "child": ("my-group", "module", "p")}
    with pytest.raises(ValueError, match="group"):
        WandBTracker(mode="offline", dir=tmp_path, group=" ")


def test_wandb_log_table_with_no_rows(tmp_path: Path) -> None:
    tracker = WandBTracker(mode="offline", dir=tmp_path)
    tracker.start_run("tables")
    tracker.log_table("nothing", [])
    tracker.log_table("empty", [], columns=["a", "b"])
    tracker.end_run()
    (run,) = read_runs(tmp_path)
    logged = [key for row in run.history for key in row if not key.startswith(("_", "insidellms"))]
    assert logged == ["empty"]

