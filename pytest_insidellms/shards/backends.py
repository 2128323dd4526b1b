"""The group run: one run per backend for a merged set of shards, the shards' runs under it.

Each backend links the way it can: MLflow nests by the ``mlflow.parentRunId`` tag, which may
be set on a run at any time, so the shards' session runs (found by their ``shard_*`` params)
get the group run as their parent and keep their module runs under them. W&B runs cannot be
re-parented, but a shard's runs were created in the shard group, and the group run joins that
group with the job type ``merge``. TensorBoard shows every directory below its ``--logdir``:
the shards' session run directories are copied beside the group run's. Local runs name the
shards' runs in params. Each backend is best effort: a failure is a problem reported by the
caller, never a reason to lose the others or the merged records.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..experiment_tracking.base import ExperimentTracker
from ..experiment_tracking.config import TrackingConfig
from ..experiment_tracking.registry import backend
from .merge import MergeResult, Shard

#: The artifact that holds the merged run files, as on a session run.
ARTIFACT_NAME: Final = "records"
#: The W&B job type of the group run; shard runs keep session/module.
MERGE_JOB_TYPE: Final = "merge"
_PARENT_TAG: Final = "mlflow.parentRunId"


@dataclass
class GroupRun:
    backend: str
    run_id: str | None = None
    location: str | None = None
    #: The shards' session runs linked under it (this backend's ids or directories).
    linked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def group_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The merged figures of summary.json, named as a session run names them: outcome
    counts and ``pass_rate``, and per experiment ``<name>/accuracy`` and friends."""
    session = summary["summary"]["session"]
    outcomes = session["outcomes"]
    metrics: dict[str, float] = {
        "tests_total": session["cases"], "tests_passed": outcomes["passed"],
        "tests_failed": outcomes["failed"], "tests_skipped": outcomes["skipped"],
        "tests_errors": outcomes["error"], "records": session["records"],
    }
    if session.get("pass_rate") is not None:
        metrics["pass_rate"] = session["pass_rate"]
    experiments = summary["summary"]["experiments"]
    names = Counter(e["experiment"] for e in experiments)
    for experiment in experiments:
        name = experiment["experiment"]
        prefix = experiment["module"] if name is None else (
            name if names[name] == 1 else f"{experiment['module']}::{name}")
        for key in ("cases", "passes", "errors", "accuracy", "success_rate"):
            if isinstance(experiment.get(key), (int, float)):
                metrics[f"{prefix}/{key}"] = experiment[key]
        interval = experiment.get("accuracy_ci") or {}
        for bound in ("lower", "upper"):
            if isinstance(interval.get(bound), (int, float)):
                metrics[f"{prefix}/accuracy_ci_{bound}"] = interval[bound]
    return metrics


def group_params(result: MergeResult, digest: str) -> dict[str, Any]:
    return {
        "shard_group": result.group, "shard_total": result.total,
        "shard_attempts": ",".join(f"{s.manifest.index}:{s.manifest.attempt}"
                                   for s in result.shards),
        "records_run_id": result.run_id, "records_sha256": digest,
        "records_dir": str(result.written.directory),
    }


def publish(result: MergeResult, names: Sequence[str], *, track_dir: Path,
            params: Mapping[str, Any], failed: bool,
            tracking_uri: str | None = None) -> list[GroupRun]:
    """Create the group run on each backend of ``names``, log ``params`` and the merged
    metrics on it, attach the run files, and link the shards' session runs."""
    runs = []
    for name in names:
        run = GroupRun(name)
        try:
            _publish_one(run, result, track_dir, params, failed, tracking_uri)
        except Exception as exc:  # a backend is best effort: the others still get theirs
            run.problems.append(f"{type(exc).__name__}: {exc}")
        runs.append(run)
    return runs


