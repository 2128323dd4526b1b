"""A fake backend for tests: :class:`RecordingTracker`.

For people who write a backend (to see exactly what the library hands one) or test code that
logs (to assert what it logged). It is a real :class:`~pytest_insidellms.ExperimentTracker`:
the public calls validate, resolve runs and apply the step rule as on every backend, and what
reaches the backend is kept in plain attributes:

* :attr:`RecordingTracker.calls`: every backend call in order, as tuples
  ``(operation, run_id, *details)``; :meth:`RecordingTracker.calls_of` filters one operation;
* :attr:`RecordingTracker.runs`: every run ever opened, by id, with its name, parent, tags,
  status, metric points, merged params and artifacts (their bytes, copied at call time).

Failures can be injected: every operation named in ``fail_on`` (``"start_run"``,
``"log_metrics"``, ``"log_params"``, ``"log_artifact"``, ``"end_run"``, ``"flush"``,
``"close"``, ``"log_table"``, ``"log_histogram"``, ``"metric_steps"``, ``"find_run"``) is
recorded, then raises ``error``. ``fail_on`` is a set you may change while a test runs. The
extras it claims are ``capabilities`` (all of them by default).

Example::

    from pytest_insidellms.testing import RecordingTracker

    def test_my_eval_logs_its_accuracy():
        tracker = RecordingTracker()
        with tracker:
            run_my_eval(tracker)            # calls tracker.log_metrics({"accuracy": ...})
        (run,) = tracker.runs.values()
        assert run.status == "finished"
        assert run.history("accuracy") == [(0, 0.75)]

Importing this module imports neither pytest nor any backend SDK.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .experiment_tracking.base import EXTRAS, Artifact, ExperimentTracker, Run
from .experiment_tracking.config import TrackingConfig

__all__ = ["OPERATIONS", "MetricPoint", "RecordedArtifact", "RecordedRun", "RecordingTracker"]

#: What ``fail_on`` may name: the public operations, each recorded under this name.
OPERATIONS: Final = frozenset(
    {"start_run", "log_metrics", "log_params", "log_artifact", "end_run"} | EXTRAS)


@dataclass(frozen=True)
class MetricPoint:
    step: int
    values: dict[str, float]
    timestamp: float


@dataclass(frozen=True)
class RecordedArtifact:
    """``content``: the file's bytes, or for a directory its files' bytes by relative POSIX
    path, as they were when the call was made (None with ``copy_artifacts=False``)."""

    name: str
    type: str
    source: Path
    content: bytes | dict[str, bytes] | None


@dataclass(eq=False, kw_only=True)
class RecordedRun(Run):
    project: str
    tags: list[str]
    #: The run was opened with an explicit ``run_id`` (a resume, or a chosen id).
    resumed: bool = False
    #: None while the run is open.
    status: str | None = None
    ended_at: datetime | None = None
    metrics: list[MetricPoint] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    artifacts: list[RecordedArtifact] = field(default_factory=list)
    tables: list[tuple[str, list[Any], Any]] = field(default_factory=list)
    histograms: list[tuple[str, Any, int]] = field(default_factory=list)

    def history(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of every point logged for metric ``key``, in order."""
        return [(p.step, p.values[key]) for p in self.metrics if key in p.values]

    @property
    def last_metrics(self) -> dict[str, float]:
        """The last value logged for each metric."""
        last: dict[str, float] = {}
        for point in self.metrics:
            last.update(point.values)
        return last


