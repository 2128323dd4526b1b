"""MultiTracker: one run fanned out to several backends.

It validates at its own public edge and hands the validated data to each backend's core
(``_core_metrics`` ...) with that backend's own run object: nothing is checked twice, and the
step is resolved once here, so every backend records the same step. Params are validated
with the union of every backend's redaction patterns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .base import (
    CLOSE,
    FLUSH,
    LOG_HISTOGRAM,
    LOG_TABLE,
    Artifact,
    ExperimentTracker,
    Run,
    TrackingError,
    TrackingWarning,
    histogram_logger,
    table_logger,
)
from .config import TrackingConfig
from .reference import as_contract_tracker

ErrorPolicy = Literal["raise", "warn", "ignore"]


@dataclass(eq=False, kw_only=True)
class MultiRun(Run):
    #: For each backend (by position) that opened this run, the backend's own run object.
    children: dict[int, Run] = field(default_factory=dict)


class MultiTracker(ExperimentTracker[MultiRun]):
    """Sends every call to each of ``trackers``.

    A failing backend never stops the others: each failure is appended to :attr:`errors` and,
    by ``on_error``, raised as one :class:`TrackingError` after every backend had the call
    (``"raise"``), warned once per backend (``"warn"``, the default) or only collected
    (``"ignore"``). ``end_run`` always reaches every backend. The run id is the first
    backend's run id. An extra (``log_table``, ``log_histogram``, ``flush``, ``close``) goes
    to exactly the backends that declare it. A tracker written to insideLLMs' contract is
    wrapped in a :class:`~.reference.ReferenceTrackerAdapter` (``trackers`` holds the adapter).
    """

    backend_name = "multi"

    def __init__(
        self,
        trackers: Sequence[ExperimentTracker[Any]],
        config: TrackingConfig | None = None,
        on_error: ErrorPolicy = "warn",
    ) -> None:
        if not trackers:
            raise ValueError("MultiTracker requires at least one tracker")
        if on_error not in ("raise", "warn", "ignore"):
            raise ValueError(f"on_error must be 'raise', 'warn' or 'ignore', got {on_error!r}")
        trackers = [as_contract_tracker(t) for t in trackers]
        super().__init__(config or trackers[0].config)
        # Each backend applies its own log_artifacts switch; this one only must not stop
        # artifacts from reaching a backend that wants them. (self.config is a private copy.)
        self.config.log_artifacts = any(t.config.log_artifacts for t in trackers)
        patterns = [*self.config.redact_patterns]
        for tracker in trackers:
            patterns += [p for p in tracker.config.redact_patterns if p not in patterns]
        self.config.redact_patterns = patterns
        self.trackers = list(trackers)
        self.capabilities = frozenset({FLUSH, CLOSE}) | frozenset(
            extra for t in trackers for extra in t.capabilities & {LOG_TABLE, LOG_HISTOGRAM})
        self.on_error: ErrorPolicy = on_error
        self.errors: list[tuple[str, BaseException]] = []
        self._warned: set[int] = set()

    def child_run_ids(self, run_id: str | None = None) -> dict[str, str]:
        """Each backend's own id for a run, keyed by backend name."""
        with self._lock:
            run = self._resolve(run_id)
            return {self._name(i): child.run_id for i, child in run.children.items()}

    def locations(self, run_id: str | None = None) -> dict[str, str | None]:
        """Where each backend keeps a run (see :meth:`ExperimentTracker.run_location`)."""
        with self._lock:
            children = dict(self._resolve(run_id).children)
        found: dict[str, str | None] = {}
        for i, child in children.items():
            try:
                found[self._name(i)] = self.trackers[i].run_location(child.run_id)
            except Exception:
                found[self._name(i)] = None
        return found

    def run_location(self, run_id: str | None = None) -> str | None:
        return next((loc for loc in self.locations(run_id).values() if loc), None)

    def flush(self) -> None:
        with self._lock:
            self._fan_out(self._declaring(FLUSH), "flush", lambda t, _i: t.flush())

    def close(self) -> None:
        with self._lock:
            self._fan_out(self._declaring(CLOSE), "close", lambda t, _i: t.close())

    # -- extras, forwarded to the backends that declare them --------------------------------

    def log_table(self, name: str, rows: Any, columns: Any = None, *, run_id: str | None = None) -> None:
        with self._lock:
            run = self._resolve(run_id)
            rows = list(rows)  # one iterable, several backends

            def send(tracker: ExperimentTracker[Any], i: int) -> None:
                logger = table_logger(tracker)
                assert logger is not None
                logger.log_table(name, rows, columns, run_id=run.children[i].run_id)

            self._fan_out(self._declaring(LOG_TABLE, run), "log_table", send)

    def log_histogram(
        self, tag: str, values: Any, step: int | None = None, *, run_id: str | None = None
    ) -> None:
        with self._lock:
            run, resolved = self._stepped(run_id, step)

            def send(tracker: ExperimentTracker[Any], i: int) -> None:
                logger = histogram_logger(tracker)
                assert logger is not None
                logger.log_histogram(tag, values, resolved, run_id=run.children[i].run_id)

            self._fan_out(self._declaring(LOG_HISTOGRAM, run), "log_histogram", send)

    def _declaring(self, capability: str, run: MultiRun | None = None) -> list[int]:
        indexes: Iterable[int] = range(len(self.trackers)) if run is None else run.children
        return [i for i in indexes if capability in self.trackers[i].capabilities]

    # -- backend interface: each backend's core ---------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: MultiRun | None) -> MultiRun:
        children: dict[int, Run] = {}

        def start(tracker: ExperimentTracker[Any], i: int) -> None:
            children[i] = tracker._core_start(name, run_id, None if parent is None else parent.children[i])

        indexes = range(len(self.trackers)) if parent is None else list(parent.children)
        failures = self._fan_out(indexes, "start_run", start, raise_now=False)
        if not children:
            raise TrackingError("no backend could start the run", failures)
        if failures and self.on_error == "raise":
            # The caller gets an exception instead of a run id, so nothing could ever end the
            # runs the healthy backends opened: end them now.
            self._fan_out(children, "end_run",
                          lambda t, i: t._core_end(children[i], "failed"), raise_now=False)
            self._settle(failures)
        return MultiRun(run_id=children[min(children)].run_id, name=name, parent=parent,
                        children=children)

    def _record_metrics(
        self, run: MultiRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        self._fan_out(run.children, "log_metrics",
                      lambda t, i: t._core_metrics(run.children[i], metrics, step, timestamp))

    def _record_params(self, run: MultiRun, params: dict[str, Any]) -> None:
        self._fan_out(run.children, "log_params",
                      lambda t, i: t._core_params(run.children[i], params))

    def _record_result(self, run: MultiRun, metrics: dict[str, float], params: dict[str, Any],
                       step: int | None, timestamp: float) -> None:
        self._fan_out(run.children, "log_experiment_result",
                      lambda t, i: t._core_result(run.children[i], metrics, params, step,
                                                  timestamp))

    def _record_artifact(self, run: MultiRun, artifact: Artifact) -> None:
        self._fan_out(run.children, "log_artifact",
                      lambda t, i: t._core_artifact(run.children[i], artifact))

    def _close_run(self, run: MultiRun, status: str, ended_at: datetime) -> None:
        self._fan_out(run.children, "end_run",
                      lambda t, i: t._core_end(run.children[i], status, ended_at))

    # -- failure policy ---------------------------------------------------------------------

    def _fan_out(
        self,
        indexes: Iterable[int],
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
                        stacklevel=5,
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
