"""Replay local run trees (a spool, or runs of the local backend) into any tracker.

Idempotent: what each run has delivered to a destination is kept in its ``sync.json`` (see
:mod:`.spool`), so replaying twice sends nothing twice. Nesting, steps, params, tags, notes,
artifacts and statuses are preserved; a run that never ended (its process was killed) is ended
``killed``. Where the destination can list the steps it already has (MLflow), metric points
already there are skipped too, which covers calls delivered just before an outage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import ExperimentTracker
from .config import TrackingConfig
from .local import decode_float, journal_entries, load_run_dir
from .spool import read_sync_state, sync_key, write_sync_state


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    up_to_date: int = 0
    entries: int = 0
    missing_artifacts: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.created)} run(s) created, {len(self.resumed)} resumed, "
                f"{self.up_to_date} already up to date; {self.entries} call(s) replayed")


def find_runs(source: Path) -> list[Path]:
    """The top-level run directories in ``source``: a run directory itself, or every run
    found below a project, spool or track directory."""
    if _is_run(source):
        return [source]
    return [meta.parent for meta in sorted(source.rglob("metadata.json"))
            if _is_run(meta.parent) and meta.parent.parent.name != "children"
            and "artifacts" not in meta.relative_to(source).parts]


def sync_runs(
    source: Path, make_target: Callable[[TrackingConfig], ExperimentTracker[Any]]
) -> SyncReport:
    """Replay every run in ``source``; ``make_target`` builds the destination tracker from
    each top-level run's own settings (project, tags, notes)."""
    runs = find_runs(source)
    if not runs:
        raise FileNotFoundError(f"no run found in {source}")
    report = SyncReport()
    for run_dir in runs:
        metadata = _metadata(run_dir)
        target = make_target(TrackingConfig(
            project=metadata.get("project") or "insideLLMs",
            tags=list(metadata.get("tags") or []), notes=metadata.get("notes")))
        key = sync_key(target)
        try:
            remote = _sync(target, key, run_dir, None, report)
            if remote is not None:
                report.locations.append(target.run_location(remote) or remote)
        finally:
            target.end_all_runs("killed")  # only if a failure left something open
            close = getattr(target, "close", None)
            if callable(close):
                close()
    return report


def _sync(target: ExperimentTracker[Any], key: str, run_dir: Path, parent: str | None,
          report: SyncReport) -> str | None:
    """Replay one run and its children; returns the destination's run id."""
    if _complete(run_dir, key):
        report.up_to_date += sum(1 for _ in run_dir.glob("**/journal.jsonl"))
        return str(read_sync_state(run_dir)[key]["run_id"])
    state = read_sync_state(run_dir).get(key, {})
    data = load_run_dir(run_dir)
    known = state.get("run_id")
    run_id = target.start_run(data["metadata"]["run_name"], run_id=known, parent_run_id=parent)
    (report.resumed if known else report.created).append(run_id)
    write_sync_state(run_dir, key, run_id=run_id)  # a sync cut short resumes this same run

    delivered = int(state.get("delivered", 0))
    have = _steps_already_there(target, run_id)
    count = 0
    for count, entry in enumerate(journal_entries(run_dir), start=1):
        if count <= delivered:
            continue
        _replay(target, run_id, entry, have, report)
        report.entries += 1
    target.flush()
    write_sync_state(run_dir, key, delivered=count)

    for child in data["children"]:
        _sync(target, key, run_dir / "children" / child, run_id, report)
    status = data["final_state"]["status"]
    status = "killed" if status == "running" else status
    target.end_run(status, run_id=run_id)
    write_sync_state(run_dir, key, ended=True, status=status)
    return run_id


def _replay(target: ExperimentTracker[Any], run_id: str, entry: dict[str, Any],
            have: dict[str, set[int]], report: SyncReport) -> None:
    kind = entry.get("kind")
    if kind == "metrics":
        step = int(entry["step"])
        metrics = {k: decode_float(v) for k, v in entry["metrics"].items() if step not in have.get(k, ())}
        if metrics:
            target.log_metrics(metrics, step, run_id=run_id)
    elif kind == "params":
        target.log_params(entry["params"], run_id=run_id)
    elif kind == "artifact":
        path = Path(entry["path"])
        if path.exists():
            target.log_artifact(path, entry["name"], entry["type"], run_id=run_id)
        else:
            report.missing_artifacts.append(str(path))


def _steps_already_there(target: ExperimentTracker[Any], run_id: str) -> dict[str, set[int]]:
    lookup = getattr(target, "metric_steps", None)
    if not callable(lookup):
        return {}
    steps: dict[str, set[int]] = lookup(run_id)
    return steps


def _complete(run_dir: Path, key: str) -> bool:
    state = read_sync_state(run_dir).get(key, {})
    if not state.get("ended") or not state.get("run_id"):
        return False
    entries = sum(1 for _ in journal_entries(run_dir))
    if int(state.get("delivered", 0)) < entries:
        return False
    children = run_dir / "children"
    return not children.is_dir() or all(_complete(c, key) for c in children.iterdir() if c.is_dir())


def _is_run(path: Path) -> bool:
    return (path / "metadata.json").is_file() and (path / "journal.jsonl").is_file()


def _metadata(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "metadata.json").read_text("utf-8"))
    return data

