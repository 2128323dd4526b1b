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
from datetime import datetime
from pathlib import Path
from typing import Any

from .base import ExperimentTracker, run_finder, step_lister
from .config import TrackingConfig
from .journal import JOURNAL, ArtifactEntry, JournalReader, MetricsEntry, ParamsEntry, dispatch
from .redaction import redact_text
from .spool import read_sync_state, sync_key, write_sync_state


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    up_to_date: int = 0
    entries: int = 0
    missing_artifacts: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    #: Journal lines that held no readable entry, by journal file (1-based line numbers).
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> str:
        text = (f"{len(self.created)} run(s) created, {len(self.resumed)} resumed, "
                f"{self.up_to_date} already up to date; {self.entries} call(s) replayed")
        skipped = sum(len(lines) for lines in self.skipped_lines.values())
        if skipped:
            where = "; ".join(f"{path} line(s) {', '.join(map(str, lines))}"
                              for path, lines in self.skipped_lines.items())
            text += f"; {skipped} unreadable journal line(s) skipped ({where})"
        return text


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
        metadata = _read_json(run_dir / "metadata.json")
        target = make_target(TrackingConfig(
            project=metadata.get("project") or "insideLLMs",
            tags=list(metadata.get("tags") or []), notes=metadata.get("notes")))
        key = sync_key(target)
        try:
            remote = _sync(target, key, run_dir, None, report)
            if remote is not None:
                # Printed by the sync command: a tracking URI's credentials are masked.
                report.locations.append(redact_text(target.run_location(remote) or remote))
        finally:
            target.end_all_runs("killed")  # only if a failure left something open
            target.close()
    return report


def _sync(target: ExperimentTracker[Any], key: str, run_dir: Path, parent: str | None,
          report: SyncReport) -> str | None:
    """Replay one run and its children; returns the destination's run id."""
    if _complete(run_dir, key):
        report.up_to_date += sum(1 for _ in run_dir.glob(f"**/{JOURNAL}"))
        return str(read_sync_state(run_dir)[key]["run_id"])
    state = read_sync_state(run_dir).get(key, {})
    known = state.get("run_id")
    metadata = _read_json(run_dir / "metadata.json")
    name = metadata["run_name"]
    if known is None and state.get("start_in_doubt"):
        finder = run_finder(target)
        if finder is not None:
            known = finder.find_run(name, parent, datetime.fromisoformat(metadata["started_at"]))
    run_id = target.start_run(name, run_id=known, parent_run_id=parent)
    (report.resumed if known else report.created).append(run_id)
    write_sync_state(run_dir, key, run_id=run_id)  # a sync cut short resumes this same run

    delivered = int(state.get("delivered", 0))
    lister = step_lister(target)
    sink = _TargetSink(target, run_id, lister.metric_steps(run_id) if lister else {}, report)
    reader = JournalReader(run_dir / JOURNAL)
    count = 0
    for count, entry in enumerate(reader, start=1):
        if count > delivered:
            dispatch(entry, sink)
            report.entries += 1
    if reader.skipped_lines:
        report.skipped_lines[str(reader.path)] = reader.skipped_lines
    target.flush()
    write_sync_state(run_dir, key, delivered=count)

    children = run_dir / "children"
    for child in sorted(children.iterdir()) if children.is_dir() else ():
        if _is_run(child):
            _sync(target, key, child, run_id, report)
    final_state = _read_json(run_dir / "final_state.json") or {}
    status = final_state.get("status", "killed")  # a run that never ended was killed
    target.end_run(status, run_id=run_id)
    write_sync_state(run_dir, key, ended=True, status=status)
    return run_id


class _TargetSink:
    """Replays journal entries into one run of the destination; metric points it already
    has (``have``: steps by key) are skipped."""

    def __init__(self, target: ExperimentTracker[Any], run_id: str,
                 have: dict[str, set[int]], report: SyncReport) -> None:
        self.target, self.run_id, self.have, self.report = target, run_id, have, report

    def on_metrics(self, entry: MetricsEntry) -> None:
        metrics = {k: v for k, v in entry.metrics.items() if entry.step not in self.have.get(k, ())}
        if metrics:
            self.target.log_metrics(metrics, entry.step, run_id=self.run_id)

    def on_params(self, entry: ParamsEntry) -> None:
        self.target.log_params(entry.params, run_id=self.run_id)

    def on_artifact(self, entry: ArtifactEntry) -> None:
        path = Path(entry.path)
        if path.exists():
            self.target.log_artifact(path, entry.name, entry.type, run_id=self.run_id,
                                     origin=entry.original_path)
        else:
            self.report.missing_artifacts.append(str(path))


def _complete(run_dir: Path, key: str) -> bool:
    state = read_sync_state(run_dir).get(key, {})
    if not state.get("ended") or not state.get("run_id"):
        return False
    if int(state.get("delivered", 0)) < sum(1 for _ in JournalReader(run_dir / JOURNAL)):
        return False
    children = run_dir / "children"
    return not children.is_dir() or all(_complete(c, key) for c in children.iterdir() if c.is_dir())


def _is_run(path: Path) -> bool:
    return (path / "metadata.json").is_file() and (path / JOURNAL).is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
