"""Three shards of ``examples/evals``, each in its own process and track directory as if on its
own machine, merged: the unsharded session's run files byte for byte, its accuracies, one group
run per backend with the shards' runs under it, and a refusal naming the shard at fault."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import MlflowServer, experiment_id, mlflow_server_fixture
from shard_sessions import SUITE, checked, clean_env, files, run_merge, run_pytest
from tensorboard_reader import read_run, run_ids
from wandb_reader import read_runs

from pytest_insidellms.records import read_records
from pytest_insidellms.shards.merge import MergeError, merge_shards

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
from mlflow.tracking import MlflowClient  # noqa: E402

#: A GitHub matrix job: the group is the run and job, the attempt apart.
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "5150", "GITHUB_JOB": "evals",
          "GITHUB_RUN_ATTEMPT": "1"}
GROUP = "5150-evals"
BACKENDS = "local,mlflow,wandb,tensorboard"

mlflow_server = mlflow_server_fixture("module")


def experiment(records: Path, name: str) -> dict[str, Any]:
    summary = json.loads((records / "summary.json").read_text())
    (found,) = [e for e in summary["summary"]["experiments"] if e["experiment"] == name]
    return dict(found)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unsharded") / "records"
    checked(run_pytest(SUITE, f"--track-records={out}"), 1)
    return out


@dataclass
class Tracked:
    root: Path
    shards: list[Path]
    merged: Path
    merge_output: str

    def track_dir(self, index: int) -> Path:
        return self.root / f"machine{index}" / "experiments"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """Three shards by --track-shard on every backend; MLflow is the one place they share
    (a team's tracking server: here a sqlite file); then the merge onto every backend."""
    root = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # The store exists before CI runs, as a team's server does: its schema migration (seconds
    # on a loaded machine) is no shard's delay, which could outlast a spool's delivery.
    MlflowClient(tracking_uri=uri).search_experiments()
    env = clean_env(**GITHUB, MLFLOW_TRACKING_URI=uri)
    shards = []
    for index in (1, 2, 3):
        machine = root / f"machine{index}"
        checked(run_pytest(SUITE, "--track", BACKENDS, f"--track-dir={machine / 'experiments'}",
                           f"--track-records={machine / 'records'}", f"--track-shard={index}/3",
                           env=env), 0, 1)
        shards.append(machine / "records")
    merged = root / "merged"
    done = checked(run_merge(*shards, "--out", merged, "--to", BACKENDS,
                             "--track-dir", root / "merge-experiments", env=env), 0)
    return Tracked(root, shards, merged, done.stdout + done.stderr)


def test_the_merged_run_files_are_the_unsharded_sessions_byte_for_byte(
        tracked: Tracked, unsharded: Path) -> None:
    assert files(tracked.merged) == files(unsharded)
    # ...while no shard alone has them: each ran only a part
    for shard in tracked.shards:
        assert len(read_records(shard)) < len(read_records(unsharded))
    assert "problem" not in tracked.merge_output, tracked.merge_output


def test_an_experiment_split_across_shards_gets_the_unsharded_accuracy(
        tracked: Tracked, unsharded: Path) -> None:
    def sentiment(directory: Path) -> tuple[int, int]:
        mine = [r for r in read_records(directory)
                if r["custom"]["experiment"] == "sentiment" and r["status"] != "skipped"]
        return sum(r["status"] == "success" for r in mine), len(mine)

    per_shard = [sentiment(s) for s in tracked.shards]
    assert sum(1 for _, ran in per_shard if ran) >= 2  # the experiment really is split
    passes, ran = sentiment(unsharded)
    assert sum(p for p, _ in per_shard) == passes and sum(r for _, r in per_shard) == ran
    merged = experiment(tracked.merged, "sentiment")
    assert merged["accuracy"] == pytest.approx(passes / ran)
    partial = [p / r for p, r in per_shard if r]
    assert any(a != pytest.approx(passes / ran) for a in partial)  # no shard had the figure


def test_mlflow_one_group_run_over_the_shards_session_runs_over_their_module_runs(
        tracked: Tracked, unsharded: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tracked.root / 'mlflow.db'}")
    check_mlflow_tree(client, unsharded)


def check_mlflow_tree(client: Any, unsharded: Path) -> None:
    runs = client.search_runs([experiment_id(client, "insideLLMs")], max_results=1000)
    (group,) = [r for r in runs if r.info.run_name == f"merge-{GROUP}"]
    assert "mlflow.parentRunId" not in group.data.tags
    sessions = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
    assert sorted(r.data.params["shard_index"] for r in sessions) == ["1", "2", "3"]
    for session in sessions:
        assert {k: session.data.params[k] for k in ("shard_group", "shard_total",
                                                     "shard_attempt")} == {
            "shard_group": GROUP, "shard_total": "3", "shard_attempt": "1"}
        modules = [r for r in runs
                   if r.data.tags.get("mlflow.parentRunId") == session.info.run_id]
        assert modules, session.info.run_name
        index = session.data.params["shard_index"]
        assert all(r.data.tags.get(f"shard:{index}of3") == "true" for r in modules)
    assert len(runs) == 1 + len(sessions) + sum(  # nothing else in the experiment
        1 for r in runs if r.data.tags.get("mlflow.parentRunId") in
        {s.info.run_id for s in sessions})
    summary = json.loads((unsharded / "summary.json").read_text())
    sentiment = experiment(unsharded, "sentiment")
    assert group.data.metrics["sentiment/accuracy"] == pytest.approx(sentiment["accuracy"])
    assert group.data.metrics["tests_total"] == summary["summary"]["session"]["cases"]
    assert group.data.params["records_run_id"] == summary["config"]["run_id"]


def test_wandb_the_shards_runs_and_the_merge_run_share_the_group(tracked: Tracked) -> None:
    shard_runs = [run for index in (1, 2, 3)
                  for run in read_runs(tracked.track_dir(index) / "wandb")]
    (merge_run,) = read_runs(tracked.root / "merge-experiments" / "wandb")
    assert merge_run.group == GROUP and merge_run.job_type == "merge"
    assert {r.group for r in shard_runs} == {GROUP}
    sessions = [r for r in shard_runs if r.job_type == "session"]
    assert sorted(r.config["shard_index"] for r in sessions) == [1, 2, 3]
    assert any(r.job_type == "module" for r in shard_runs)
    assert merge_run.values("sentiment/accuracy") == [
        pytest.approx(experiment(tracked.merged, "sentiment")["accuracy"])]


def test_tensorboard_the_shards_session_runs_are_sibling_directories_of_the_group_run(
        tracked: Tracked) -> None:
    log_dir = tracked.root / "merge-experiments" / "tensorboard" / "insideLLMs"
    top = sorted({run.split("/", 1)[0] for run in run_ids(log_dir)})
    assert f"merge-{GROUP}" in top
    shard_dirs = [t for t in top if t != f"merge-{GROUP}"]
    assert [d.rsplit("_", 1)[-1] for d in shard_dirs] == ["shard1of3", "shard2of3", "shard3of3"]
    for shard_dir in shard_dirs:  # each with its module runs below it
        assert any(run.startswith(f"{shard_dir}/") for run in run_ids(log_dir))
    group = read_run(log_dir / f"merge-{GROUP}")
    summary = json.loads((tracked.merged / "summary.json").read_text())
    assert group.scalars["tests_total"][-1][1] == summary["summary"]["session"]["cases"]


def test_the_merged_tracking_json_names_each_backends_group_run(tracked: Tracked) -> None:
    tracking = json.loads((tracked.merged / "tracking.json").read_text())
    assert set(tracking["backends"]) == {"local", "mlflow", "wandb", "tensorboard"}
    assert all(len(b["linked"]) == 3 and not b["problems"] for b in tracking["backends"].values())
    assert [s["index"] for s in tracking["extra"]["shards"]] == [1, 2, 3]


# -- a real MLflow server ---------------------------------------------------------------------


def test_mlflow_server_one_group_run_over_the_shards(
        mlflow_server: MlflowServer, unsharded: Path, tmp_path: Path) -> None:
    uri = mlflow_server.wait_ready()
    env = clean_env(**GITHUB, MLFLOW_TRACKING_URI=uri)
    shards = []
    for index in (1, 2, 3):
        machine = tmp_path / f"machine{index}"
        checked(run_pytest(SUITE, "--track", "mlflow", f"--track-dir={machine / 'experiments'}",
                           f"--track-records={machine / 'records'}", f"--track-shard={index}/3",
                           env=env), 0, 1)
        shards.append(machine / "records")
    checked(run_merge(*shards, "--out", tmp_path / "merged", "--to", "mlflow",
                      "--tracking-uri", uri, "--track-dir", tmp_path / "merge",
                      env=clean_env()), 0)
    assert files(tmp_path / "merged") == files(unsharded)
    check_mlflow_tree(MlflowClient(tracking_uri=uri), unsharded)


# -- pytest-split, attempts and refusals (records only: fast) ---------------------------------


@dataclass
class Split:
    shards: list[Path]
    partial: Path  #: shard 2's first attempt, stopped at its first failure
    foreign: Path  #: shard 2 of another collection, same group
    hashed: Path  #: shard 1 split by node id hash, same group


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    root = tmp_path_factory.mktemp("split")

    def shard(name: str, *args: str, attempt: int = 2) -> Path:
        env = clean_env(GITHUB_ACTIONS="true", GITHUB_RUN_ID="1", GITHUB_JOB="x",
                        GITHUB_RUN_ATTEMPT=str(attempt))
        checked(run_pytest(*args, f"--track-records={root / name}", "--track-group=split-run",
                           env=env), 0, 1)
        return root / name

    return Split(
        shards=[shard(f"split{i}", SUITE, "--splits=3", f"--group={i}") for i in (1, 2, 3)],
        partial=shard("partial", SUITE, "--splits=3", "--group=2", "-x", attempt=1),
        foreign=shard("foreign", f"{SUITE}/test_qa.py", "--splits=3", "--group=2"),
        hashed=shard("hashed", SUITE, "--track-shard=1/3"),
    )


def test_pytest_split_shards_merge_to_the_unsharded_run_files(
        split: Split, unsharded: Path, tmp_path: Path) -> None:
    manifests = [json.loads((s / "shard.json").read_text()) for s in split.shards]
    assert [(m["index"], m["total"], m["group"], m["attempt"]) for m in manifests] == [
        (i, 3, "split-run", 2) for i in (1, 2, 3)]
    assert {m["source"] for m in manifests} == {"pytest-split --splits/--group"}
    checked(run_merge(*split.shards, "--out", tmp_path / "merged"), 0)
    assert files(tmp_path / "merged") == files(unsharded)


def test_a_rerun_attempt_replaces_its_slot(split: Split, unsharded: Path, tmp_path: Path) -> None:
    assert len(read_records(split.partial)) < len(read_records(split.shards[1]))
    result = merge_shards([split.shards[0], split.partial, split.shards[1], split.shards[2]],
                          tmp_path / "latest")
    assert files(tmp_path / "latest") == files(unsharded)
    assert [s.directory for s in result.superseded] == [split.partial]
    # the partial attempt alone in its slot gives other files: the choice above mattered
    alone = tmp_path / "alone"
    merge_shards([split.shards[0], split.partial, split.shards[2]], alone)
    assert files(alone) != files(unsharded)
    assert json.loads((alone / "manifest.json").read_text())["run_completed"] is False


def test_a_missing_shard_is_named(split: Split, tmp_path: Path) -> None:
    done = checked(run_merge(split.shards[0], split.shards[2], "--out", tmp_path / "m"), 1)
    assert "shard 2/3 of group 'split-run' is missing (given: 1/3, 3/3)" in done.stderr
    assert not (tmp_path / "m").exists()


def test_a_duplicated_shard_is_named(split: Split, tmp_path: Path) -> None:
    copy = tmp_path / "copy-of-3"
    shutil.copytree(split.shards[2], copy)
    with pytest.raises(MergeError) as raised:
        merge_shards([*split.shards, copy], tmp_path / "m")
    assert str(raised.value) == (f"shard 3/3 is given twice with attempt 2: {split.shards[2]} "
                                 f"and {copy}")


def test_a_shard_of_another_collection_is_named(split: Split, tmp_path: Path) -> None:
    with pytest.raises(MergeError) as raised:
        merge_shards([split.shards[0], split.foreign, split.shards[2]], tmp_path / "m")
    message = str(raised.value)
    assert message.startswith(f"shard 2/3 (attempt 2, {split.foreign}) collected other tests")


def test_a_shard_of_another_group_is_named(split: Split, tmp_path: Path) -> None:
    foreign = tmp_path / "other-group"
    shutil.copytree(split.shards[1], foreign)
    manifest = json.loads((foreign / "shard.json").read_text())
    (foreign / "shard.json").write_text(json.dumps({**manifest, "group": "another-run"}))
    with pytest.raises(MergeError) as raised:
        merge_shards([split.shards[0], foreign, split.shards[2]], tmp_path / "m")
    assert str(raised.value) == (f"shard 2/3 (attempt 2, {foreign}) is of group "
                                 "'another-run', the others of 'split-run': a shard of another run")


def test_shards_split_by_different_rules_overlap_and_the_case_is_named(
        split: Split, tmp_path: Path) -> None:
    hashed = set(json.loads((split.hashed / "shard.json").read_text())["selected"])
    others = {r["custom"]["nodeid"] for s in split.shards[1:] for r in read_records(s)}
    assert hashed & others  # computed independently: the hash shard 1 takes some of theirs
    with pytest.raises(MergeError) as raised:
        merge_shards([split.hashed, *split.shards[1:]], tmp_path / "m")
    assert "the shards overlap" in str(raised.value)
    assert f"shard 1/3 (attempt 2, {split.hashed})" in str(raised.value)


def test_a_directory_without_shard_json_is_named(unsharded: Path, split: Split,
                                                 tmp_path: Path) -> None:
    done = checked(run_merge(unsharded, *split.shards[1:], "--out", tmp_path / "m"), 1)
    assert f"{unsharded}: no shard.json: not the records of a shard" in done.stderr


def test_the_gate_on_the_merged_records_gives_the_unsharded_verdict(
        split: Split, tmp_path: Path) -> None:
    """The same baseline and rules: the merge's gate.json is byte for byte the one an
    unsharded session writes, and the exit codes agree (2 from merge, 1 from pytest)."""
    baseline = split.shards[0]  # one shard: its cases pair, the others are new
    rules = ("--track-gate", "*/accuracy:drop<=0", "--track-gate", "regressions<=0")
    session = tmp_path / "session"
    checked(run_pytest(SUITE, f"--track-records={session}", f"--track-baseline={baseline}",
                       *rules, "--track-exit=both"), 1)
    merged, summary = tmp_path / "merged", tmp_path / "summary.md"
    done = run_merge(*split.shards, "--out", merged, "--baseline", baseline,
                     *(r.replace("--track-gate", "--gate") for r in rules),
                     env=clean_env(GITHUB_STEP_SUMMARY=str(summary)))
    verdict = json.loads((merged / "gate.json").read_text("utf-8"))
    assert done.returncode == (0 if verdict["passed"] else 2), done.stdout + done.stderr
    assert (merged / "gate.json").read_bytes() == (session / "gate.json").read_bytes()
    assert verdict["cases"]["counts"]["new"] > 0 and verdict["cases"]["counts"]["common"] > 0
    assert "regressions<=0" in done.stdout
    assert summary.read_text("utf-8").strip() == (merged / "gate.md").read_text("utf-8").strip()


def test_a_bad_gate_rule_or_baseline_exits_1_naming_it(split: Split, tmp_path: Path) -> None:
    bad_rule = checked(run_merge(*split.shards, "--out", tmp_path / "m", "--baseline",
                                 split.shards[0], "--gate", "accuracy>>0.5"), 1)
    assert "--gate" in bad_rule.stderr and "accuracy>>0.5" in bad_rule.stderr
    bad_spec = checked(run_merge(*split.shards, "--out", tmp_path / "n", "--baseline",
                                 "svn:trunk"), 1)
    assert "--baseline" in bad_spec.stderr and "svn:trunk" in bad_spec.stderr