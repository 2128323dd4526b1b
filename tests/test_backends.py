"""End to end: ``pytest --track mlflow|wandb|tensorboard`` (alone with ``local``, or all at
once) gives every backend the structure the local backend shows.

One small eval suite runs under pytester with ``--track local,<backend>``: the local backend
of the same session is the reference, and each backend, read back through its own library's
reader (``MlflowClient``, the ``.wandb`` run file parser, TensorBoard's ``EventAccumulator``),
must hold the same runs and names, statuses, metric histories and final values, params, tags,
notes and artifacts.

Costs: a fresh MLflow sqlite store ~2 s (the embedded-store, all-at-once and Ctrl-C tests
each make one), the ``mlflow server`` 7-10 s (one test uses it; in a single process it is
launched with the module's first test), the first ``wandb.init`` of a process ~0.5 s. The
SDKs are imported up here so that pytester's in-process runs find them loaded instead of
importing (and unloading) them each time.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from local_runs import RunView, SessionView, comparable, only_session
from mlflow_server import MlflowServer, experiment_id, free_port, mlflow_server_fixture
from tensorboard_reader import read_run, run_ids
from test_interrupt import _interrupt as interrupt
from wandb_reader import WandbRunFile, read_runs

from pytest_insidellms.experiment_tracking.local import safe_id
from pytest_insidellms.experiment_tracking.mlflow import param_string
from pytest_insidellms.experiment_tracking.mlflow import ARTIFACT_SOURCE_TAG
from pytest_insidellms.experiment_tracking.tensorboard import (
    STATUS_CODE_TAG,
    STATUS_CODES,
)
from pytest_insidellms.experiment_tracking.wandb import (
    EXIT_CODES,
    PARENT_KEY,
    STEP_METRIC,
)
from pytest_insidellms.experiment_tracking.names import safe_dir_name, wandb_artifact_name as artifact_name

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# After the telemetry switch: MLflow reads it on import.
from mlflow.tracking import MlflowClient

mlflow_server = mlflow_server_fixture("module")

SUITE = {
    # Returned results: plain and parametrized.
    "evals/test_qa": """
        import pytest
        from pytest_insidellms import (ExperimentResult, ModelInfo, ProbeCategory, ProbeResult,
                                       ProbeScore, ResultStatus)

        def result(model, right, wrong):
            items = ([ProbeResult(f"q{i}") for i in range(right)]
                     + [ProbeResult("x", status=ResultStatus.ERROR)] * wrong)
            return ExperimentResult(
                "qa", ModelInfo(model, "acme", f"{model}-1"), "qa", ProbeCategory.LOGIC, items,
                score=ProbeScore(accuracy=right / (right + wrong),
                                 custom_metrics={"bleu": 0.25 * right}))

        @pytest.mark.parametrize("model", ["small", "large"])
        def test_qa(model):
            return result(model, 3 if model == "small" else 5, 1)

        def test_summary():
            return result("base", 2, 2)
    """,
    # The marker over parametrized cases, one of which fails.
    "evals/test_labels": """
        import pytest

        @pytest.mark.experiment(name="labels", model_name="toy", probe_name="labeler",
                                params={"temperature": 0.2})
        @pytest.mark.parametrize("case", range(4))
        def test_label(case):
            assert case != 3
    """,
    # The tracker fixture: metrics at steps, params, an artifact, the session run.
    "evals/sub/test_logged": """
        def test_curve(tracker, tmp_path):
            for step, loss in enumerate([0.9, 0.5, 0.25]):
                tracker.log_metrics({"loss": loss}, step=step)
            tracker.log_params({"optimizer": "adam", "layers": 3})
            path = tmp_path / "predictions.jsonl"
            path.write_text('{"q": 1}\\n')
            tracker.log_artifact(path, name="outputs/predictions.jsonl", type="predictions")
            tracker.session.log_metrics({"suite_score": 0.75})
            tracker.session.log_params({"dataset": "tiny-v1"})
    """,
}
MODULES = {"evals/test_qa.py", "evals/test_labels.py", "evals/sub/test_logged.py"}
LOGGED = "evals/sub/test_logged.py"
FAILING_CASE = "evals/test_labels.py::test_label[3]"
TAGS = ["nightly", "smoke"]
NOTES = "baseline run"
METADATA = ("--track-tags", ",".join(TAGS), "--track-notes", NOTES)
ARTIFACT_TEXT = '{"q": 1}\n'
PROJECT = "insideLLMs"
MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
#: Values that differ between two sessions of the same suite (never between two backends).
TIMING_KEYS = ("duration", "latency")
PER_SESSION_PARAMS = ("pytest_command", "xdist_workers")

#: What the trackers set process-wide with ``os.environ.setdefault`` (and W&B would read).
SDK_VARIABLES = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR",
    "WANDB_CONFIG_DIR",
)


@pytest.fixture(autouse=True)
def _fresh_sdk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each session starts as a user's would: not with W&B pointed at the directories of an
    earlier in-process run. (The telemetry switch stays: this process imported MLflow.)"""
    for name in SDK_VARIABLES:
        monkeypatch.setenv(name, "")  # records the value (or its absence) for the undo
        monkeypatch.delenv(name)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**SUITE)
    return pytester


