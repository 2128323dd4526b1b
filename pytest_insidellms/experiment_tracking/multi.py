"""MultiTracker: one run fanned out to several backends."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .base import Artifact, ExperimentTracker, Run, TrackingError, TrackingWarning
from .config import TrackingConfig

ErrorPolicy = Literal["raise", "warn", "ignore"]


@dataclass(eq=False, kw_only=True)
class MultiRun(Run):
    #: For each child tracker (by position) that opened this run, the child's own run id.
    child_ids: dict[int, str] = field(default_factory=dict)


class MultiTracker(ExperimentTracker[MultiRun]):
    """Sends every call to each of ``trackers``.

    Steps are resolved once here and passed explicitly, so every backend records the same step.
    A failing backend never stops the others: each failure is appended to :attr:`errors` and,
    by ``on_error``, raised as one :class:`TrackingError` after every backend had the call
    (``"raise"``), warned once per backend (``"warn"``, the default) or only collected
    (``"ignore"``). ``end_run`` always reaches every backend. The run id is the first
    backend's run id.
    """

    backend_name = "multi"

    def __init__(
        self,
        trackers: Sequence[ExperimentTracker[Any]],
        config: TrackingConfig | None = None,
        on_error: ErrorPolicy = "warn",
    ) -> None:
        if not trackers:
            raise ValueError("MultiTracker needs at least one tracker")
        if on_error not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_error must be 'raise', 'warn' or 'ignore', got {on_error!r}")
        super().__init__(config or trackers[0].config)
        # Each backend applies its own log_artifacts switch; this one only must not stop
        # artifacts from reaching a backend that wants them. (self.config is a private copy.)
        self.config.log_artifacts = any(t.config.log_artifacts for t in trackers)
        self.trackers = list(trackers)
        self.on_error: ErrorPolicy = on_error
        self.errors: list[tuple[str, BaseException]] = []
        self._warned: set[int] = set()

    def child_run_ids(self, run_id: str | None = None) -> dict[str, str]:
        """Each backend's own id for a run, keyed by backend name."""
        with self._lock:
            run = self._resolve(run_id)
            return {self._name(i): cid for i, cid in run.child_ids.items()}

    def locations(self, run_id: str | None = None) -> dict[str, str | None]:
        """Where each backend keeps a run (see :meth:`ExperimentTracker.run_location`)."""
        with self._lock:
            run = self._resolve(run_id)
            found: dict[str, str | None] = {}
            for i, cid in run.child_ids.items():
                try:
                    found[self._name(i)] = self.trackers[i].run_location(cid)
                except Exception:
                    found[self._name(i)] = None
            return found

    def run_location(self, run_id: str | None = None) -> str | None:
        return next((loc for loc in self.locations(run_id).values() if loc), None)

    def flush(self) -> None:
        with self._lock:
            self._fan_out(range(len(self.trackers)), "flush", lambda t, _i: t.flush())

    # -- extras, forwarded to the backends that have them -----------------------------------

    def log_table(self, name: str, rows: Any, columns: Any = None, *, run_id: str | None = None) -> None:
        self._extra("log_table", name, rows, columns, run_id=run_id)

    def log_histogram(
        self, tag: str, values: Any, step: int | None = None, *, run_id: str | None = None
    ) -> None:
        with self._lock:
            run = self._resolve(run_id)
            if step is None:
                step = run.last_step + 1
            run.last_step = max(run.last_step, step)
            self._extra("log_histogram", tag, values, step, run_id=run_id)

    def _extra(self, method: str, *args: Any, run_id: str | None) -> None:
        with self._lock:
            run = self._resolve(run_id)
            targets = [i for i in run.child_ids if hasattr(self.trackers[i], method)]
            self._fan_out(
                targets, method,
                lambda t, i: getattr(t, method)(*args, run_id=run.child_ids[i]),
            )

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: MultiRun | None) -> MultiRun:
        child_ids: dict[int, str] = {}

        def start(tracker: ExperimentTracker[Any], i: int) -> None:
            if parent is None:
                child_ids[i] = tracker.start_run(name, run_id)
            else:
                child_ids[i] = tracker.start_run(name, run_id, parent_run_id=parent.child_ids[i])

        indexes = range(len(self.trackers)) if parent is None else list(parent.child_ids)
        failures = self._fan_out(indexes, "start_run", start, raise_now=False)
        if not child_ids:
            raise TrackingError("no backend could start the run", failures)
        if failures and self.on_error == "raise":
            # The caller gets an exception instead of a run id, so nothing could ever end the
            # runs the healthy backends opened: end them now.
            self._fan_out(child_ids, "end_run",
                          lambda t, i: t.end_run("failed", run_id=child_ids[i]), raise_now=False)
            self._settle(failures)
        return MultiRun(run_id=child_ids[min(child_ids)], name=name, parent=parent,
                        child_ids=child_ids)

    def _record_metrics(
        self, run: MultiRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        self._fan_out(run.child_ids, "log_metrics",
                      lambda t, i: t.log_metrics(metrics, step, run_id=run.child_ids[i]))

    def _record_params(self, run: MultiRun, params: dict[str, Any]) -> None:
        self._fan_out(run.child_ids, "log_params",
                      lambda t, i: t.log_params(params, run_id=run.child_ids[i]))

    def _record_artifact(self, run: MultiRun, artifact: Artifact) -> None:
        self._fan_out(
            run.child_ids, "log_artifact",
            lambda t, i: t.log_artifact(artifact.source, artifact.name, artifact.type,
                                        run_id=run.child_ids[i]),
        )

    def _close_run(self, run: MultiRun, status: str, ended_at: datetime) -> None:
        self._fan_out(run.child_ids, "end_run",
                      lambda t, i: t.end_run(status, run_id=run.child_ids[i]))

    # -- failure policy ---------------------------------------------------------------------

    def _fan_out(
        self,
        indexes: Any,
        operation: str,
        call: Callable[[ExperimentTracker[Any], int], None],
        raise_now: bool = True,
    ) -> list[tuple[str, BaseException]]:
        failures: list[tuple[str, BaseException]] = []
        for i in list(indexes):
            try:
                call(self.trackers[i], i)
            except Exception as exc:
                failures.append((self._name(i), exc))
                self.errors.append((self._name(i), exc))
                if self.on_error == "warn" and i not in self._warned:
                    self._warned.add(i)
                    warnings.warn(
                        f"tracking backend {self._name(i)!r} failed in {operation}: {exc!r}"
                        " (further failures of this backend are collected in MultiTracker.errors)",
                        TrackingWarning,
                        stacklevel=4,
                    )
        if raise_now:
            self._settle(failures)
        return failures

    def _settle(self, failures: list[tuple[str, BaseException]]) -> None:
        if failures and self.on_error == "raise":
            names = ", ".join(f"{name}: {exc!r}" for name, exc in failures)
            raise TrackingError(f"{len(failures)} backend(s) failed: {names}", failures)

    def _name(self, index: int) -> str:
        name = self.trackers[index].backend_name
        same = [t for t in self.trackers if t.backend_name == name]
        return name if len(same) == 1 else f"{name}#{index}"