def _publish_one(run: GroupRun, result: MergeResult, track_dir: Path, params: Mapping[str, Any],
                 failed: bool, tracking_uri: str | None) -> None:
    project = result.shards[0].manifest.project
    tracker = make_tracker(run.backend, TrackingConfig(project=project), track_dir,
                           group=result.group, tracking_uri=tracking_uri)
    try:
        run.run_id = tracker.start_run(run_name=f"merge-{result.group}")
        shard_runs = {f"shard_{s.manifest.index}_run": _shard_run(s, run.backend)
                      for s in result.shards}
        tracker.log_params({**params, **{k: v for k, v in shard_runs.items() if v}},
                           run_id=run.run_id)
        tracker.log_metrics(group_metrics(result.written.summary), run_id=run.run_id)
        with tempfile.TemporaryDirectory(prefix="insidellms-merge-") as scratch:
            staged = Path(scratch) / ARTIFACT_NAME
            staged.mkdir()
            for path in result.written.files:
                shutil.copy2(path, staged / path.name)
            tracker.log_artifact(staged, ARTIFACT_NAME, "records", run_id=run.run_id)
        link = _LINKERS.get(run.backend)
        if link is not None:
            link(tracker, run, result)
        else:  # the shards' runs are named in params (local) or share the group (W&B)
            run.linked = [v for v in shard_runs.values() if v]
        run.location = tracker.run_location(run.run_id)
        tracker.end_run("failed" if failed else "finished", run_id=run.run_id)
    finally:
        tracker.close()


def make_tracker(name: str, tracking: TrackingConfig, track_dir: Path, *, group: str,
                 tracking_uri: str | None = None) -> ExperimentTracker[Any]:
    """The backend's tracker as a session would build it (its embedded defaults under
    ``track_dir``, the environment), not spooled: the merge reports a failure at once."""
    spec = backend(name)
    kwargs = spec.default_kwargs(tracking, track_dir)
    if name == "mlflow" and tracking_uri:
        kwargs["tracking_uri"] = tracking_uri
        kwargs.pop("artifact_location", None)
    if name == "wandb":
        kwargs.update(group=group, job_types=(MERGE_JOB_TYPE,))
    return spec.create(**kwargs)


def _shard_run(shard: Shard, name: str) -> str | None:
    """What the shard's tracking.json says locates its session run on backend ``name``."""
    found = shard.tracking.get("backends", {}).get(name) or {}
    value = found.get("location") if name == "local" else found.get("run_id")
    return str(value) if value else None


def _link_mlflow(tracker: Any, run: GroupRun, result: MergeResult) -> None:
    client = tracker.client
    found = client.search_runs([tracker.experiment_id],
                               filter_string=f"params.shard_group = '{result.group}'",
                               max_results=5000)
    for shard in result.shards:
        candidates = [r for r in found
                      if r.data.params.get("shard_index") == str(shard.manifest.index)
                      and r.info.run_id != run.run_id]
        named = _shard_run(shard, "mlflow")
        exact = [r for r in candidates if named in (r.info.run_id, r.info.run_name)]
        same_attempt = [r for r in candidates
                        if r.data.params.get("shard_attempt") == str(shard.manifest.attempt)]
        chosen = exact or same_attempt
        if not chosen:
            run.problems.append(f"no MLflow session run of {shard.name} in experiment "
                                f"{tracker.experiment_name!r} of {tracker.tracking_uri} "
                                "(still in the shard's spool? replay it with python -m "
                                "pytest_insidellms sync, then merge again)")
            continue
        latest = max(chosen, key=lambda r: r.info.start_time or 0)
        client.set_tag(latest.info.run_id, _PARENT_TAG, run.run_id)
        run.linked.append(latest.info.run_id)


def _link_tensorboard(tracker: Any, run: GroupRun, result: MergeResult) -> None:
    log_dir = Path(tracker.log_dir)
    for shard in result.shards:
        found = shard.tracking.get("backends", {}).get("tensorboard") or {}
        source = _tensorboard_dir(found)
        if source is None or not source.is_dir():
            run.problems.append(f"the TensorBoard run of {shard.name} is not on this machine "
                                f"({source or 'not in its tracking.json'}): copy it into "
                                f"{log_dir}")
            continue
        target = log_dir / source.name
        if target.resolve() != source.resolve():
            if target.exists():
                target = log_dir / f"{source.name}-shard{shard.manifest.index}of{result.total}"
            shutil.copytree(source, target, dirs_exist_ok=True)
        run.linked.append(target.relative_to(log_dir).as_posix())


def _tensorboard_dir(found: Mapping[str, Any]) -> Path | None:
    """A TensorBoard location is the command ``tensorboard --logdir <dir>``; the run id is
    the run's directory below it."""
    location, run_id = found.get("location"), found.get("run_id")
    if not isinstance(location, str) or not isinstance(run_id, str):
        return None
    words = shlex.split(location)
    if "--logdir" not in words or words.index("--logdir") + 1 >= len(words):
        return None
    return Path(words[words.index("--logdir") + 1]) / run_id


_LINKERS: Final[Mapping[str, Callable[[Any, GroupRun, MergeResult], None]]] = {
    "mlflow": _link_mlflow,
    "tensorboard": _link_tensorboard,
}
