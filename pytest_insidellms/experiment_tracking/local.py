"""LocalFileTracker: runs as JSON files on disk, crash-safe, no dependencies.

Layout (the reference layout, plus ``journal.jsonl`` and ``children/``)::

    <output_dir>/<project>/<run_id>/
        metadata.json      written when the run starts
        journal.jsonl      one line per logging call, flushed before the call returns
        metrics.json  params.json  artifacts.json  final_state.json   written at end_run
        artifacts/<name>   copied when log_artifact is called
        children/<child run id>/   nested runs, same layout

The four end-of-run files are rebuilt from the journal and replaced atomically, so a run whose
process was killed can still be read back completely with :meth:`LocalFileTracker.load_run`
(its status is then ``running``). Non-finite metric values are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and read back as floats.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .base import Artifact, ExperimentTracker, Run
from .config import TrackingConfig

JOURNAL = "journal.jsonl"
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._\-]+")
_MAX_ID_LENGTH = 120
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(eq=False, kw_only=True)
class LocalRun(Run):
    path: Path
    journal: IO[str]


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
        path = claim_directory(base, safe_id(run_id or name))
        (path / "artifacts").mkdir()
        run = LocalRun(
            run_id=path.name, name=name, parent=parent, path=path,
            journal=open(path / JOURNAL, "a", encoding="utf-8"),
        )
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
            journal=open(path / JOURNAL, "a", encoding="utf-8"),
        )
        if not _ends_with_newline(path / JOURNAL):
            # A kill mid-write left half a line: end it, or the next entry would be glued to
            # it and lost with it.
            run.journal.write("\n")
            run.journal.flush()
        if started:
            run.started_at = datetime.fromisoformat(started)
        run.last_step = max((e["step"] for e in journal_entries(path, "metrics")), default=-1)
        return run

    def _record_metrics(
        self, run: LocalRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        when = datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
        self._append(run, {"kind": "metrics", "step": step, "timestamp": when,
                           "metrics": {k: _encode_float(v) for k, v in metrics.items()}})

    def _record_params(self, run: LocalRun, params: dict[str, Any]) -> None:
        self._append(run, {"kind": "params", "params": params})

    def _record_artifact(self, run: LocalRun, artifact: Artifact) -> None:
        root = run.path / "artifacts"
        target = free_path(root / artifact.name)
        # The name is already free of "..", but a directory copied earlier may hold a link
        # that points outside: never write through one.
        if not target.parent.resolve().is_relative_to(root.resolve()):
            raise ValueError(f"artifact name {artifact.name!r} leads outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if artifact.source.is_dir():
            # Links inside a directory are copied as links: their targets may lie outside it.
            shutil.copytree(artifact.source, target, symlinks=True)
        else:
            shutil.copy2(artifact.source, target)
        self._append(run, {
            "kind": "artifact",
            "name": artifact.name,
            "type": artifact.type,
            "path": str(target),
            "original_path": str(artifact.source),
        })

    def _close_run(self, run: LocalRun, status: str, ended_at: datetime) -> None:
        run.journal.close()
        materialize(run.path, {"status": status, "ended_at": ended_at.isoformat()})

    def _append(self, run: LocalRun, entry: dict[str, Any]) -> None:
        run.journal.write(json.dumps(entry, default=str, allow_nan=False) + "\n")
        run.journal.flush()

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
        raise FileNotFoundError(f"no run {run_id!r} under {self.project_dir}")

    def load_run(self, run_id: str) -> dict[str, Any]:
        """Read a run back as a dict keyed like its files (plus ``children``)."""
        return load_run_dir(self.run_path(run_id))

    def list_runs(self) -> list[str]:
        """Ids of the top-level runs of this tracker's project, sorted."""
        if not self.project_dir.is_dir():
            return []
        return sorted(p.name for p in self.project_dir.iterdir() if (p / "metadata.json").is_file())


# -- run directories ---------------------------------------------------------------------------


