"""The examples run as documented and produce the runs the documentation describes.

``examples/evals`` runs in a subprocess from the repository root under each backend with its
offline default (local files, TensorBoard logs, an embedded MLflow sqlite store, W&B offline
files) and a clean environment; the runs are read back through each backend's own reader and
checked against numbers that follow from the example's datasets. The Python API script and
the CI recipes are checked too, so the docs cannot rot.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_runs import RunView, only_session
from tensorboard_reader import read_run, run_ids

from pytest_insidellms import LocalFileTracker, TrackingConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EVALS = EXAMPLES / "evals"
BACKENDS = ["local", "tensorboard", "mlflow", "wandb"]
QA, SENTIMENT, FIXTURE, ASYNC = (f"examples/evals/{name}" for name in (
    "test_qa.py", "test_sentiment.py", "test_tracker_fixture.py", "test_async.py"))
#: What pytest reports for the example suite: five of its cases fail on purpose.
OUTCOMES = "5 failed, 24 passed, 1 skipped"
#: The tracker fixture names what a test logs after the test.
SWEEP = "test_neutral_band_calibration/"
#: Metrics whose whole history the checks look at.
HISTORY_KEYS = (f"{SWEEP}calibration/accuracy",)


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-6)  # TensorBoard stores float32


def clean_env() -> dict[str, str]:
    """This environment without settings that would change what the examples do."""
    prefixes = ("INSIDELLMS_", "MLFLOW_", "WANDB_", "PYTEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run_pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # No cache provider: the example's planned failures must not land in the repository's
    # .pytest_cache, where a later `pytest --lf` would pick them up.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=180, check=False,
    )


# -- one view of a run, whatever the backend ------------------------------------------------


@dataclass
class TrackedRun:
    name: str
    status: str
    metrics: dict[str, float]  #: the last value of each metric
    params: dict[str, Any]  #: as the backend stores them (MLflow: strings)
    history: dict[str, list[tuple[int, float]]]  #: HISTORY_KEYS only
    artifacts: dict[str, str | None]  #: name -> text, None where only the name is readable


@dataclass
class Tracked:
    backend: str
    process: subprocess.CompletedProcess[str]
    session: TrackedRun
    modules: dict[str, TrackedRun]


Reader = Callable[[Path], tuple[TrackedRun, dict[str, TrackedRun]]]


def read_local(track_dir: Path) -> tuple[TrackedRun, dict[str, TrackedRun]]:
    def convert(view: RunView) -> TrackedRun:
        return TrackedRun(
            view.name, view.status, view.metrics, view.params,
            {key: view.history(key) for key in HISTORY_KEYS},
            {a["name"]: Path(a["path"]).read_text() for a in view.data["artifacts"]},
        )

    session = only_session(track_dir)
    return convert(session.run), {name: convert(v) for name, v in session.modules.items()}


def read_tensorboard(track_dir: Path) -> tuple[TrackedRun, dict[str, TrackedRun]]:
    log_dir = track_dir / "tensorboard" / "insideLLMs"
    (session_id,) = [run for run in run_ids(log_dir) if "/" not in run]

    def convert(path: Path) -> TrackedRun:
        data = read_run(path)
        artifacts = path / "artifacts"
        return TrackedRun(
            data.text("run/name"), data.text("run/status"),
            {tag: values[-1][1] for tag, values in data.scalars.items()
             if not tag.startswith("run/")},
            data.hparams or {},
            {key: data.scalars.get(key, []) for key in HISTORY_KEYS},
            {f.relative_to(artifacts).as_posix(): f.read_text()
             for f in artifacts.rglob("*") if f.is_file()},
        )

    children = [log_dir / run for run in run_ids(log_dir)
                if run.count("/") == 1 and not run.endswith("/hparams")]
    modules = [convert(path) for path in children]
    return convert(log_dir / session_id), {run.name: run for run in modules}


def read_mlflow(track_dir: Path) -> tuple[TrackedRun, dict[str, TrackedRun]]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # read on import
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{track_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("insideLLMs")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])

    def convert(run: Any) -> TrackedRun:
        run_id = run.info.run_id
        history = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                   for key in HISTORY_KEYS}
        artifacts: dict[str, str | None] = {}
        for info in client.list_artifacts(run_id):
            with tempfile.TemporaryDirectory() as scratch:
                local = client.download_artifacts(run_id, info.path, scratch)
                artifacts[info.path] = Path(local).read_text()
        return TrackedRun(run.info.run_name, run.info.status.lower(), dict(run.data.metrics),
                          dict(run.data.params), history, artifacts)

    (root,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == root.info.run_id]
    return convert(root), {r.info.run_name: convert(r) for r in children}


def read_wandb(track_dir: Path) -> tuple[TrackedRun, dict[str, TrackedRun]]:
    from wandb_reader import WandbRunFile, read_runs

    from pytest_insidellms.experiment_tracking.wandb import EXIT_CODES, PARENT_KEY, STEP_METRIC

    def convert(run: WandbRunFile) -> TrackedRun:
        status = run.summary["status"]
        assert run.exit_code == EXIT_CODES[status]  # what W&B's UI shows
        metrics = {key: float(value) for key, value in run.summary.items()
                   if isinstance(value, (int, float)) and not key.startswith("_")
                   and key != STEP_METRIC}
        history = {key: [(row[STEP_METRIC], row[key]) for row in run.history if key in row]
                   for key in HISTORY_KEYS}
        params = {key: value for key, value in run.config.items() if key != PARENT_KEY}
        return TrackedRun(run.display_name, status, metrics, params, history,
                          dict.fromkeys(a["name"] for a in run.artifacts))

    runs = read_runs(track_dir)
    (root,) = [r for r in runs if r.job_type == "session"]
    children = [r for r in runs if r.config.get(PARENT_KEY) == root.run_id]
    assert len(children) == len(runs) - 1
    return convert(root), {r.display_name: convert(r) for r in children}


READERS: dict[str, Reader] = {
    "local": read_local, "tensorboard": read_tensorboard, "mlflow": read_mlflow,
    "wandb": read_wandb,
}


@pytest.fixture(scope="module", params=BACKENDS)
def tracked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """The example suite run as its README says, under one backend, and its runs."""
    backend: str = request.param
    # Under xdist every worker would run the suite for every backend it has tests of; the
    # workers share their base temp directory's parent, so the first one runs it for all.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if hasattr(request.config, "workerinput") else base
    track_dir = shared / f"evals-{backend}"
    process = run_once(track_dir, lambda: run_pytest(
        "--track", backend, f"--track-dir={track_dir}", "examples/evals"))
    assert OUTCOMES in process.stdout, process.stdout + process.stderr
    session, modules = READERS[backend](track_dir)
    return Tracked(backend, process, session, modules)


def run_once(directory: Path, run: Callable[[], subprocess.CompletedProcess[str]],
             ) -> subprocess.CompletedProcess[str]:
    """``run()`` once for everyone who asks: whoever creates ``directory`` runs it and leaves
    the outcome there; the others wait for it."""
    outcome = directory.parent / f"{directory.name}.json"
    try:
        directory.mkdir()
    except FileExistsError:
        deadline = time.monotonic() + 300
        while not outcome.exists():
            assert time.monotonic() < deadline, f"no {outcome} after 300 s"
            time.sleep(0.1)
        done = json.loads(outcome.read_text())
        assert "error" not in done, done.get("error")
        return subprocess.CompletedProcess(done["args"], done["returncode"], done["stdout"],
                                           done["stderr"])
    try:
        process = run()
    except BaseException as exc:
        write_json(outcome, {"error": repr(exc)})
        raise
    write_json(outcome, {"args": process.args, "returncode": process.returncode,
                         "stdout": process.stdout, "stderr": process.stderr})
    return process


def write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)  # readers see all of it or nothing


# -- the eval suite under each backend --------------------------------------------------------


def test_suite_fails_exactly_its_planned_cases_without_warnings(tracked: Tracked) -> None:
    out = tracked.process.stdout
    assert tracked.process.returncode == 1
    assert out.count("FAILED examples/evals/test_sentiment.py::") == 5
    assert "warning" not in out.lower()
    assert "insidellms tracking" in out and "5 result(s) logged, 30 test(s) tracked" in out


def test_one_session_run_with_a_run_per_module_failed_where_a_case_failed(
    tracked: Tracked,
) -> None:
    assert tracked.session.status == "failed"
    assert {name: run.status for name, run in tracked.modules.items()} == {
        QA: "finished", SENTIMENT: "failed", FIXTURE: "finished", ASYNC: "finished"}


def test_outcome_counts_on_the_session_and_module_runs(tracked: Tracked) -> None:
    assert_metrics(tracked.session, tests_total=30, tests_passed=24, tests_failed=5,
                   tests_skipped=1, tests_errors=0, pass_rate=24 / 29)
    assert_metrics(tracked.modules[SENTIMENT], tests_total=23, tests_passed=17, tests_failed=5,
                   tests_skipped=1)
    assert_metrics(tracked.modules[QA], tests_total=4, tests_passed=4, pass_rate=1.0)


def test_marker_cases_become_one_result_per_experiment(tracked: Tracked) -> None:
    module = tracked.modules[SENTIMENT]
    # 17 dataset lines: 13 right, 3 wrong (negation, sarcasm), 1 French line skipped.
    assert_metrics(module, **{"sentiment/total_count": 17, "sentiment/success_count": 13,
                              "sentiment/error_count": 3, "sentiment/skipped_count": 1,
                              "sentiment/accuracy": 13 / 16})
    # 2 templates x 3 names; "Joy" fails both.
    assert_metrics(module, **{"name_swap/total_count": 6, "name_swap/success_count": 4,
                              "name_swap/error_count": 2, "name_swap/accuracy": 4 / 6})
    assert module.metrics["sentiment/mean_latency_ms"] >= 0
    assert_params(module, **{"sentiment/probe_category": "custom",
                             "name_swap/probe_category": "bias",
                             "sentiment/model_name": "keyword-sentiment",
                             "sentiment/dataset": "sentiment.jsonl",
                             "name_swap/reference": "The team"})


def test_returned_results_are_logged_per_model_variant(tracked: Tracked) -> None:
    module = tracked.modules[QA]
    for variant, accuracy, abstain_rate in (("exact-v1", 7 / 16, 8 / 16),
                                            ("overlap-v2", 12 / 16, 2 / 16)):
        prefix = f"test_qa_accuracy/{variant}/"
        assert_metrics(module, **{f"{prefix}total_count": 16, f"{prefix}success_count": 15,
                                  f"{prefix}error_count": 1, f"{prefix}accuracy": accuracy,
                                  f"{prefix}abstain_rate": abstain_rate,
                                  f"{prefix}error_rate": 1 / 16})
        assert module.metrics[f"{prefix}duration_seconds"] >= 0
        assert_params(module, **{f"{prefix}model_name": f"toy-qa-{variant}",
                                 f"{prefix}probe_category": "knowledge",
                                 f"{prefix}experiment_id": f"closed-book-qa/{variant}"})


def test_the_async_tests_result_is_logged(tracked: Tracked) -> None:
    prefix = "test_qa_under_concurrent_requests/"
    assert_metrics(tracked.modules[ASYNC], **{f"{prefix}accuracy": 12 / 16,
                                              f"{prefix}total_count": 16,
                                              f"{prefix}concurrency": 4})
    assert_params(tracked.modules[ASYNC], **{f"{prefix}model_name": "toy-qa-overlap-v2"})


def test_fixture_logs_the_sweep_its_settings_and_the_confusion_matrix(tracked: Tracked) -> None:
    module = tracked.modules[FIXTURE]
    sweep = [0.75, 0.75, 0.8125, 0.75, 0.75, 0.25]
    assert module.history[f"{SWEEP}calibration/accuracy"] == [
        (step, approx(value)) for step, value in enumerate(sweep)]
    assert_metrics(module, **{f"{SWEEP}calibration/best_band": 0.4,
                              f"{SWEEP}calibration/best_accuracy": 0.8125})
    assert_params(module, **{f"{SWEEP}sweep": "neutral_band"})
    assert list(module.artifacts) == ["confusion_matrix.json"]
    text = module.artifacts["confusion_matrix.json"]
    if text is not None:
        matrix = json.loads(text)["matrix"]
        assert matrix["positive"] == {"negative": 1, "neutral": 0, "positive": 5}
        assert sum(sum(row.values()) for row in matrix.values()) == 16


def test_the_session_run_fingerprints_the_datasets(tracked: Tracked) -> None:
    for path in sorted((EVALS / "data").glob("*.jsonl")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert_params(tracked.session, **{f"dataset_sha256/{path.name}": digest})
    assert_params(tracked.session, rootdir=str(ROOT))


def assert_metrics(run: TrackedRun, **expected: float) -> None:
    assert {k: run.metrics.get(k) for k in expected} == {k: approx(v) for k, v in expected.items()}


def assert_params(run: TrackedRun, **expected: str) -> None:
    assert {k: run.params.get(k) for k in expected} == expected


def test_suite_runs_from_inside_its_folder_with_the_same_module_runs(tmp_path: Path) -> None:
    # "--track-dir=DIR", not "--track-dir DIR": with no test path on the command line, pytest
    # takes an existing directory among the values of plugin options as a rootdir candidate.
    process = run_pytest("--track", "local", f"--track-dir={tmp_path}", cwd=EVALS)
    assert process.returncode == 1 and OUTCOMES in process.stdout, process.stdout
    session = only_session(tmp_path)
    # The rootdir is still the repository (its pyproject.toml), so node ids do not change.
    assert set(session.modules) == {QA, SENTIMENT, FIXTURE, ASYNC}
    assert session.modules[SENTIMENT].metrics["sentiment/accuracy"] == 13 / 16


# -- the Python API script --------------------------------------------------------------------


def test_python_api_script_writes_the_runs_it_prints(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / "python_api.py"), str(out)],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    printed = {key: value.strip() for key, value in
               (line.split(":", 1) for line in process.stdout.splitlines())}
    assert printed["output directory"] == str(out)
    assert printed["quickstart run"] == str(out / "python-api" / "quickstart")
    assert printed["sweep (tensorboard)"] == f"tensorboard --logdir {out / 'tensorboard'}"

    runs = LocalFileTracker(output_dir=out, config=TrackingConfig(project="python-api"))
    assert runs.list_runs() == ["baseline", "eval-result", "quickstart", "temperature-sweep"]
    quickstart = runs.load_run("quickstart")
    assert quickstart["params"] == {"model": "gpt-4", "temperature": 0.0}
    assert quickstart["metrics"][0]["metrics"] == {"accuracy": 0.95}
    copied = out / "python-api" / "quickstart" / "artifacts" / "results.json"
    assert copied.read_text() == '{"accuracy": 0.95}'
    assert quickstart["final_state"]["status"] == "finished"
    assert runs.load_run("baseline")["metrics"][0]["metrics"] == {"accuracy": 0.93, "f1": 0.91}
    result = runs.load_run("eval-result")
    assert {k: v for k, v in result["metrics"][0]["metrics"].items()
            if k in ("eval_total_count", "eval_error_count", "eval_duration_seconds")} == {
        "eval_total_count": 3, "eval_error_count": 1, "eval_duration_seconds": 2.5}
    assert result["params"]["eval_probe_category"] == "logic"

    sweep = RunView(runs.run_path("temperature-sweep"), runs.load_run("temperature-sweep"))
    assert sweep.data["children"] == ["temperature-0.0", "temperature-0.5", "temperature-1.0"]
    assert sweep.history("accuracy_by_temperature") == [(0, 0.9), (1, 0.8), (2, 0.7)]
    assert sweep.metrics["best_accuracy"] == 0.9
    child = RunView(runs.run_path("temperature-0.5"), runs.load_run("temperature-0.5"))
    assert child.history("accuracy") == [(0, 0.8), (1, approx(0.81)), (2, approx(0.82))]
    # The same tree in TensorBoard, through MultiTracker.
    assert "temperature-sweep/temperature-0.5" in run_ids(out / "tensorboard")
    board = read_run(out / "tensorboard" / "temperature-sweep" / "temperature-0.5")
    assert board.scalars["accuracy"] == [(0, approx(0.8)), (1, approx(0.81)), (2, approx(0.82))]


# -- the CI recipes ---------------------------------------------------------------------------


def pytest_args(command: str) -> list[str]:
    args = shlex.split(command)
    return args[args.index("pytest") + 1:]


def option(args: list[str], name: str) -> str:
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {args}")


def assert_tracked_eval_command(args: list[str]) -> tuple[str, str]:
    """The command tracks to MLflow and locally and writes JUnit XML; returns both paths."""
    assert "evals/" in args
    pairs = set(itertools.pairwise(args))
    assert ("--track", "mlflow") in pairs and ("--track", "local") in pairs
    # With "=": pytest may take an existing directory after a plugin option for the rootdir.
    assert any(arg.startswith("--track-dir=") for arg in args)
    return option(args, "--track-dir"), option(args, "--junitxml")


def load_ci(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((EXAMPLES / "ci" / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def github_eval_command() -> str:
    (command,) = [s["run"] for s in load_ci("github-actions.yml")["jobs"]["evals"]["steps"]
                  if "pytest " in s.get("run", "")]
    return str(command)


def gitlab_eval_command() -> str:
    (command,) = [line for line in load_ci("gitlab-ci.yml")["evals"]["script"]
                  if line.startswith("pytest ")]
    return str(command)


def test_github_workflow_tracks_evals_and_always_uploads_runs_and_junit() -> None:
    workflow = load_ci("github-actions.yml")
    assert workflow[True] is not None  # "on:" (YAML 1.1 reads the key as a bool)
    job = workflow["jobs"]["evals"]
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    track_dir, junit = assert_tracked_eval_command(pytest_args(github_eval_command()))
    steps = job["steps"]
    assert any("pytest-insidellms[mlflow]" in s.get("run", "") for s in steps)
    (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["cache"] == "pip"
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()"
    uploaded = [p.rstrip("/") for p in upload["with"]["path"].split()]
    assert track_dir in uploaded and junit in uploaded


def test_gitlab_job_tracks_evals_and_always_keeps_runs_and_junit() -> None:
    pipeline = load_ci("gitlab-ci.yml")
    job = pipeline["evals"]
    assert job["stage"] in pipeline["stages"]
    # The URI is a CI/CD variable from the project settings, never written in the file.
    assert "MLFLOW_TRACKING_URI" not in pipeline.get("variables", {})
    assert any("pytest-insidellms[mlflow]" in line for line in job["script"])
    track_dir, junit = assert_tracked_eval_command(pytest_args(gitlab_eval_command()))
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert track_dir in [p.rstrip("/") for p in artifacts["paths"]] and junit in artifacts["paths"]
    assert artifacts["reports"]["junit"] == junit
    assert job["cache"]["paths"] == [".cache/pip"]


@pytest.mark.parametrize("command", [github_eval_command, gitlab_eval_command],
                         ids=["github", "gitlab"])
def test_ci_command_line_is_one_pytest_accepts(command: Callable[[], str], tmp_path: Path) -> None:
    moved = {"evals/": "examples/evals", "--track-dir": f"--track-dir={tmp_path / 'runs'}",
             "--junitxml": f"--junitxml={tmp_path / 'evals.xml'}"}
    args = [next((new for old, new in moved.items() if arg.split("=")[0] == old), arg)
            for arg in pytest_args(command())]
    process = run_pytest(*args, "--collect-only", "-q")
    assert process.returncode == 0, process.stdout + process.stderr
    assert "30 tests collected" in process.stdout


@pytest.mark.parametrize("command", [github_eval_command, gitlab_eval_command],
                         ids=["github", "gitlab"])
def test_ci_recipes_gate_against_main_and_keep_the_verdict(command: Callable[[], str]) -> None:
    args = pytest_args(command())
    assert option(args, "--track-baseline") == "mlflow:latest?branch=main"
    assert option(args, "--track-exit") == "gate"
    rules = [args[i + 1] for i, arg in enumerate(args) if arg == "--track-gate"]
    assert "*/accuracy:drop<=2%" in rules and "regressions<=5" in rules
    # gate.json and gate.md go beside the records, which the job keeps.
    records = option(args, "--track-records")
    kept = (load_ci("github-actions.yml")["jobs"]["evals"]["steps"][-1]["with"]["path"].split()
            if command is github_eval_command
            else load_ci("gitlab-ci.yml")["evals"]["artifacts"]["paths"])
    assert records in [p.rstrip("/") for p in kept]
    for name in ("github-actions-sharded.yml", "gitlab-ci-sharded.yml"):
        text = (EXAMPLES / "ci" / name).read_text()
        assert '--baseline "mlflow:latest?branch=main"' in text and "--gate" in text