class RecordingTracker(ExperimentTracker[RecordedRun]):
    """Records what a backend receives (see the module docstring).

    ``id_format`` names new runs: ``{name}`` is the run name, ``{index}`` counts the runs
    opened before (from 0), ``{number}`` from 1. ``error`` is the exception to raise for an
    operation in ``fail_on`` (a copy is raised each time), or a function of the operation's
    name returning one; by default an OSError naming the operation.
    """

    backend_name = "recording"

    def __init__(
        self,
        config: TrackingConfig | None = None,
        *,
        backend_name: str | None = None,
        capabilities: Iterable[str] = EXTRAS,
        fail_on: Collection[str] = (),
        error: BaseException | Callable[[str], BaseException] | None = None,
        id_format: str = "{name}#{index}",
        copy_artifacts: bool = True,
    ) -> None:
        super().__init__(config)
        if backend_name is not None:
            self.backend_name = backend_name
        self.capabilities = frozenset(capabilities)
        unknown = sorted((self.capabilities - EXTRAS) | (set(fail_on) - OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operations or capabilities: {', '.join(unknown)}")
        self.fail_on: set[str] = set(fail_on)
        self.error = error
        self.id_format = id_format
        self.copy_artifacts = copy_artifacts
        self.calls: list[tuple[Any, ...]] = []
        self.runs: dict[str, RecordedRun] = {}
        self._opened = itertools.count()

    def calls_of(self, operation: str) -> list[tuple[Any, ...]]:
        """The calls of one operation, each without its operation name: ``(run_id, ...)``."""
        return [call[1:] for call in self.calls if call[0] == operation]

    def run_location(self, run_id: str | None = None) -> str | None:
        """``<backend_name>://<run id>``, for any run id (as a server's URL would be)."""
        with self._lock:
            return f"{self.backend_name}://{run_id or self._resolve(None).run_id}"

    # -- extras -----------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            self._call("flush", None)

    def close(self) -> None:
        with self._lock:
            self._call("close", None)

    def log_table(self, name: str, rows: Any, columns: Any = None, *, run_id: str | None = None) -> None:
        with self._lock:
            run = self._resolve(run_id)
            rows = list(rows)
            self._call("log_table", run.run_id, name, rows, columns)
            run.tables.append((name, rows, columns))

    def log_histogram(
        self, tag: str, values: Any, step: int | None = None, *, run_id: str | None = None
    ) -> None:
        with self._lock:
            run, resolved = self._stepped(run_id, step)
            self._call("log_histogram", run.run_id, tag, values, resolved)
            run.histograms.append((tag, values, resolved))

    def metric_steps(self, run_id: str) -> dict[str, set[int]]:
        """The steps each metric of a run already has (``sync`` skips those points)."""
        with self._lock:
            self._call("metric_steps", run_id)
            run = self.runs.get(run_id)
            steps: dict[str, set[int]] = {}
            for point in run.metrics if run is not None else ():
                for key in point.values:
                    steps.setdefault(key, set()).add(point.step)
            return steps

    def find_run(self, name: str, parent_run_id: str | None, started_after: datetime) -> str | None:
        """The newest open recorded run with this name and parent, started no earlier than
        ``started_after`` (a run whose creation the caller never heard back about)."""
        with self._lock:
            self._call("find_run", None, name, parent_run_id)
            found = [run for run in self.runs.values()
                     if run.name == name and run.parent_id == parent_run_id
                     and run.status is None and run.started_at >= started_after]
            return max(found, key=lambda run: run.started_at).run_id if found else None

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: RecordedRun | None) -> RecordedRun:
        index = next(self._opened)
        new_id = run_id or self.id_format.format(name=name, index=index, number=index + 1)
        self._call("start_run", new_id, name, None if parent is None else parent.run_id)
        earlier = self.runs.get(new_id)
        if earlier is not None:  # a resume: carry on where the run stopped
            earlier.parent, earlier.status, earlier.ended_at = parent, None, None
            return earlier
        run = RecordedRun(run_id=new_id, name=name, parent=parent, project=self.config.project,
                          tags=list(self.config.tags), resumed=run_id is not None)
        self.runs[new_id] = run
        return run

    def _record_metrics(
        self, run: RecordedRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        self._call("log_metrics", run.run_id, dict(metrics), step)
        run.metrics.append(MetricPoint(step, dict(metrics), timestamp))

    def _record_params(self, run: RecordedRun, params: dict[str, Any]) -> None:
        self._call("log_params", run.run_id, copy.deepcopy(params))
        run.params.update(copy.deepcopy(params))

    def _record_artifact(self, run: RecordedRun, artifact: Artifact) -> None:
        self._call("log_artifact", run.run_id, artifact)
        content = _read_content(artifact.source) if self.copy_artifacts else None
        run.artifacts.append(RecordedArtifact(artifact.name, artifact.type, artifact.source, content))

    def _close_run(self, run: RecordedRun, status: str, ended_at: datetime) -> None:
        self._call("end_run", run.run_id, status)
        run.status, run.ended_at = status, ended_at

    # -- failure injection ------------------------------------------------------------------

    def _call(self, operation: str, run_id: str | None, *details: Any) -> None:
        """Record a call, then fail it if asked to."""
        self.calls.append((operation, run_id, *details))
        if operation not in self.fail_on:
            return
        if self.error is None:
            raise OSError(f"{self.backend_name}: {operation} failed (injected)")
        if isinstance(self.error, BaseException):
            raise copy.copy(self.error)
        raise self.error(operation)


def _read_content(source: Path) -> bytes | dict[str, bytes]:
    if not source.is_dir():
        return source.read_bytes()
    return {path.relative_to(source).as_posix(): path.read_bytes()
            for path in sorted(source.rglob("*")) if path.is_file()}