def run_suite(
    pytester: pytest.Pytester, *args: str, track_dir: str = "experiments", project: str = PROJECT
) -> tuple[pytest.RunResult, SessionView]:
    """Run the suite with tags and notes; return pytest's result and the local reference."""
    result = pytester.runpytest(
        *METADATA, "--track-dir", track_dir, "--track-project", project, *args)
    result.assert_outcomes(passed=7, failed=1)
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    assert "problem(s)" not in output, output  # no backend reported a tracking failure
    local = only_session(pytester.path / track_dir, safe_id(project))
    check_local(local)
    return result, local


def check_local(local: SessionView) -> None:
    """The reference itself is what the suite logged."""
    assert set(local.modules) == MODULES
    assert local.run.status == "failed"
    assert {n: m.status for n, m in local.modules.items()} == {
        "evals/test_qa.py": "finished", "evals/test_labels.py": "failed", LOGGED: "finished"}
    assert local.run.metrics["tests_total"] == 8 and local.run.metrics["tests_failed"] == 1
    assert local.run.metrics["suite_score"] == 0.75 and local.run.params["dataset"] == "tiny-v1"
    qa = local.modules["evals/test_qa.py"].metrics
    assert qa["test_qa/small/success_rate"] == 0.75 and qa["test_qa/large/total_count"] == 6
    assert qa["test_summary/bleu"] == 0.5
    labels = local.modules["evals/test_labels.py"]
    assert labels.metrics["labels/accuracy"] == 0.75 and labels.metrics["labels/total_count"] == 4
    assert labels.params["labels/temperature"] == 0.2
    logged = local.modules[LOGGED]
    assert logged.history("test_curve/loss") == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert logged.params == {"test_curve/optimizer": "adam", "test_curve/layers": 3}
    assert [a["name"] for a in logged.data["artifacts"]] == ["outputs/predictions.jsonl"]
    for run in (local.run, *local.modules.values()):
        assert run.data["metadata"]["tags"] == TAGS and run.data["metadata"]["notes"] == NOTES


def pairs(local: SessionView, found: dict[str, Any]) -> Iterator[tuple[RunView, Any]]:
    """Each local run with the backend's run of the same name."""
    assert set(found) == {local.run.name, *MODULES}, sorted(found)
    yield local.run, found[local.run.name]
    for name, module in sorted(local.modules.items()):
        yield module, found[name]


def without_timing(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not any(t in k for t in TIMING_KEYS)}


