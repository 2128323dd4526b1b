"""LocalFileTracker: runs as JSON files on disk, crash-safe, no dependencies.

Layout (the reference layout, plus ``journal.jsonl`` and ``children/``)::

    <output_dir>/<project>/<run_id>/
        metadata.json      written when the run starts
        journal.jsonl      one line per logging call, on disk before the call returns
        metrics.json  params.json  artifacts.json  final_state.json   written at end_run
        artifacts/<name>   copied when log_artifact is called
        children/<child run id>/   nested runs, same layout

The four end-of-run files are rebuilt from the journal (see :mod:`.journal`) in one pass, or
from what this tracker wrote to it when nothing else did, and replaced atomically, so a run
whose process was killed can still be read back completely with
:meth:`LocalFileTracker.load_run` (its status is then ``running``). An open run holds no file
open, so any number of runs may be open at once. Non-finite metric values are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and read back as floats.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .base import Artifact, ExperimentTracker, Run
from .config import TrackingConfig
from .journal import JOURNAL as JOURNAL
from .journal import (AppendFile, ArtifactEntry, JournalMirror, JournalWriter, MetricsEntry,
                      ParamsEntry, result_entries, summarize)
from .journal import decode_float as decode_float
from .journal import materialize as materialize
from .journal import write_json_atomic as write_json_atomic
from .names import safe_id as safe_id
from .names import numbered_name


@dataclass(eq=False, kw_only=True)
class LocalRun(Run):
    path: Path
    journal: JournalWriter


class LocalFileTracker(ExperimentTracker[LocalRun]):
    """Writes each run to ``<output_dir>/<project>/<run_id>/`` (see the module docstring)."""

    backend_name = "local"

    def __init__(
        self, output_dir: str | os.PathLike[str] = "./experiments", config: TrackingConfig | None = None
    ) -> None:
        super().__init__(config)
        self.output_dir = Path(output_dir)

    @property
    def project_dir(self) -> Path:
        return self.output_dir / safe_id(self.config.project)

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: LocalRun | None) -> LocalRun:
        base = parent.path / "children" if parent else self.project_dir
        base.mkdir(parents=True, exist_ok=True)
        if run_id is not None and (base / safe_id(run_id)).is_dir():
            existing = base / safe_id(run_id)
            if any(r.path == existing for r in self._runs.values()):
                raise RuntimeError(f"run {existing.name!r} is already open in this tracker")
            return self._resume(existing, name, parent)
        # Ids stay unique among open runs, nested ones under other parents included.
        taken = frozenset(open_id.casefold() for open_id in self._runs)
        path = claim_directory(base, safe_id(run_id or name), reserved=taken)
        (path / "artifacts").mkdir()
        journal = path / JOURNAL
        journal.touch()  # a run that never logs is still a run to find and replay
        run = LocalRun(run_id=path.name, name=name, parent=parent, path=path,
                       journal=JournalWriter(journal, mirror=JournalMirror(journal)))
        metadata: dict[str, Any] = {
            "run_id": run.run_id,
            "run_name": name,
            "project": self.config.project,
            "tags": list(self.config.tags),
            "notes": self.config.notes,
            "started_at": run.started_at.isoformat(),
        }
        if parent is not None:
            metadata["parent_run_id"] = parent.run_id
        write_json_atomic(path / "metadata.json", metadata)
        return run

    def _resume(self, path: Path, name: str, parent: LocalRun | None) -> LocalRun:
        (path / "final_state.json").unlink(missing_ok=True)
        (path / "artifacts").mkdir(exist_ok=True)
        metadata = _read_json(path / "metadata.json") or {}
        started = metadata.get("started_at")
        run = LocalRun(
            run_id=path.name, name=metadata.get("run_name", name), parent=parent, path=path,
            journal=JournalWriter(path / JOURNAL),
        )
        if started:
            run.started_at = datetime.fromisoformat(started)
        run.last_step = summarize(path).last_step
        return run

    def journal_writer(self, run_id: str, opener: Callable[[Path], AppendFile]) -> JournalWriter:
        """Another writer of an open run's journal (case lines), through ``opener`` and
        sharing the run writer's mirror, so the run still ends without reading it back."""
        with self._lock:
            run = self._open(run_id)
            return JournalWriter(run.path / JOURNAL, opener, run.journal.mirror)

    def _record_metrics(
        self, run: LocalRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        run.journal.append(MetricsEntry.at(step, metrics, timestamp))

    def _record_params(self, run: LocalRun, params: dict[str, Any]) -> None:
        run.journal.append(ParamsEntry(params))

    def _record_result(self, run: LocalRun, metrics: dict[str, float], params: dict[str, Any],
                       step: int | None, timestamp: float) -> None:
        entries = result_entries(metrics, params, step, timestamp)
        if entries:
            run.journal.append(*entries)

    def _record_artifact(self, run: LocalRun, artifact: Artifact) -> None:
        self.keep_artifact(run, artifact)

    def keep_artifact(self, run: LocalRun, artifact: Artifact) -> ArtifactEntry:
        """Copy ``artifact`` into ``run`` and journal it; return the entry, which names the
        copy. For trackers that wrap this one (the spool delivers the copy, which cannot
        change under it)."""
        with self._lock:
            root = run.path / "artifacts"
            target = free_path(root / artifact.name)
            # The name is already free of "..", but a directory copied earlier may hold a link
            # that points outside: never write through one.
            if not target.parent.resolve().is_relative_to(root.resolve()):
                raise ValueError(f"artifact name {artifact.name!r} leads outside {root}")
            target.parent.mkdir(parents=True, exist_ok=True)
            if artifact.source.is_dir():
                # Links inside a directory are copied as links: their targets may lie outside.
                shutil.copytree(artifact.source, target, symlinks=True)
            else:
                shutil.copy2(artifact.source, target)
            entry = ArtifactEntry(name=artifact.name, type=artifact.type, path=str(target),
                                  original_path=artifact.origin or str(artifact.source))
            run.journal.append(entry)
            return entry

    def _close_run(self, run: LocalRun, status: str, ended_at: datetime) -> None:
        materialize(run.path, {"status": status, "ended_at": ended_at.isoformat()},
                    run.journal.mirror)

    # -- reading runs back ------------------------------------------------------------------

    def run_location(self, run_id: str | None = None) -> str | None:
        with self._lock:
            return str(self._resolve(run_id).path)

    def run_path(self, run_id: str) -> Path:
        """The directory of a run: open, ended, top-level or nested."""
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id].path
        direct = self.project_dir / safe_id(run_id)
        if direct.is_dir() and run_id == direct.name:
            return direct
        for candidate in self.project_dir.glob(f"**/children/{safe_id(run_id)}"):
            if candidate.is_dir():
                return candidate
        raise FileNotFoundError(f"Run not found: {run_id!r} under {self.project_dir}")

    def load_run(self, run_id: str, *, latest: bool = False) -> dict[str, Any]:
        """Read a run back as a dict keyed like its files (plus ``children``).

        A run name started again gets a new directory (``name_2``, ``name_3``...), so
        ``load_run(name)`` is the first run of that name; ``latest=True`` reads ``run_id`` as a
        run name and loads the newest top-level run of it (see :meth:`latest_run_id`).
        """
        return load_run_dir(self.run_path(self.latest_run_id(run_id) if latest else run_id))

    def latest_run_id(self, name: str) -> str:
        """The id of the newest top-level run named ``name`` (by start time): the run whose
        directory is ``name``, or one started with ``run_name=name``. FileNotFoundError
        ("Run not found") when there is none."""
        newest: tuple[str, int, str] | None = None
        for run_id in self.list_runs():
            metadata = _read_json(self.project_dir / run_id / "metadata.json") or {}
            if run_id != name and metadata.get("run_name") != name:
                continue
            # ISO UTC times sort as text; a suffix breaks a tie within one clock tick.
            suffix = run_id.rpartition("_")[2]
            key = (str(metadata.get("started_at", "")), int(suffix) if suffix.isdigit() else 1, run_id)
            newest = key if newest is None or key > newest else newest
        if newest is None:
            raise FileNotFoundError(f"Run not found: no run named {name!r} under {self.project_dir}")
        return newest[2]

    def list_runs(self) -> list[str]:
        """Ids of the top-level runs of this tracker's project, sorted."""
        if not self.project_dir.is_dir():
            return []
        return sorted(p.name for p in self.project_dir.iterdir() if (p / "metadata.json").is_file())


