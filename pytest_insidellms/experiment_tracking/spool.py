"""SpoolingTracker: nothing is lost when a remote backend goes down.

Every call is first appended to a local journal (a LocalFileTracker run tree, the *spool*), then
passed to the remote tracker. Each spooled run keeps, in ``sync.json``, the remote run's id and
how many of its journal entries are known to have been delivered: everything before the
remote's last successful flush. When the remote fails, the failure is raised once; from then on
calls go to the spool only, and ``python -m pytest_insidellms sync`` replays the rest later.
If the session ends with everything delivered, the spool is deleted.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .base import Artifact, ExperimentTracker, Run, TrackingWarning
from .local import LocalFileTracker, write_json_atomic

SYNC_STATE = "sync.json"


def sync_key(tracker: ExperimentTracker[Any]) -> str:
    """Names the destination of a tracker, so a replay knows which remote ids are its own."""
    parts = [tracker.backend_name]
    for attribute in ("tracking_uri", "experiment_name", "entity", "project"):
        value = getattr(tracker, attribute, None)
        if value:
            parts.append(f"{attribute}={value}")
    return " ".join(parts)


def read_sync_state(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        state: dict[str, dict[str, Any]] = json.loads((run_dir / SYNC_STATE).read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return state


def write_sync_state(run_dir: Path, key: str, **fields: Any) -> None:
    state = read_sync_state(run_dir)
    state[key] = {**state.get(key, {}), **fields}
    write_json_atomic(run_dir / SYNC_STATE, state)


@dataclass(eq=False, kw_only=True)
class SpoolRun(Run):
    spool_id: str
    path: Path
    remote_id: str | None = None
    entries: int = 0
    delivered: int = 0


class SpoolingTracker(ExperimentTracker[SpoolRun]):
    """Wraps ``remote`` (see the module docstring). The run id is the remote run's id while
    the remote works, else the spool's. It never raises for the remote: the first failure is
    a :class:`TrackingWarning`, and :meth:`outage` describes it afterwards."""

    def __init__(self, remote: ExperimentTracker[Any], spool_dir: str | Path,
                 flush_interval: float = 2.0) -> None:
        super().__init__(remote.config)
        self.backend_name = remote.backend_name
        self.remote = remote
        self.spool = LocalFileTracker(spool_dir, config=self.config)
        # What the spool is about to create; pruned again (when empty) after a clean session.
        self._created_top = _first_missing(Path(spool_dir).absolute())
        self.key = sync_key(remote)
        self.flush_interval = flush_interval
        self.failure: BaseException | None = None
        self.spooled_after_failure = 0
        self._last_flush = time.monotonic()

    def outage(self) -> str | None:
        """One line for a person when the remote failed: what, where the spool is, what to run."""
        if self.failure is None:
            return None
        return (f"{self.backend_name} failed ({type(self.failure).__name__}: {self.failure}); "
                f"{self.spooled_after_failure} call(s) after the failure kept in "
                f"{self.spool.project_dir}; replay with: python -m pytest_insidellms sync "
                f"{self.spool.project_dir} --to {self.backend_name}")

    def run_location(self, run_id: str | None = None) -> str | None:
        with self._lock:
            run = self._resolve(run_id)
            if run.remote_id is not None and self.failure is None:
                return self.remote.run_location(run.remote_id)
            return str(run.path)

    def flush(self) -> None:
        with self._lock:
            self._flush_remote()

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: SpoolRun | None) -> SpoolRun:
        spool_id = self.spool.start_run(name, parent_run_id=parent.spool_id if parent else None)
        run = SpoolRun(run_id=spool_id, name=name, parent=parent, spool_id=spool_id,
                       path=self.spool.run_path(spool_id))
        if parent is None or parent.remote_id is not None:
            remote_parent = parent.remote_id if parent else None
            opened = self._deliver(
                lambda: self.remote.start_run(name, run_id, parent_run_id=remote_parent))
            if isinstance(opened, str):
                run.remote_id = run.run_id = opened
        if self.failure is not None:
            self.spooled_after_failure += 1
        write_sync_state(run.path, self.key, run_id=run.remote_id, delivered=0)
        return run

    def _record_metrics(self, run: SpoolRun, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        self.spool.log_metrics(metrics, step, run_id=run.spool_id)
        self._forward(run, lambda rid: self.remote.log_metrics(metrics, step, run_id=rid))

    def _record_params(self, run: SpoolRun, params: dict[str, Any]) -> None:
        self.spool.log_params(params, run_id=run.spool_id)
        self._forward(run, lambda rid: self.remote.log_params(params, run_id=rid))

    def _record_artifact(self, run: SpoolRun, artifact: Artifact) -> None:
        self.spool.log_artifact(artifact.source, artifact.name, artifact.type, run_id=run.spool_id)
        self._forward(run, lambda rid: self.remote.log_artifact(
            artifact.source, artifact.name, artifact.type, run_id=rid))

    def _close_run(self, run: SpoolRun, status: str, ended_at: datetime) -> None:
        self.spool.end_run(status, run_id=run.spool_id)
        if run.remote_id is not None:
            self._deliver(lambda: self.remote.end_run(status, run_id=run.remote_id))
        if self.failure is None and run.remote_id is not None:
            if run.parent is None:
                shutil.rmtree(run.path, ignore_errors=True)  # all delivered: nothing to keep
                self._prune(run.path.parent.absolute())
                return
            run.delivered = run.entries
        write_sync_state(run.path, self.key, delivered=run.delivered,
                         ended=self.failure is None and run.remote_id is not None)

    def _prune(self, directory: Path) -> None:
        """Remove the empty directories the spool created, from ``directory`` upwards."""
        top = self._created_top
        if top is None or not directory.is_relative_to(top):
            return
        for candidate in (directory, *directory.parents):
            try:
                candidate.rmdir()
            except OSError:  # not empty: another run or backend still spools there
                return
            if candidate == top:
                return

    # -- delivery ---------------------------------------------------------------------------

    def _forward(self, run: SpoolRun, call: Callable[[str], Any]) -> None:
        self._count(run)
        remote_id = run.remote_id
        if remote_id is not None and self._deliver(lambda: call(remote_id)) is not None:
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self._flush_remote()

    def _count(self, run: SpoolRun) -> None:
        run.entries += 1
        if self.failure is not None:
            self.spooled_after_failure += 1

    def _flush_remote(self) -> None:
        """A successful remote flush delivers everything before it: move the watermarks."""
        self._last_flush = time.monotonic()
        pending = {run.run_id: run.entries for run in self._runs.values()}
        if self._deliver(self.remote.flush) is not None:
            for run in self._runs.values():
                run.delivered = pending.get(run.run_id, run.delivered)

    def _deliver(self, call: Callable[[], Any]) -> Any:
        """Run ``call`` against the remote; None if it failed now or earlier (then the remote
        is left alone). The first failure records where every open run stands, and warns."""
        if self.failure is not None:
            return None
        try:
            result = call()
        except Exception as exc:
            self.failure = exc
            for run in self._runs.values():
                write_sync_state(run.path, self.key, run_id=run.remote_id, delivered=run.delivered)
            warnings.warn(
                f"{self.backend_name} failed: {exc!r}; this and every later call is kept in "
                f"{self.spool.project_dir} (replay with: python -m pytest_insidellms sync "
                f"{self.spool.project_dir} --to {self.backend_name})",
                TrackingWarning, stacklevel=4)
            return None
        return True if result is None else result


def _first_missing(path: Path) -> Path | None:
    """The highest ancestor of ``path`` (or ``path`` itself) that does not exist yet."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
