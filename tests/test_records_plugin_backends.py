"""With ``--track``, the run files are attached to the session run on every backend, with params
that name where they are and what ``records.jsonl`` hashes to; ``tracking.json`` names every
backend's run. Each side is read back with the backend's own reader and leads to the other."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from local_runs import only_session
from tensorboard_reader import read_run, run_ids
from wandb_reader import iter_records, read_runs

from pytest_insidellms.records import FILES

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# After the telemetry switch: MLflow reads it on import.
from mlflow.tracking import MlflowClient  # noqa: E402

SUITE = """
import pytest
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

@pytest.mark.experiment(name="labels", trials=2)
@pytest.mark.parametrize("case", range(3))
def test_label(case):
    assert case != 2

def test_returns():
    return ExperimentResult("r", ModelInfo("m", "p", "m-1"), "probe", ProbeCategory.LOGIC,
                            [ProbeResult("q", "a")])
"""
ATTACHED = (*FILES, "tracking.json")
#: What the trackers set process-wide with ``os.environ.setdefault`` (and W&B would read).
SDK_VARIABLES = ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR")


@pytest.fixture
def tracked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """One session tracked to all four backends (one run, ~10 s) with records on."""
    for name in SDK_VARIABLES:  # not pointed at an earlier in-process run's directories
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    pytester.makepyfile(test_attached=SUITE)
    result = pytester.runpytest("--track", "local,mlflow,wandb,tensorboard",
                                "--track-records=out")
    result.assert_outcomes(passed=5, failed=2)
    assert "problem(s)" not in result.stdout.str(), result.stdout.str()
    return pytester


def written(pytester: pytest.Pytester) -> dict[str, bytes]:
    return {name: (pytester.path / "out" / name).read_bytes() for name in ATTACHED}


def expected_params(pytester: pytest.Pytester) -> dict[str, str]:
    files = written(pytester)
    manifest = json.loads(files["manifest.json"])
    return {"records_dir": str(pytester.path / "out"),
            "records_sha256": hashlib.sha256(files["records.jsonl"]).hexdigest(),
            "records_run_id": manifest["run_id"]}


def tracking(pytester: pytest.Pytester) -> dict[str, Any]:
    loaded = json.loads((pytester.path / "out" / "tracking.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_backend_holds_the_files_and_the_params_and_each_side_names_the_other(
        tracked: pytest.Pytester) -> None:
    files = written(tracked)
    params = expected_params(tracked)
    backends = tracking(tracked)["backends"]
    assert set(backends) == {"local", "mlflow", "wandb", "tensorboard"}
    track_dir = tracked.path / "experiments"

    # local: <session run dir>/artifacts/records/
    local = only_session(track_dir)
    assert {k: local.run.params[k] for k in params} == params
    assert {name: (local.run.path / "artifacts" / "records" / name).read_bytes()
            for name in ATTACHED} == files
    assert backends["local"] == {"run_id": local.run.path.name,
                                 "location": str(local.run.path), "spooled": False}

    # MLflow (the embedded sqlite store): artifacts under records/
    client = MlflowClient(tracking_uri=f"sqlite:///{track_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("insideLLMs")
    assert experiment is not None
    (run,) = [r for r in client.search_runs([experiment.experiment_id])
              if "mlflow.parentRunId" not in r.data.tags]
    assert {k: run.data.params[k] for k in params} == params
    listed = sorted(a.path for a in client.list_artifacts(run.info.run_id, "records"))
    assert listed == sorted(f"records/{name}" for name in ATTACHED)
    with tempfile.TemporaryDirectory() as scratch:
        local_copy = Path(client.download_artifacts(run.info.run_id, "records", scratch))
        assert {name: (local_copy / name).read_bytes() for name in ATTACHED} == files
    # A remote backend is spooled: tracking.json knows its run by the spool's id, its name.
    assert (backends["mlflow"]["run_id"], backends["mlflow"]["spooled"]) == (
        run.info.run_name, True)

    # W&B offline: one artifact "records" whose manifest digests are the files' md5s
    (session_run,) = [r for r in read_runs(track_dir / "wandb") if r.job_type == "session"]
    assert {k: session_run.config[k] for k in params} == params
    (artifact,) = [a for a in session_run.artifacts if a["name"] == "records"]
    assert artifact["files"] == sorted(ATTACHED)
    digests = {entry.path: entry.digest for record in iter_records(session_run.path)
               if record.WhichOneof("record_type") == "artifact"
               for entry in record.artifact.manifest.contents}
    assert digests == {name: base64.b64encode(hashlib.md5(data).digest()).decode()
                       for name, data in files.items()}
    assert (backends["wandb"]["run_id"], backends["wandb"]["spooled"]) == (
        session_run.display_name, True)

    # TensorBoard: <log dir>/<session run>/artifacts/records/, params as hparams
    log_dir = track_dir / "tensorboard" / "insideLLMs"
    (session_dir,) = [log_dir / r for r in run_ids(log_dir) if "/" not in r]
    assert {name: (session_dir / "artifacts" / "records" / name).read_bytes()
            for name in ATTACHED} == files
    hparams = read_run(session_dir).hparams
    assert hparams is not None and {k: hparams[k] for k in params} == params
    assert backends["tensorboard"] == {"run_id": session_dir.name, "spooled": False,
                                       "location": f"tensorboard --logdir {log_dir}"}

    # What changes every run is in tracking.json, and none of it in the four files.
    everything = b"".join(files[name] for name in FILES)
    for backend in backends.values():
        assert backend["run_id"].encode() not in everything
    for timing in tracking(tracked)["cases"].values():
        assert repr(timing["started"]).encode() not in everything
    assert str(tracked.path).encode() not in everything
