"""The tracker library without pytest: the reference examples, MultiTracker and nested runs.

    python examples/python_api.py [OUTPUT_DIR]        # OUTPUT_DIR defaults to ./experiments

Everything is written under OUTPUT_DIR/python-api/ (local runs) and OUTPUT_DIR/tensorboard/
(TensorBoard logs). The TensorBoard half needs ``pip install 'pytest-insidellms[tensorboard]'``;
without it the script says so and logs the sweep to the local backend alone.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_insidellms import (
    ExperimentResult,
    ExperimentTracker,
    LocalFileTracker,
    ModelInfo,
    MultiTracker,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
    TensorBoardTracker,
    TrackingConfig,
    auto_track,
    create_tracker,
)

PROJECT = "python-api"


def quickstart(out: Path) -> str | None:
    """create_tracker as a context manager: the run ends "finished", or "failed" on an error."""
    results = out / "results.json"
    results.write_text(json.dumps({"accuracy": 0.95}), encoding="utf-8")
    config = TrackingConfig(project=PROJECT, experiment_name="quickstart", tags=["example"])
    with create_tracker("local", output_dir=out, config=config) as tracker:
        tracker.log_params({"model": "gpt-4", "temperature": 0.0})
        tracker.log_metrics({"accuracy": 0.95})
        tracker.log_artifact(results)
        return tracker.run_location()


def decorated(out: Path) -> dict[str, float]:
    """auto_track: every call is a run; numbers in the returned dict become metrics."""
    tracker = LocalFileTracker(output_dir=out, config=TrackingConfig(project=PROJECT))

    @auto_track(tracker, experiment_name="baseline")
    def run_eval() -> dict[str, float]:
        return {"accuracy": 0.93, "f1": 0.91}

    return run_eval()


def experiment_result(out: Path) -> str | None:
    """log_experiment_result: counts, score and duration as metrics, metadata as params."""
    started = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    result = ExperimentResult(
        experiment_id="logic-001",
        model_info=ModelInfo(name="gpt-4", provider="openai", model_id="gpt-4-0613"),
        probe_name="syllogisms",
        probe_category=ProbeCategory.LOGIC,
        results=[
            ProbeResult(input="All A are B; all B are C. Are all A C?", output="yes",
                        latency_ms=412.0),
            ProbeResult(input="Some A are B; some B are C. Are some A C?", output="yes",
                        latency_ms=388.0),
            ProbeResult(input="No A are B; all C are B. Are any A C?", status=ResultStatus.ERROR,
                        error="rate limit exceeded"),
        ],
        score=ProbeScore(accuracy=0.5, mean_latency_ms=400.0, error_rate=1 / 3),
        started_at=started,
        completed_at=started + timedelta(seconds=2.5),
    )
    config = TrackingConfig(project=PROJECT, experiment_name="eval-result")
    with LocalFileTracker(output_dir=out, config=config) as tracker:
        tracker.log_experiment_result(result, prefix="eval_")  # eval_accuracy, eval_total_count...
        return tracker.run_location()


def sweep(out: Path) -> dict[str, str | None]:
    """One MultiTracker run fanned out to local and TensorBoard, a child run per setting.

    Several runs are open at once; ``run_id=`` says which one a call goes to.
    """
    config = TrackingConfig(project=PROJECT)
    trackers: list[ExperimentTracker[Any]] = [LocalFileTracker(output_dir=out, config=config)]
    try:
        trackers.append(TensorBoardTracker(log_dir=out / "tensorboard", config=config))
    except ImportError as exc:
        print(f"  (TensorBoard left out: {exc})")
    multi = MultiTracker(trackers)
    parent = multi.start_run("temperature-sweep")
    multi.log_params({"model": "toy", "temperatures": [0.0, 0.5, 1.0]}, run_id=parent)
    best = 0.0
    for step, temperature in enumerate([0.0, 0.5, 1.0]):
        child = multi.start_run(f"temperature-{temperature}", parent_run_id=parent)
        accuracy = round(0.9 - 0.2 * temperature, 3)
        for epoch in range(3):
            multi.log_metrics({"accuracy": accuracy + 0.01 * epoch}, step=epoch, run_id=child)
        multi.end_run(run_id=child)
        # The child is ended, but the parent was addressable all along by its id.
        multi.log_metrics({"accuracy_by_temperature": accuracy}, step=step, run_id=parent)
        best = max(best, accuracy)
    multi.log_metrics({"best_accuracy": best}, run_id=parent)
    locations = multi.locations(parent)
    multi.end_run(run_id=parent)
    return locations


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "experiments").resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"output directory:      {out}")
    print(f"quickstart run:        {quickstart(out)}")
    print(f"auto_track returned:   {decorated(out)}")
    print(f"experiment result run: {experiment_result(out)}")
    for backend, location in sweep(out).items():
        print(f"sweep ({backend}): {location}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
