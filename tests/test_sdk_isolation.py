"""Users' own W&B and MLflow code under a tracked ``-n 0`` session (issue 11, items 20-21).

Real SDKs: W&B offline (run files read back with :mod:`wandb_reader`), MLflow on sqlite
files under the test's tmp dir (read back with ``MlflowClient``). Each session runs in a
subprocess, so the process starts as a user's would (no SDK imported, no W&B service).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from wandb_reader import read_runs

USER_WANDB = """
import wandb

def test_user_run(tmp_path):
    assert wandb.run is None
    run = wandb.init(project="user-project", mode="offline", dir=r"{user_dir}",
                     settings=wandb.Settings(x_disable_stats=True, console="off"))
    assert wandb.run is run and run.project == "user-project"
    wandb.log({{"user_metric": 7.0}})
    wandb.finish()
    assert wandb.run is None

def test_after():
    assert wandb.run is None
"""

USER_MLFLOW = """
import mlflow
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT, MLFLOW_HTTP_REQUEST_MAX_RETRIES

def test_user_run():
    assert mlflow.active_run() is None
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 33  # the user's own setting
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == MLFLOW_HTTP_REQUEST_MAX_RETRIES.default
    mlflow.set_tracking_uri(r"{user_uri}")
    mlflow.set_experiment("user-experiment")
    with mlflow.start_run(run_name="user-run"):
        mlflow.log_metric("user_metric", 7.0)
    assert mlflow.active_run() is None

def test_after():
    assert mlflow.active_run() is None
"""

DUMP_ENV = """
import json, os

def test_env():
    with open(r"{out}", "w") as f:
        json.dump(dict(os.environ), f)
"""


def test_plain_wandb_calls_get_their_own_run_and_leave_the_plugins_alone(
    pytester: pytest.Pytester,
) -> None:
    user_dir = pytester.path / "user_wandb"
    user_dir.mkdir()
    pytester.makepyfile(test_user=USER_WANDB.format(user_dir=user_dir))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "0", "--track", "wandb", "--track-dir", "tracked")
    result.assert_outcomes(passed=2)

    user_runs = read_runs(user_dir / "wandb")
    assert [r.project for r in user_runs] == ["user-project"]
    assert user_runs[0].values("user_metric") == [7.0]
    assert user_runs[0].exit_code == 0

    plugin_runs = read_runs(pytester.path / "tracked" / "wandb")
    assert {r.job_type for r in plugin_runs} == {"session", "module"}
    for run in plugin_runs:
        assert run.project != "user-project"
        assert not run.values("user_metric"), f"the user's metric landed in {run.display_name}"
        assert run.exit_code == 0 and run.summary.get("status") == "finished"
    module = next(r for r in plugin_runs if r.job_type == "module")
    assert module.summary.get("tests_passed") == 2, module.summary


def test_mlflow_fluent_calls_go_to_the_users_store_and_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    user_uri = f"sqlite:///{(pytester.path / 'user.db').as_posix()}"
    pytester.makepyfile(test_user=USER_MLFLOW.format(user_uri=user_uri))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "0", "--track", "mlflow", "--track-dir", "tracked",
        "-W", "ignore::DeprecationWarning")  # SQLAlchemy 2.1's noload, in the user's sqlite
    result.assert_outcomes(passed=2)

    user = MlflowClient(tracking_uri=user_uri)
    experiment = user.get_experiment_by_name("user-experiment")
    assert experiment is not None
    runs = user.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == ["user-run"]
    assert runs[0].data.metrics == {"user_metric": 7.0}

    plugin = MlflowClient(
        tracking_uri=f"sqlite:///{(pytester.path / 'tracked' / 'mlflow.db').as_posix()}")
    experiments = [e for e in plugin.search_experiments() if e.name != "Default"]
    assert "user-experiment" not in {e.name for e in experiments}
    plugin_runs = plugin.search_runs([e.experiment_id for e in experiments])
    assert len(plugin_runs) == 2  # the session run and the module run
    for run in plugin_runs:
        assert "user_metric" not in run.data.metrics
        assert run.info.status == "FINISHED"


def _environment_seen(pytester: pytest.Pytester, name: str, *args: str) -> dict[str, str]:
    out = pytester.path / f"{name}.json"
    pytester.makepyfile(**{f"test_{name}": DUMP_ENV.format(out=out)})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "0", f"test_{name}.py", *args)
    result.assert_outcomes(passed=1)
    seen: dict[str, str] = json.loads(out.read_text())
    return {k: v for k, v in seen.items() if not k.startswith("PYTEST_")}


def test_tests_see_the_environment_they_see_untracked(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "WANDB_MODE",
                 "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_SERVICE",
                 "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI",
                 "_MLFLOW_TELEMETRY_SESSION_ID"):  # this process's mlflow import set it
        monkeypatch.delenv(name, raising=False)
    untracked = _environment_seen(pytester, "plain")
    tracked = _environment_seen(
        pytester, "tracked", "--track", "mlflow,wandb,local", "--track-dir", "tracked")
    assert (pytester.path / "tracked" / "mlflow.db").is_file()
    assert read_runs(pytester.path / "tracked" / "wandb"), "W&B tracked nothing"
    added = {k: tracked[k] for k in tracked.keys() - untracked.keys()}
    removed = sorted(untracked.keys() - tracked.keys())
    changed = sorted(k for k in tracked.keys() & untracked.keys() if tracked[k] != untracked[k])
    assert (added, removed, changed) == ({}, [], [])


def test_the_plugin_keeps_its_mlflow_request_bounds_without_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bounds hold for the tracker's own calls (inside the scope), nowhere else."""
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    from mlflow import environment_variables

    from pytest_insidellms.experiment_tracking.sdk_env import import_mlflow, mlflow_scope

    import_mlflow()
    variable: Any = environment_variables.MLFLOW_HTTP_REQUEST_MAX_RETRIES
    outside = variable.get()
    with mlflow_scope():
        inside = variable.get()
    assert (outside, inside) == (variable.default, 1)