# -- run directories ---------------------------------------------------------------------------


def claim_directory(base: Path, name: str, reserved: frozenset[str] = frozenset()) -> Path:
    """Create ``base/name`` or, if taken, ``base/name_2``, ``_3``...: never reuse a run's directory.

    ``mkdir`` is atomic, so two processes starting runs of the same name both get their own.
    """
    for attempt in range(1, 10_000):
        candidate = name if attempt == 1 else f"{name}_{attempt}"
        if candidate.casefold() in reserved:  # names the run directory itself uses
            continue
        path = base / candidate
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not find a free run directory for {name!r} under {base}")


def free_path(path: Path) -> Path:
    """``path``, or ``stem_2.ext``, ``stem_3.ext``... (:func:`.names.numbered_name`): an
    earlier artifact is never overwritten."""
    return path.with_name(numbered_name(path.name, _Existing(path.parent)))


class _Existing:
    """The names taken in a directory, as a container (links count, even dangling ones)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and os.path.lexists(self.directory / name)


def load_run_dir(run_dir: Path) -> dict[str, Any]:
    """Read any run directory back; a run that never ended is rebuilt from its journal.

    Besides the five files (``metadata``, ``metrics``, ``params``, ``artifacts``,
    ``final_state``) and ``children``, ``journal_skipped_lines`` lists the journal lines that
    held no readable entry (a write torn by a kill or a full disk), empty when none. As in
    insideLLMs, the key of an end-of-run file that is missing from an ended run is left out; a
    run that never ended has all five, rebuilt from its journal.
    """
    if not (run_dir / "metadata.json").is_file():
        raise FileNotFoundError(f"not a run directory: {run_dir}")
    final_state = _read_json(run_dir / "final_state.json")
    if final_state is None:
        metrics: list[dict[str, Any]] = []
        summary = summarize(run_dir, lambda entry: metrics.append(entry.record()))
        params, artifacts = summary.params, summary.artifacts
        skipped = summary.skipped_lines
        final_state = {"status": "running", "ended_at": None,
                       "total_steps": summary.last_step + 1, "metrics_count": summary.metrics_count}
    else:
        metrics = _read_json(run_dir / "metrics.json")
        params = _read_json(run_dir / "params.json")
        artifacts = _read_json(run_dir / "artifacts.json")
        skipped = list(final_state.get("journal_skipped_lines", []))
    for entry in metrics or []:
        entry["metrics"] = {k: decode_float(v) for k, v in entry["metrics"].items()}
    children = run_dir / "children"
    files = {"metadata": _read_json(run_dir / "metadata.json"), "metrics": metrics,
             "params": params, "artifacts": artifacts, "final_state": final_state}
    return {
        **{key: value for key, value in files.items() if value is not None},
        "children": sorted(p.name for p in children.iterdir()) if children.is_dir() else [],
        "journal_skipped_lines": skipped,
    }


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
