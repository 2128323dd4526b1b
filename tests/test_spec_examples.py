"""The Python examples of the reference description run as written, importing from
pytest_insidellms in place of insideLLMs, and do what the description says."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import (
    ExperimentResult,
    LocalFileTracker,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)

# Copied verbatim from the reference description (shared/spec/experiment-tracking.md).
MINIMAL = '''\
from insideLLMs import create_tracker

with create_tracker("local", output_dir="./experiments") as tracker:
    tracker.log_params({"model": "gpt-4"})
    tracker.log_metrics({"accuracy": 0.95})
    tracker.log_artifact("results.json")
'''

AUTO_TRACK = '''\
from insideLLMs import LocalFileTracker, auto_track

@auto_track(LocalFileTracker(output_dir="./experiments"), experiment_name="baseline")
def run_eval():
    return {"accuracy": 0.93, "f1": 0.91}
'''

EXPERIMENT_RESULT = '''\
from insideLLMs import LocalFileTracker
# result = ... (ExperimentResult)
with LocalFileTracker(output_dir="./experiments") as tracker:
    tracker.log_experiment_result(result, prefix="eval_")
'''

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "experiment-tracking.md"


def run_example(source: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    ported = source.replace("from insideLLMs import", "from pytest_insidellms import")
    assert ported != source
    scope = dict(namespace or {})
    exec(compile(ported, "<spec example>", "exec"), scope)
    return scope


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the examples write to ./experiments
    return tmp_path


def only_run(project_dir: Path) -> Path:
    [run_dir] = [p for p in project_dir.iterdir() if p.is_dir()]
    return run_dir


def test_the_embedded_examples_match_the_reference_description() -> None:
    if not SPEC.is_file():
        pytest.skip("the reference description is not beside this checkout")
    blocks = re.findall(r"```python\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks == [MINIMAL, AUTO_TRACK, EXPERIMENT_RESULT]


def test_minimal_example_writes_params_metrics_and_artifact(in_tmp_dir: Path) -> None:
    (in_tmp_dir / "results.json").write_text('{"accuracy": 0.95}')
    run_example(MINIMAL)
    run_dir = only_run(in_tmp_dir / "experiments" / "insideLLMs")
    assert re.fullmatch(r"\d{8}_\d{6}", run_dir.name)  # the spec's default run id
    assert json.loads((run_dir / "params.json").read_text()) == {"model": "gpt-4"}
    [entry] = json.loads((run_dir / "metrics.json").read_text())
    assert entry["metrics"] == {"accuracy": 0.95}
    assert (run_dir / "artifacts" / "results.json").read_text() == '{"accuracy": 0.95}'
    assert (in_tmp_dir / "results.json").exists()  # copied, not moved
    assert json.loads((run_dir / "final_state.json").read_text())["status"] == "finished"


def test_auto_track_example_logs_each_call_as_a_baseline_run(in_tmp_dir: Path) -> None:
    scope = run_example(AUTO_TRACK)
    assert scope["run_eval"]() == {"accuracy": 0.93, "f1": 0.91}
    assert scope["run_eval"]() == {"accuracy": 0.93, "f1": 0.91}
    reader = LocalFileTracker(output_dir=in_tmp_dir / "experiments")
    assert reader.list_runs() == ["baseline", "baseline_2"]
    for run_id in reader.list_runs():
        assert reader.load_run(run_id)["metrics"][0]["metrics"] == {"accuracy": 0.93, "f1": 0.91}


def test_experiment_result_example_logs_prefixed_names(in_tmp_dir: Path) -> None:
    result = ExperimentResult(
        experiment_id="exp-001",
        model_info=ModelInfo(name="gpt-4", provider="openai", model_id="gpt-4-0613"),
        probe_name="logic",
        probe_category=ProbeCategory.LOGIC,
        results=[ProbeResult(input="q1", output="a1"),
                 ProbeResult(input="q2", status=ResultStatus.ERROR, error="timeout")],
        score=ProbeScore(accuracy=0.5),
        started_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        completed_at=datetime(2024, 1, 1, 0, 0, 3, tzinfo=timezone.utc),
    )
    run_example(EXPERIMENT_RESULT, {"result": result})
    run_dir = only_run(in_tmp_dir / "experiments" / "insideLLMs")
    [entry] = json.loads((run_dir / "metrics.json").read_text())
    metrics = entry["metrics"]
    for name, value in {"success_rate": 0.5, "total_count": 2, "success_count": 1,
                        "error_count": 1, "accuracy": 0.5, "duration_seconds": 3.0}.items():
        assert metrics[f"eval_{name}"] == value
    assert json.loads((run_dir / "params.json").read_text()) == {
        "eval_experiment_id": "exp-001", "eval_model_name": "gpt-4",
        "eval_model_provider": "openai", "eval_model_id": "gpt-4-0613",
        "eval_probe_name": "logic", "eval_probe_category": "logic"}