def safe_id(text: str) -> str:
    """A filesystem-safe, non-escaping directory name for a run id or project."""
    clean = _UNSAFE_ID_CHARS.sub("_", text).strip("._") or "run"
    return clean[:_MAX_ID_LENGTH]


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
    """``path``, or ``stem_2.ext``, ``stem_3.ext``...: an earlier artifact is never overwritten."""
    if not os.path.lexists(path):
        return path
    stem, suffix = path.stem, path.suffix
    for n in range(2, 10_000):
        candidate = path.with_name(f"{stem}_{n}{suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise RuntimeError(f"no free artifact name near {path}")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file, fsync and rename: readers see old or new, never half."""
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        json.dump(data, handle, indent=2, default=str, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def materialize(run_dir: Path, final_state: dict[str, Any] | None) -> None:
    """Rebuild the end-of-run files of ``run_dir`` from its journal (streamed: memory stays
    flat however long the run). ``final_state`` None leaves the run looking unfinished."""
    state = _replay(run_dir)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=run_dir, prefix=".metrics.json.", delete=False
    ) as handle:
        handle.write("[")
        for n, entry in enumerate(journal_entries(run_dir, "metrics")):
            handle.write(",\n  " if n else "\n  ")
            del entry["kind"]
            handle.write(json.dumps(entry, allow_nan=False))
        handle.write("\n]\n" if state.metrics_count else "]\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, run_dir / "metrics.json")
    write_json_atomic(run_dir / "params.json", state.params)
    write_json_atomic(run_dir / "artifacts.json", state.artifacts)
    if final_state is not None:
        write_json_atomic(
            run_dir / "final_state.json",
            {**final_state, "total_steps": state.last_step + 1, "metrics_count": state.metrics_count},
        )


@dataclass
class _Replayed:
    params: dict[str, Any]
    artifacts: list[dict[str, Any]]
    metrics_count: int
    last_step: int


def _replay(run_dir: Path) -> _Replayed:
    state = _Replayed(params={}, artifacts=[], metrics_count=0, last_step=-1)
    for entry in journal_entries(run_dir):
        kind = entry.get("kind")
        if kind == "metrics":
            state.metrics_count += 1
            state.last_step = max(state.last_step, entry["step"])
        elif kind == "params":
            state.params.update(entry["params"])
        elif kind == "artifact":
            state.artifacts.append({k: entry[k] for k in ("name", "type", "path", "original_path")})
    return state


def journal_entries(run_dir: Path, kind: str | None = None) -> Iterator[dict[str, Any]]:
    try:
        handle = open(run_dir / JOURNAL, encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill mid-write; every complete line counts
            if kind is None or entry.get("kind") == kind:
                yield entry


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def load_run_dir(run_dir: Path) -> dict[str, Any]:
    """Read any run directory back; a run that never ended is rebuilt from its journal."""
    if not (run_dir / "metadata.json").is_file():
        raise FileNotFoundError(f"not a run directory: {run_dir}")
    final_state = _read_json(run_dir / "final_state.json")
    if final_state is None:
        state = _replay(run_dir)
        metrics: list[dict[str, Any]] = []
        for entry in journal_entries(run_dir, "metrics"):
            del entry["kind"]
            metrics.append(entry)
        params, artifacts = state.params, state.artifacts
        final_state = {"status": "running", "ended_at": None,
                       "total_steps": state.last_step + 1, "metrics_count": state.metrics_count}
    else:
        metrics = _read_json(run_dir / "metrics.json") or []
        params = _read_json(run_dir / "params.json") or {}
        artifacts = _read_json(run_dir / "artifacts.json") or []
    for entry in metrics:
        entry["metrics"] = {k: decode_float(v) for k, v in entry["metrics"].items()}
    children = run_dir / "children"
    return {
        "metadata": _read_json(run_dir / "metadata.json"),
        "metrics": metrics,
        "params": params,
        "artifacts": artifacts,
        "final_state": final_state,
        "children": sorted(p.name for p in children.iterdir()) if children.is_dir() else [],
    }


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def _encode_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_float(value: Any) -> Any:
    """A journal's metric value back as a float: the strings written for NaN and infinities."""
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value
