"""How :class:`.mlflow.MLflowTracker` sends metrics and params: buffered per run, in
``log_batch`` requests within MLflow's per-request limits, by the caller's thread or a daemon
timer thread (the rules are in :mod:`.mlflow`'s docstring).

:class:`LogBatcher` owns the buffers' rules, the timer thread and the error the thread kept
for the next call; the tracker owns the lock and the runs it shares with the batcher.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from .base import TrackingError, TrackingWarning, sanitize_key
from .names import cut_text

if TYPE_CHECKING:
    from .mlflow import MLflowRun

# MLflow's own limits (mlflow/utils/validation.py; the tests check they still match).
MAX_METRICS_PER_BATCH: Final = 1000
MAX_PARAMS_TAGS_PER_BATCH: Final = 100
MAX_ENTITIES_PER_BATCH: Final = 1000
MAX_BATCH_LOG_REQUEST_SIZE: Final = 1_000_000
MAX_PARAM_VAL_LENGTH: Final = 6000
MAX_TAG_VAL_LENGTH: Final = 8000

#: Our estimate of a request's size is rough; stay well below the server's limit.
_REQUEST_BUDGET: Final = MAX_BATCH_LOG_REQUEST_SIZE * 8 // 10


class LogBatcher:
    """The metric and param buffers of one tracker's runs, and the timer that sends them.

    ``runs`` is the tracker's live mapping of open runs and ``lock`` the lock guarding it;
    ``error`` turns an MLflow failure into the tracker's :class:`TrackingError`.
    """

    def __init__(
        self,
        client: Any,
        entities: Any,
        exception_type: type[Exception],
        error: Callable[[str, BaseException], TrackingError],
        lock: threading.RLock,
        runs: Mapping[str, MLflowRun],
        flush_interval: float,
    ) -> None:
        self._client = client
        self._entities = entities
        self._exception_type = exception_type
        self._error = error
        self._lock = lock
        self._runs = runs
        self.flush_interval = flush_interval
        self._flusher: threading.Thread | None = None
        self._stop_flusher: threading.Event | None = None
        self._background_error: BaseException | None = None

    # -- buffering --------------------------------------------------------------------------

    def record_metrics(
        self, run: MLflowRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        # MLflow's "latest value" is the one with the largest (step, timestamp, value): a
        # strictly increasing timestamp makes the last value logged at a step win.
        when = run.clock = max(ms(timestamp), run.clock + 1)
        run.metrics.extend([(key, value, when, step) for key, value in metrics.items()])
        if len(run.metrics) >= MAX_METRICS_PER_BATCH:
            self.flush_run(run, full_only=True)

    def record_params(self, run: MLflowRun, params: dict[str, Any]) -> None:
        for key, raw in params.items():
            value = cut(param_string(raw), MAX_PARAM_VAL_LENGTH, f"param {key!r}")
            target = key
            current = run.param_latest[key] if key in run.param_latest else (
                run.param_values.get(key))
            if current is not None:
                if current == value:
                    continue
                target = _next_version(run, key)
                run.param_latest[key] = value
            run.param_values[target] = value
            run.params[target] = value
        if len(run.params) >= MAX_PARAMS_TAGS_PER_BATCH:
            self.flush_run(run, full_only=True)

    @staticmethod
    def restore(run: MLflowRun, existing: Any) -> None:
        """Continue a resumed run's clock, last step and param versions from what MLflow
        holds of it (``existing``: its ``mlflow.entities.Run``)."""
        for metric in existing.data.to_proto().metrics:
            run.last_step = max(run.last_step, metric.step)
            run.clock = max(run.clock, metric.timestamp)
        params: dict[str, str] = dict(existing.data.params)
        run.param_values.update(params)
        for key, value in params.items():
            base, dot, version = key.rpartition(".v")
            if (dot and version.isdigit() and base in params
                    and int(version) > run.param_versions.get(base, 1)):
                run.param_versions[base] = int(version)
                run.param_latest[base] = value

    # -- sending ----------------------------------------------------------------------------

    def flush_all(self, idle_only: bool = False) -> None:
        """Send every run's buffer; ``idle_only`` (the timer): only of runs that sent nothing
        for ``flush_interval``. A run whose batches keep filling up has its data on its way,
        and a timer request in between is one more request with params, each of which
        makes MLflow's sql store re-read every param of the run."""
        first_error: BaseException | None = None
        now = time.monotonic()
        for run in list(self._runs.values()):
            if idle_only and now - run.last_sent < self.flush_interval:
                continue
            try:
                self.flush_run(run)
            except Exception as exc:  # noqa: BLE001 - the other runs still deserve their data
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def flush_run(self, run: MLflowRun, full_only: bool = False) -> None:
        """Send the run's buffer in log_batch requests. ``full_only`` (a batch filled up):
        send only full requests and keep the rest buffered; sending the few values past a
        full request in a request of their own doubled the requests, and each request with
        params makes MLflow's sql store re-read every param of the run."""
        while run.metrics or run.params:
            if full_only and not _fills_a_request(run):
                return
            budget = _REQUEST_BUDGET
            params: list[Any] = []
            for key in list(run.params)[:MAX_PARAMS_TAGS_PER_BATCH]:
                size = _json_size(key) + _json_size(run.params[key]) + 32
                if params and size > budget:
                    break
                budget -= size
                params.append(self._entities.Param(key, run.params.pop(key)))
            room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(params))
            count = 0
            for key, *_ in run.metrics[:room]:
                size = _json_size(key) + 96
                if (params or count) and size > budget:
                    break
                budget -= size
                count += 1
            metric = self._entities.Metric
            metrics = [metric(*values) for values in run.metrics[:count]]
            del run.metrics[:count]
            run.last_sent = time.monotonic()
            try:
                self._client.log_batch(
                    run.run_id, metrics=metrics, params=params, synchronous=True
                )
            except self._exception_type as exc:
                what = f"logging {len(metrics)} metrics and {len(params)} params to run"
                raise self._error(f"{what} {run.run_id} failed", exc) from exc

    # -- the timer thread -------------------------------------------------------------------

    def start_timer(self) -> None:
        if self._flusher is not None:
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self._flush_periodically,
            args=(stop,),
            name="insidellms-mlflow-flush",
            daemon=True,
        )
        self._flusher, self._stop_flusher = thread, stop
        thread.start()

    def halt_timer(self) -> threading.Thread | None:
        """Tell the timer thread to stop; return it, for a caller not holding the lock to
        join."""
        # No join here: the caller holds the lock the thread may be waiting for. The thread
        # sees its event as soon as it gets the lock, and exits.
        thread = self._flusher
        if self._stop_flusher is not None:
            self._stop_flusher.set()
        self._flusher = self._stop_flusher = None
        return thread

    def _flush_periodically(self, stop: threading.Event) -> None:
        while not stop.wait(self.flush_interval):
            with self._lock:
                if stop.is_set():
                    return
                try:
                    self.flush_all(idle_only=True)
                except Exception as exc:  # noqa: BLE001 - no caller here; the next call reports it
                    self._background_error = self._background_error or exc

    def raise_background_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is None:
            return
        if isinstance(error, TrackingError):
            raise error
        raise self._error("a background flush failed", error) from error


# -- helpers -----------------------------------------------------------------------------------


def param_string(value: Any) -> str:
    """How a plain-JSON param value is spelled in MLflow: lists and dicts as compact JSON,
    everything else with ``str``."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value if isinstance(value, str) else str(value)


def cut(text: str, limit: int, what: str) -> str:
    """``text`` within one of MLflow's length limits (a :class:`TrackingWarning` when cut)."""
    return cut_text(text, limit, f"MLflow: {what}", TrackingWarning)


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def _next_version(run: MLflowRun, key: str) -> str:
    version = run.param_versions.get(key, 1)
    while True:
        version += 1
        candidate = sanitize_key(f"{key}.v{version}")
        if candidate not in run.param_values:
            run.param_versions[key] = version
            return candidate


def _fills_a_request(run: MLflowRun) -> bool:
    params, metrics = len(run.params), len(run.metrics)
    return (params >= MAX_PARAMS_TAGS_PER_BATCH or metrics >= MAX_METRICS_PER_BATCH
            or params + metrics >= MAX_ENTITIES_PER_BATCH)


def _json_size(text: str) -> int:
    return len(json.dumps(text))