def problem_line(result: pytest.RunResult, backend: str) -> str:
    """The summary's problem line of ``backend`` (beside its location line)."""
    lines = [line.strip() for line in result.stdout.lines
             if line.startswith(f"  {backend}: ") and " problem(s), first: " in line]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def summary_line_of_location(result: pytest.RunResult, backend: str) -> str:
    lines = [line.strip() for line in result.stdout.lines
             if line.startswith(f"  {backend}: ") and " problem(s), first: " not in line]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def summary_line(result: pytest.RunResult, backend: str) -> str:
    lines = [line.strip() for line in result.stdout.lines if line.startswith(f"  {backend}: ")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


# -- MLflow -------------------------------------------------------------------------------------


def mlflow_runs(
    client: MlflowClient, local: SessionView, experiment: str = PROJECT
) -> dict[str, Any]:
    """Assert the experiment mirrors the local session; return its runs by name."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    assert len(by_name) == len(runs), "two MLflow runs share a name"
    session_id = by_name[local.run.name].info.run_id
    for reference, run in pairs(local, by_name):
        run_id = run.info.run_id
        if reference is local.run:
            assert "mlflow.parentRunId" not in run.data.tags
        else:
            assert run.data.tags["mlflow.parentRunId"] == session_id
        assert run.info.status == MLFLOW_STATUS[reference.status], reference.name
        assert run.data.metrics == reference.metrics, reference.name
        for key in reference.metrics:
            history = [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
            assert sorted(history) == sorted(reference.history(key)), (reference.name, key)
        assert run.data.params == {k: param_string(v) for k, v in reference.params.items()}
        assert {tag: run.data.tags.get(tag) for tag in TAGS} == dict.fromkeys(TAGS, "true")
        assert run.data.tags["mlflow.note.content"] == NOTES
        artifacts = [a["name"] for a in reference.data["artifacts"]]
        listed = [f.path for f in client.list_artifacts(run_id, "outputs")] if artifacts else []
        assert listed == artifacts, reference.name
    logged_id = by_name[LOGGED].info.run_id
    downloaded = client.download_artifacts(logged_id, "outputs/predictions.jsonl")
    assert Path(downloaded).read_text() == ARTIFACT_TEXT
    return by_name


def mlflow_comparable(runs: dict[str, Any], session_name: str) -> dict[str, Any]:
    """An MLflow session as two sessions of the same suite must agree on it."""
    def strip(run: Any) -> dict[str, Any]:
        params = {k: v for k, v in run.data.params.items() if k not in PER_SESSION_PARAMS}
        # An artifact's source tag holds the test's tmp_path, which differs per worker.
        tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")
                and not k.startswith(ARTIFACT_SOURCE_TAG)}
        return {"status": run.info.status, "metrics": without_timing(run.data.metrics),
                "params": params, "tags": tags}

    return {("session" if name == session_name else name): strip(run) for name, run in runs.items()}


def embedded_uri(track_dir: Path) -> str:
    return f"sqlite:///{(track_dir / 'mlflow.db').resolve().as_posix()}"


def test_mlflow_embedded_store_mirrors_the_local_session_and_keeps_no_spool(
    suite: pytest.Pytester,
) -> None:
    result, local = run_suite(suite, "--track", "local,mlflow")

    track_dir = suite.path / "experiments"
    client = MlflowClient(tracking_uri=embedded_uri(track_dir))
    mlflow_runs(client, local)
    # artifacts beside the database, not in an mlruns/ of the working directory
    assert list((track_dir / "mlartifacts").rglob("predictions.jsonl"))
    assert not (suite.path / "mlruns").exists()
    assert summary_line(result, "mlflow") == (
        f"mlflow: mlflow ui --backend-store-uri {shlex.quote(embedded_uri(track_dir))}")
    assert not (track_dir / "spool").exists(), sorted((track_dir / "spool").rglob("*"))


# -- W&B ------------------------------------------------------------------------------------------


def wandb_runs(track_dir: Path, local: SessionView) -> dict[str, WandbRunFile]:
    """Assert the offline run files mirror the local session; return them by display name."""
    files = read_runs(track_dir / "wandb")
    by_name = {run.display_name: run for run in files}
    assert len(by_name) == len(files), "two W&B runs share a display name"
    session = by_name[local.run.name]
    for reference, run in pairs(local, by_name):
        assert run.group == session.run_id, reference.name
        assert run.project == PROJECT
        config = dict(run.config)
        if reference is local.run:
            assert run.job_type == "session"
        else:
            assert run.job_type == "module"
            assert config.pop(PARENT_KEY) == session.run_id
        assert config == reference.params, reference.name
        assert run.tags == TAGS and run.notes == NOTES
        for key, value in reference.metrics.items():
            logged = [(row[STEP_METRIC], row[key]) for row in run.history if key in row]
            assert logged == reference.history(key), (reference.name, key)
            assert run.summary[key] == value, (reference.name, key)
        assert run.summary["status"] == reference.status
        assert run.exit_code == EXIT_CODES[reference.status], reference.name
        # metadata: the path the test logged (as local's original_path), not a staged copy.
        expected = [{"name": artifact_name(a["name"]), "type": a["type"],
                     "files": [Path(a["name"]).name],
                     "metadata": {"source": a["original_path"], "name": a["name"]}}
                    for a in reference.data["artifacts"]]
        assert run.artifacts == expected, reference.name
    return by_name


def test_wandb_offline_by_default_mirrors_the_local_session(suite: pytest.Pytester) -> None:
    result, local = run_suite(suite, "--track", "wandb", "--track", "local")

    track_dir = suite.path / "experiments"
    runs = wandb_runs(track_dir, local)
    session = runs[local.run.name]
    run_dir = session.path.parent
    assert run_dir.parent == track_dir / "wandb"
    assert run_dir.name.startswith("offline-run-") and run_dir.name.endswith(session.run_id)
    # One command uploads the whole session (issue 12 item 1): the session run's directory
    # first, then every module run's, and nothing else.
    line = summary_line(result, "wandb")
    prefix = f"wandb: {run_dir} (upload with: wandb sync "
    assert line.startswith(prefix) and line.endswith(")")
    named = shlex.split(line[len(prefix):-1])
    assert named[0] == str(run_dir)
    assert sorted(named) == sorted(str(run.path.parent) for run in runs.values())
    assert not (track_dir / "spool").exists()


# -- TensorBoard ----------------------------------------------------------------------------------


def float32(value: float) -> float:
    return float(np.float32(value))


def hparam(value: Any) -> Any:
    """How a param reads back from TensorBoard's hparams (numbers as float64)."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return json.dumps(value)


def tensorboard_runs(track_dir: Path, local: SessionView, project: str = PROJECT) -> dict[str, Any]:
    """Assert the event files mirror the local session; return the runs by name."""
    log_dir = track_dir / "tensorboard" / safe_id(project)
    session_dir = safe_dir_name(local.run.name)
    dirs = {local.run.name: session_dir} | {m: f"{session_dir}/{safe_dir_name(m)}" for m in MODULES}
    assert run_ids(log_dir) == sorted(dirs.values())  # hparams live in each run's own directory
    assert dirs[LOGGED] == f"{session_dir}/evals_sub_test_logged.py"
    found = {name: read_run(log_dir / directory) for name, directory in dirs.items()}
    for reference, run in pairs(local, found):
        assert run.text("run/name") == reference.name
        assert run.text("run/project") == project
        assert run.text("run/tags") == "\n".join(f"- {t}" for t in TAGS)
        assert run.text("run/notes") == NOTES
        assert run.text("run/status") == reference.status
        scalars = {k: v for k, v in run.scalars.items() if k != STATUS_CODE_TAG}
        assert scalars == {key: [(step, float32(value)) for step, value in reference.history(key)]
                           for key in reference.metrics}, reference.name
        code = STATUS_CODES[reference.status]
        assert [value for _, value in run.scalars[STATUS_CODE_TAG]] == [code]
        assert run.hparams == {k: hparam(v) for k, v in reference.params.items()}, reference.name
        assert run.hparam_metrics == {
            **{k: float32(v) for k, v in reference.metrics.items()}, STATUS_CODE_TAG: code}
        params_text = "\n".join(text for _, text in run.texts.get("params", []))
        for key, value in reference.params.items():
            shown = value if isinstance(value, str) else json.dumps(value)
            assert f"| {key} | {shown} |" in params_text, (reference.name, key)
        artifacts = "\n".join(text for _, text in run.texts.get("artifacts", []))
        for artifact in reference.data["artifacts"]:
            assert f"| {artifact['name']} | {artifact['type']} |" in artifacts
            assert (run.path / "artifacts" / artifact["name"]).read_text() == ARTIFACT_TEXT
    return found


def test_tensorboard_run_directories_mirror_the_local_session(suite: pytest.Pytester) -> None:
    result, local = run_suite(suite, "--track", "local,tensorboard", project="nightly evals")

    track_dir = suite.path / "experiments"
    tensorboard_runs(track_dir, local, "nightly evals")
    log_dir = track_dir / "tensorboard" / "nightly_evals"
    assert summary_line(result, "tensorboard") == (
        f"tensorboard: tensorboard --logdir {shlex.quote(str(log_dir))}")


# -- all at once ----------------------------------------------------------------------------------


def test_all_backends_at_once_each_get_every_module_with_the_same_values(
    suite: pytest.Pytester,
) -> None:
    result, local = run_suite(suite, "--track", "local,mlflow,wandb,tensorboard")

    # Each helper compares its backend with the local runs: names, statuses, histories, final
    # values, params, tags, notes, artifacts. So the backends agree with one another too.
    track_dir = suite.path / "experiments"
    mlflow_runs(MlflowClient(tracking_uri=embedded_uri(track_dir)), local)
    wandb_runs(track_dir, local)
    tensorboard_runs(track_dir, local)
    for backend in ("local", "mlflow", "wandb", "tensorboard"):
        summary_line(result, backend)
    assert not (track_dir / "spool").exists()


# -- a backend that cannot start ------------------------------------------------------------------


@pytest.fixture
def dead_mlflow(monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI pointing at a port nothing listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    return url


#: Our warning category, for ``-W``: the inner ini turns every warning into an error.
OUR_WARNING = "pytest_insidellms.plugin.InsideLLMsTrackingWarning"


@pytest.mark.parametrize("our_warnings", ["shown", "errors"])
def test_a_backend_that_cannot_start_changes_no_outcome_and_local_is_complete(
    suite: pytest.Pytester, dead_mlflow: str, our_warnings: str
) -> None:
    shown = ["-W", f"default::{OUR_WARNING}"] if our_warnings == "shown" else []
    result = suite.runpytest("--track", "local,mlflow", *METADATA, *shown)

    result.assert_outcomes(passed=7, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    local = only_session(suite.path / "experiments")
    check_local(local)
    # A server down at the start is an outage like any other: every call is spooled, and
    # the summary says how to replay it.
    problem = f"TrackingError: MLflow at {dead_mlflow}: cannot open experiment 'insideLLMs'"
    line = problem_line(result, "mlflow")
    assert line.startswith(f"mlflow: 1 problem(s), first: mlflow failed ({problem}")
    spool = suite.path / "experiments" / "spool" / "mlflow" / "insideLLMs"
    assert line.endswith(f"replay with: python -m pytest_insidellms sync {spool} --to mlflow")
    assert summary_line_of_location(result, "mlflow") == f"mlflow: {spool / local.run.name}"
    assert (spool / local.run.name / "journal.jsonl").is_file()
    warning = f"InsideLLMsTrackingWarning: mlflow failed: TrackingError('MLflow at {dead_mlflow}"
    # Under -W error the warning would crash pytest: the summary line is all that is left.
    assert (warning in output) is (our_warnings == "shown")


def test_track_strict_makes_a_backend_that_cannot_start_exit_with_a_usage_error(
    suite: pytest.Pytester, dead_mlflow: str
) -> None:
    result = suite.runpytest(
        "--track", "local,mlflow", "--track-strict", "--deselect", FAILING_CASE)

    result.assert_outcomes(passed=7)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert problem_line(result, "mlflow").startswith(
        "mlflow: 1 problem(s), first: mlflow failed (TrackingError")
    local = only_session(suite.path / "experiments")
    assert set(local.modules) == MODULES
    assert {run.status for run in (local.run, *local.modules.values())} == {"finished"}


def test_track_strict_fails_the_session_also_when_its_only_backend_cannot_start(
    suite: pytest.Pytester, dead_mlflow: str
) -> None:
    result = suite.runpytest("--track", "mlflow", "--track-strict", "--deselect", FAILING_CASE)
    result.assert_outcomes(passed=7)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "replay with: python -m pytest_insidellms sync" in problem_line(result, "mlflow")


# -- Ctrl-C ---------------------------------------------------------------------------------------


def test_ctrl_c_ends_every_backends_session_and_module_runs_as_killed(
    pytester: pytest.Pytester,
) -> None:
    # test_interrupt's slow suite, in a subprocess that gets SIGINT once its last test hangs
    returncode = interrupt(pytester, signal.SIGINT, "--track", "mlflow,wandb,tensorboard")
    assert returncode == pytest.ExitCode.INTERRUPTED

    track_dir = pytester.path / "experiments"
    local = only_session(track_dir)
    module = "test_slow.py"
    names = [local.run.name, module]
    assert local.run.status == local.modules[module].status == "killed"
    assert local.modules[module].metrics["tests_passed"] == 3

    client = MlflowClient(tracking_uri=embedded_uri(track_dir))
    mlflow = {r.info.run_name: r for r in client.search_runs(
        [experiment_id(client, PROJECT)])}
    assert sorted(mlflow) == sorted(names)
    assert {r.info.status for r in mlflow.values()} == {"KILLED"}
    assert mlflow[module].data.metrics["tests_passed"] == 3
    assert mlflow[module].data.metrics["test_done/2/done_2"] == 2

    wandb = {r.display_name: r for r in read_runs(track_dir / "wandb")}
    assert sorted(wandb) == sorted(names)
    assert {(r.exit_code, r.summary["status"]) for r in wandb.values()} == {(255, "killed")}
    assert wandb[module].summary["tests_passed"] == 3

    session_dir = track_dir / "tensorboard" / PROJECT / safe_dir_name(local.run.name)
    for path in (session_dir, session_dir / safe_dir_name(module)):
        board = read_run(path)
        assert board.text("run/status") == "killed"
        assert board.scalars[STATUS_CODE_TAG][-1][1] == STATUS_CODES["killed"]
    assert read_run(session_dir / module).scalars["tests_passed"][-1][1] == 3


# -- a real mlflow server -------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _start_server_early(request: pytest.FixtureRequest) -> None:
    """In a single process, launch the server with the first test of this module, so that its
    start-up overlaps the tests before the one that needs it. Not under xdist: every worker
    that runs a test of this module would launch one."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        return
    if any(getattr(item, "module", None) is request.module and "mlflow_server" in getattr(
            item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("mlflow_server")


def test_mlflow_server_mirrors_the_local_session_and_two_workers_give_the_same_runs(
    suite: pytest.Pytester, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = mlflow_server.wait_ready()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    client = MlflowClient(tracking_uri=url)

    single, single_local = run_suite(
        suite, "--track", "local,mlflow", track_dir="single", project="single")
    single_runs = mlflow_runs(client, single_local, "single")
    experiment = experiment_id(client, "single")
    session_id = single_runs[single_local.run.name].info.run_id
    assert summary_line(single, "mlflow") == (
        f"mlflow: {url}/#/experiments/{experiment}/runs/{session_id}")
    assert not (suite.path / "single" / "mlflow.db").exists()  # the server's store, not ours

    _, workers_local = run_suite(
        suite, "--track", "local,mlflow", "-n", "2", track_dir="workers", project="workers")
    workers_runs = mlflow_runs(client, workers_local, "workers")
    assert comparable(workers_local) == comparable(single_local)
    assert mlflow_comparable(workers_runs, workers_local.run.name) == mlflow_comparable(
        single_runs, single_local.run.name)
    assert workers_runs[workers_local.run.name].data.params["xdist_workers"] == "2"
    assert not (suite.path / "workers" / "spool").exists()


def test_credentials_in_the_tracking_uri_are_masked_in_all_the_plugin_prints(
    suite: pytest.Pytester, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = mlflow_server.wait_ready()
    secret_url = url.replace("http://", "http://ci-user:s3cret-pat-value@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret_url)
    result, _ = run_suite(suite, "--track", "local,mlflow", "--junitxml=junit.xml",
                          "--track-records=records", project="masked")
    shown = result.stdout.str() + result.stderr.str()
    junit = (suite.path / "junit.xml").read_text()
    assert "s3cret-pat-value" not in shown and "s3cret-pat-value" not in junit
    tracking = (suite.path / "records" / "tracking.json").read_text()
    assert "s3cret-pat-value" not in tracking and "ci-user:***REDACTED***@" in tracking
    assert summary_line(result, "mlflow").startswith("mlflow: http://ci-user:***REDACTED***@")
    assert "insidellms_mlflow" in junit and "***REDACTED***" in junit


def test_credentials_of_an_unreachable_server_are_masked_in_warnings_and_summary(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI",
                       f"http://ci-user:s3cret-pat-value@127.0.0.1:{free_port()}")
    result = suite.runpytest("--track", "local,mlflow", *METADATA,
                             "-W", f"default::{OUR_WARNING}")
    result.assert_outcomes(passed=7, failed=1)
    shown = result.stdout.str() + result.stderr.str()
    assert "InsideLLMsTrackingWarning: mlflow failed" in shown
    assert problem_line(result, "mlflow").startswith("mlflow: 1 problem(s), first: ")
    assert "ci-user:***REDACTED***@127.0.0.1" in shown
    assert "s3cret-pat-value" not in shown
