"""The tracker contract shared by every backend.

:class:`ExperimentTracker` has two layers:

* the *public edge* (``start_run``, ``log_metrics``, ...) validates and coerces input once,
  resolves the run, and locks;
* the *core* (:class:`TrackerCore`: ``_core_start``, ``_core_metrics``, ...) takes validated
  data for one run object, applies the step rule and the ``log_artifacts`` switch, keeps the
  registry of open runs and calls the backend hooks ``_open_run`` / ``_record_*`` /
  ``_close_run``.

A tracker that wraps trackers (MultiTracker, SpoolingTracker) implements its hooks by calling
the wrapped trackers' core with their own run objects, never their public edge: a value is
validated once however many layers it crosses.

Optional extras (``log_table``, ``log_histogram``, ``flush``, ``close``, ``metric_steps``,
``find_run``) are
*capabilities*: :attr:`ExperimentTracker.capabilities` names those a tracker really provides,
derived from the methods a subclass defines unless the class sets it.

Several runs may be open at once. The *active* run is the most recently started run that is
still open; every public call accepts ``run_id=`` to address any other open run instead.

A subclass written to insideLLMs' contract instead (it overrides the public methods, which do
not take ``run_id=``) is detected when the class is created: it gets hooks that call its
public methods, so it can be instantiated, and the package's machinery drives it through
:class:`~.reference.ReferenceTrackerAdapter` (see :func:`follows_reference_contract`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import numbers
import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Final, Generic, Literal, Protocol, TypeVar, cast

from ..types import to_jsonable
from .config import TrackingConfig
from .names import joins_cleanly
from .names import safe_relative_name as safe_relative_name
from .names import sanitize_key as sanitize_key
from .redaction import redact_config, redact_params
from .results import flatten_experiment_result

RunStatus = Literal["finished", "failed", "killed"]
RUN_STATUSES: Final[tuple[str, ...]] = ("finished", "failed", "killed")

#: Capabilities: the optional extras a tracker may provide.
LOG_TABLE: Final = "log_table"
LOG_HISTOGRAM: Final = "log_histogram"
FLUSH: Final = "flush"
CLOSE: Final = "close"
METRIC_STEPS: Final = "metric_steps"
FIND_RUN: Final = "find_run"
EXTRAS: Final = frozenset({LOG_TABLE, LOG_HISTOGRAM, FLUSH, CLOSE, METRIC_STEPS, FIND_RUN})


class TrackingWarning(UserWarning):
    """A tracking problem that did not stop the caller: a backend failed or a value was coerced."""


class TrackingError(RuntimeError):
    """One or more backends failed; ``errors`` pairs each backend name with its exception."""

    def __init__(self, message: str, errors: list[tuple[str, BaseException]] | None = None):
        super().__init__(message)
        self.errors: list[tuple[str, BaseException]] = list(errors or [])


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def default_run_name(now: datetime | None = None) -> str:
    """The spec's default run name, ``YYYYMMDD_HHMMSS``, in UTC."""
    return (now or utc_now()).strftime("%Y%m%d_%H%M%S")


def import_sdk(module: str, extra: str) -> ModuleType:
    """Import a backend SDK, or fail with an ImportError naming the extra that installs it.
    The message starts as insideLLMs' does (``mlflow is required``), which callers match on."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is required for the {extra} backend; "
            f"install it with: pip install 'pytest-insidellms[{extra}]'",
            name=module,
        ) from exc


@dataclass(eq=False, kw_only=True)
class Run:
    """One open run as the tracker sees it. Backends subclass it to hold their own handles."""

    run_id: str
    name: str
    parent: Run | None = None
    started_at: datetime = field(default_factory=utc_now)
    last_step: int = -1

    @property
    def parent_id(self) -> str | None:
        return None if self.parent is None else self.parent.run_id


@dataclass(frozen=True)
class Artifact:
    """A validated artifact: ``source`` exists; ``name`` is a safe relative POSIX path."""

    source: Path
    name: str
    type: str
    #: The path the caller logged, when ``source`` is a copy of it (a staged snapshot).
    origin: str | None = None


RunT = TypeVar("RunT", bound=Run)


class TrackerCore(ABC, Generic[RunT]):
    """The core of a tracker: validated data for one run object, the registry of open runs,
    the step rule and the backend hooks. Wrapping trackers call it on the trackers they wrap."""

    def __init__(self, config: TrackingConfig | None = None) -> None:
        # A private copy: the caller's config is never mutated, and later changes to it
        # do not leak into runs already configured.
        self.config: TrackingConfig = redact_config(copy.deepcopy(config or TrackingConfig()))
        self._lock = threading.RLock()
        self._runs: dict[str, RunT] = {}

    def _core_start(self, name: str, run_id: str | None, parent: RunT | None) -> RunT:
        with self._lock:
            if run_id is not None and run_id in self._runs:
                raise RuntimeError(f"run {run_id!r} is already open in {type(self).__name__}")
            run = self._open_run(name, run_id, parent)
            self._runs[run.run_id] = run
            return run

    def _core_metrics(
        self, run: RunT, metrics: dict[str, float], step: int | None, timestamp: float
    ) -> None:
        with self._lock:
            self._record_metrics(run, metrics, self._take_step(run, step), timestamp)

    def _stepped(self, run_id: str | None, step: int | None) -> tuple[RunT, int]:
        """The edge of a stepped extra (``log_histogram``): the run, and the step it takes.
        Called with the lock held."""
        check_step(step)
        run = self._resolve(run_id)
        return run, self._take_step(run, step)

    def _take_step(self, run: Run, step: int | None) -> int:
        """The step rule, the one place it lives: ``None`` continues after the highest step
        seen in this run; an explicit step is kept and may go back without rewinding."""
        resolved = run.last_step + 1 if step is None else step
        run.last_step = max(run.last_step, resolved)
        return resolved

    def _core_params(self, run: RunT, params: dict[str, Any]) -> None:
        with self._lock:
            self._record_params(run, params)

    def _core_result(self, run: RunT, metrics: dict[str, float], params: dict[str, Any],
                     step: int | None, timestamp: float) -> None:
        """One logged result: its metrics (taking a step only if there are any) and params."""
        with self._lock:
            taken = self._take_step(run, step) if metrics else None
            self._record_result(run, metrics, params, taken, timestamp)

    def _core_artifact(self, run: RunT, artifact: Artifact) -> None:
        with self._lock:
            if self.config.log_artifacts:
                self._record_artifact(run, artifact)

    def _core_end(self, run: RunT, status: str, ended_at: datetime | None = None) -> None:
        """End ``run`` after its open children; every one is closed even
        when another fails, and the first failure is raised. Ending an ended run is a no-op."""
        with self._lock:
            if self._runs.get(run.run_id) is not run:
                return
            failures: list[Exception] = []
            for child in [r for r in self._runs.values() if r.parent is run]:
                try:
                    self._core_end(child, status, ended_at)
                except Exception as exc:  # noqa: BLE001 - raised below, after the parent
                    failures.append(exc)
            del self._runs[run.run_id]
            self._close_run(run, status, ended_at or utc_now())
            if failures:
                raise failures[0]

    # -- backend hooks --------------------------------------------------------------------------

    @abstractmethod
    def _open_run(self, name: str, run_id: str | None, parent: RunT | None) -> RunT:
        """Create (or resume, when ``run_id`` names an existing run) a run and return it."""

    @abstractmethod
    def _record_metrics(
        self, run: RunT, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        """Record finite or non-finite floats under already-sanitised keys."""

    @abstractmethod
    def _record_params(self, run: RunT, params: dict[str, Any]) -> None:
        """Record plain-JSON param values under already-sanitised keys."""

    def _record_result(self, run: RunT, metrics: dict[str, float], params: dict[str, Any],
                       step: int | None, timestamp: float) -> None:
        """Record one result's metrics (at ``step``, None when there are none) and params,
        either may be empty. The default is the two hooks above; a backend that can store
        both at once (one journal write) overrides it."""
        if metrics:
            assert step is not None
            self._record_metrics(run, metrics, step, timestamp)
        if params:
            self._record_params(run, params)

    @abstractmethod
    def _record_artifact(self, run: RunT, artifact: Artifact) -> None:
        """Copy or upload ``artifact.source`` under ``artifact.name``."""

    @abstractmethod
    def _close_run(self, run: RunT, status: str, ended_at: datetime) -> None:
        """Flush and finish a run with one of RUN_STATUSES."""

    # -- helpers ------------------------------------------------------------------------------

    def _active_or_none(self) -> RunT | None:
        return next(reversed(self._runs.values()), None)

    def _open(self, run_id: str) -> RunT:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RuntimeError(f"no open run with id {run_id!r} in {type(self).__name__}") from None

    def _resolve(self, run_id: str | None) -> RunT:
        if run_id is not None:
            return self._open(run_id)
        run = self._active_or_none()
        if run is None:
            # "No active run" is insideLLMs' wording, which ported code matches on.
            raise RuntimeError(
                f"No active run: {type(self).__name__} has no active run; call start_run() first")
        return run


class ExperimentTracker(TrackerCore[RunT]):
    """Base class of every tracker: the public edge over :class:`TrackerCore`. See the module
    docstring for the two layers."""

    #: The name ``create_tracker`` knows this backend by.
    backend_name: str = "custom"
    #: The extras this tracker provides (see EXTRAS); derived for each subclass from the
    #: methods it defines, unless the class sets it. An instance may narrow or widen it.
    capabilities: frozenset[str] = frozenset()
    #: True for a class written to insideLLMs' contract (see :func:`follows_reference_contract`).
    reference_contract: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "capabilities" not in cls.__dict__:
            cls.capabilities = frozenset(
                name for name in EXTRAS
                if getattr(cls, name, None) not in (None, getattr(ExperimentTracker, name, None)))
        if follows_reference_contract(cls):
            cls.reference_contract = True
            if "capabilities" not in cls.__dict__:
                # Its extras take no run_id= either: nothing may call them as capabilities.
                cls.capabilities = frozenset()
            for hook in _HOOKS:
                if getattr(getattr(cls, hook), "__isabstractmethod__", False):
                    setattr(cls, hook, getattr(_PublicMethodHooks, hook))

    def __init__(self, config: TrackingConfig | None = None) -> None:
        super().__init__(config)
        self._context_runs: list[str] = []

    # -- the public edge: runs ----------------------------------------------------------------

    def start_run(
        self,
        run_name: str | None = None,
        run_id: str | None = None,
        nested: bool = False,
        *,
        parent_run_id: str | None = None,
    ) -> str:
        """Open a run and make it the active one; return its id.

        ``run_id`` resumes that run where the backend can (and creates it under that id on the
        local backend). ``nested=True`` makes the run a child of the active run, or of
        ``parent_run_id`` when given (which implies ``nested``).
        """
        name = run_name or self.config.experiment_name or default_run_name()
        if not isinstance(name, str):
            raise TypeError(f"run_name must be a string, got {type(name).__name__}")
        with self._lock:
            parent: RunT | None = None
            if parent_run_id is not None:
                parent = self._open(parent_run_id)
            elif nested:
                parent = self._active_or_none()
            return self._core_start(name, run_id, parent).run_id

    def end_run(self, status: str = "finished", *, run_id: str | None = None) -> None:
        """End a run (the active one by default) and its open children. No-op with no run."""
        check_status(status)
        with self._lock:
            run = self._active_or_none() if run_id is None else self._runs.get(run_id)
            if run is not None:
                self._core_end(run, status)

    def end_all_runs(self, status: str = "finished") -> None:
        """End every open run, newest first; used when a process shuts down."""
        check_status(status)
        with self._lock:
            while self._runs:
                self._core_end(next(reversed(self._runs.values())), status)

    @property
    def active_run_id(self) -> str | None:
        with self._lock:
            run = self._active_or_none()
            return None if run is None else run.run_id

    @property
    def open_run_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def parent_run_id(self, run_id: str | None = None) -> str | None:
        with self._lock:
            return self._resolve(run_id).parent_id

    def run_location(self, run_id: str | None = None) -> str | None:
        """Where a person finds the run: a path, a URL or a command. None if unknown."""
        return None

    def flush(self) -> None:
        """Deliver anything the backend buffers (the FLUSH capability). Default: nothing."""

    def close(self) -> None:
        """Release what the tracker holds beyond its runs (the CLOSE capability): threads,
        connections. Open runs stay open. Default: nothing."""

    # -- the public edge: logging -------------------------------------------------------------

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, *, run_id: str | None = None
    ) -> None:
        """Log numeric metrics. ``step=None`` continues after the highest step seen so far."""
        clean = validate_metrics(metrics)
        check_step(step)
        with self._lock:
            run = self._resolve(run_id)
            if clean:
                self._core_metrics(run, clean, step, utc_now().timestamp())

    def log_params(self, params: Mapping[str, Any], *, run_id: str | None = None) -> None:
        """Log parameters. Values become plain JSON data; secrets are redacted."""
        clean = validate_params(params, self.config.redact_patterns)
        with self._lock:
            run = self._resolve(run_id)
            if clean:
                self._core_params(run, clean)

    def log_artifact(
        self,
        path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        type: str | None = None,
        *,
        run_id: str | None = None,
        artifact_path: str | os.PathLike[str] | None = None,
        artifact_name: str | None = None,
        artifact_type: str | None = None,
        origin: str | None = None,
    ) -> None:
        """Copy or upload a file or directory; the source is left untouched.

        ``artifact_path``, ``artifact_name`` and ``artifact_type`` are insideLLMs' names for
        ``path``, ``name`` and ``type``; either spelling works, not both for one argument.
        With no run open this raises the no-active-run RuntimeError before the path is read.
        ``origin``: the path to show as its source when ``path`` is a copy (default: ``path``).
        """
        path = _one_of("path", path, "artifact_path", artifact_path)
        name = _one_of("name", name, "artifact_name", artifact_name)
        type = _one_of("type", type, "artifact_type", artifact_type)
        if path is None:
            raise TypeError("log_artifact() needs the artifact's path (path= or artifact_path=)")
        with self._lock:
            run = self._resolve(run_id)
            self._core_artifact(run, validate_artifact(path, name, type, origin))

    def log_experiment_result(
        self, result: Any, prefix: str = "", *, run_id: str | None = None
    ) -> None:
        """Log an ExperimentResult (or any object shaped like one): one metrics and one
        params call, every name prefixed with ``prefix`` as given. Both are validated before
        either is logged."""
        clean_metrics, clean_params = validate_result(result, prefix, self.config.redact_patterns)
        if self.reference_contract:  # its own public methods, as insideLLMs' helper calls them
            if run_id is not None:
                raise TypeError(f"{type(self).__name__} follows insideLLMs' contract: no run_id=")
            self.log_metrics(clean_metrics)
            self.log_params(clean_params)
            return
        with self._lock:
            run = self._resolve(run_id)
            if clean_metrics or clean_params:
                self._core_result(run, clean_metrics, clean_params, None, utc_now().timestamp())

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> ExperimentTracker[RunT]:
        self._context_runs.append(self.start_run(run_name=self.config.experiment_name))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run_id = self._context_runs.pop()
        # A reference-contract end_run ends its one active run and takes no run_id.
        ending: dict[str, Any] = {} if self.reference_contract else {"run_id": run_id}
        if exc_type is None:
            self.end_run("finished", **ending)
            return
        status = "failed" if issubclass(exc_type, Exception) else "killed"
        try:
            self.end_run(status, **ending)
        except Exception as end_error:  # the exception in flight matters more
            warnings.warn(
                f"{type(self).__name__}: ending run {run_id} failed: {end_error!r}",
                TrackingWarning,
                stacklevel=2,
            )


def _one_of(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    if value is not None and alias_value is not None:
        raise TypeError(f"log_artifact() got both {name}= and {alias}=; pass one")
    return alias_value if value is None else value


# -- trackers written to insideLLMs' contract -------------------------------------------------

#: The public methods our machinery calls with ``run_id=``; insideLLMs' take no such keyword.
_RUN_ADDRESSED: Final = ("end_run", "log_metrics", "log_params", "log_artifact")
_REFERENCE_METHODS: Final = ("start_run", *_RUN_ADDRESSED)
_HOOKS: Final = ("_open_run", "_record_metrics", "_record_params", "_record_artifact", "_close_run")


def follows_reference_contract(tracker: Any) -> bool:
    """Whether ``tracker`` (an instance or a class) is written to insideLLMs' contract.

    An ExperimentTracker subclass is, when it overrides one of ``end_run``, ``log_metrics``,
    ``log_params``, ``log_artifact`` with a method that takes no ``run_id`` keyword (a
    refinement of this package's contract must take it: the machinery passes it). Any other
    object is when it has the five public methods of the contract.
    """
    cls = tracker if isinstance(tracker, type) else type(tracker)
    if not issubclass(cls, ExperimentTracker):
        return all(callable(getattr(tracker, name, None)) for name in _REFERENCE_METHODS)
    return any(
        getattr(cls, name) is not getattr(ExperimentTracker, name)
        and not _takes_run_id(getattr(cls, name))
        for name in _RUN_ADDRESSED)


def _takes_run_id(method: Any) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True  # nothing to go on: assume this package's contract
    return any(p.name == "run_id" or p.kind is p.VAR_KEYWORD for p in parameters)


def unique_run_id(candidate: str, taken: Iterable[str]) -> str:
    """``candidate``, or ``candidate_2``, ``_3``...: one not among the open ``taken`` ids.
    A reference-contract tracker may return the same id for every run."""
    used = set(taken)
    n, found = 1, candidate
    while found in used:
        n += 1
        found = f"{candidate}_{n}"
    return found


class _PublicMethodHooks:
    """The hooks given to a reference-contract subclass that leaves them abstract: each calls
    the public method it stands for, on the tracker itself, which has one active run."""

    def _open_run(self: Any, name: str, run_id: str | None, parent: Run | None) -> Run:
        returned = self.start_run(run_name=name, run_id=run_id, nested=parent is not None)
        found = unique_run_id(str(returned or run_id or name), self._runs)
        return Run(run_id=found, name=name, parent=parent)

    def _record_metrics(self: Any, run: Run, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        self.log_metrics(metrics, step)

    def _record_params(self: Any, run: Run, params: dict[str, Any]) -> None:
        self.log_params(params)

    def _record_artifact(self: Any, run: Run, artifact: Artifact) -> None:
        # Positional: insideLLMs' names (artifact_path...) and ours (path...) both receive it.
        self.log_artifact(str(artifact.source), artifact.name, artifact.type)

    def _close_run(self: Any, run: Run, status: str, ended_at: datetime) -> None:
        self.end_run(status)


# -- the extras, as types ---------------------------------------------------------------------


class TableLogger(Protocol):
    def log_table(
        self, name: str, rows: Any, columns: Any = None, *, run_id: str | None = None
    ) -> None: ...


class HistogramLogger(Protocol):
    def log_histogram(
        self, tag: str, values: Any, step: int | None = None, *, run_id: str | None = None
    ) -> None: ...


class StepLister(Protocol):
    def metric_steps(self, run_id: str) -> dict[str, set[int]]: ...


class RunFinder(Protocol):
    def find_run(self, name: str, parent_run_id: str | None, started_after: datetime) -> str | None:
        """The id of a run still open (never ended) with this name and parent, started no
        earlier than ``started_after``: one whose creation was in doubt. None if none."""


def table_logger(tracker: ExperimentTracker[Any]) -> TableLogger | None:
    """``tracker`` as a TableLogger when it declares LOG_TABLE, else None."""
    return cast(TableLogger, tracker) if LOG_TABLE in tracker.capabilities else None


def histogram_logger(tracker: ExperimentTracker[Any]) -> HistogramLogger | None:
    return cast(HistogramLogger, tracker) if LOG_HISTOGRAM in tracker.capabilities else None


def step_lister(tracker: ExperimentTracker[Any]) -> StepLister | None:
    return cast(StepLister, tracker) if METRIC_STEPS in tracker.capabilities else None


def run_finder(tracker: ExperimentTracker[Any]) -> RunFinder | None:
    return cast(RunFinder, tracker) if FIND_RUN in tracker.capabilities else None


# -- validation shared by every backend -------------------------------------------------------


def metric_value(key: str, value: Any) -> float:
    """Coerce a metric value to float: ints, floats and numpy scalars pass; bools, None,
    strings and other objects raise TypeError; NaN and infinities are kept."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":
        raise TypeError(f"metric {key!r}: bool is not a metric value; log 0/1 or use log_params")
    if isinstance(value, numbers.Real) or _is_numpy_number(value):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"metric {key!r}: {value!r} is too large for a float") from None
    raise TypeError(f"metric {key!r}: expected a number, got {type(value).__name__} {value!r:.80}")


def _is_numpy_number(value: Any) -> bool:
    return getattr(value, "shape", None) == () and hasattr(value, "__float__")


def validate_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Validate a whole metrics dict before anything is logged, so a bad value logs nothing."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping of name to number, got {type(metrics).__name__}")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        name = sanitize_key(key)
        clean[name] = metric_value(str(key), value)
    return clean


def validate_params(
    params: Mapping[str, Any], redact_patterns: Iterable[str] = ()
) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    clean = {sanitize_key(key): param_value(value) for key, value in params.items()}
    return redact_params(clean, redact_patterns)


def param_value(value: Any) -> Any:
    """A param value as plain JSON, NaN and infinities spelled as strings."""
    if type(value) in _PLAIN_PARAM:
        return value
    return _spell_non_finite(to_jsonable(value))


#: Exact types a param value keeps as it is (floats may need spelling).
_PLAIN_PARAM: Final = frozenset({str, int, bool, type(None)})


def validate_result(
    result: Any, prefix: str, redact_patterns: Iterable[str] = ()
) -> tuple[dict[str, float], dict[str, Any]]:
    """``flatten_experiment_result`` validated: what ``validate_metrics`` and
    ``validate_params`` would make of its two dicts, in one pass.

    Flattening makes every metric value a float, and most names are the fixed ones it
    writes, which are clean: when the prefix joins cleanly onto them (see
    :func:`~.names.joins_cleanly`) only the names a result brings itself (custom metrics)
    are checked. Anything else takes the general path."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    metrics, params = flatten_experiment_result(result)
    if not joins_cleanly(prefix, metrics, params):
        return (validate_metrics({f"{prefix}{k}": v for k, v in metrics.items()}),
                validate_params({f"{prefix}{k}": v for k, v in params.items()}, redact_patterns))
    clean_params = {f"{prefix}{k}": param_value(v) for k, v in params.items()}
    return ({f"{prefix}{k}": v for k, v in metrics.items()},
            redact_params(clean_params, redact_patterns))


def _spell_non_finite(value: Any) -> Any:
    """Params are plain JSON, which has no NaN or infinity: spell them as strings."""
    if isinstance(value, float) and not is_finite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_spell_non_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _spell_non_finite(v) for k, v in value.items()}
    return value


def check_step(step: Any) -> None:
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise TypeError(f"step must be a non-negative int, got {step!r}")


def check_status(status: Any) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")


def validate_artifact(
    path: Any, name: str | None, type: str | None, origin: str | None = None
) -> Artifact:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"artifact path must be a str or PathLike, got {type_name(path)}")
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"artifact not found: {os.fspath(path)}")
    return Artifact(source=source, name=safe_relative_name(name or source.name),
                    type=type or "file", origin=origin)


def type_name(value: Any) -> str:
    return type(value).__name__


def is_finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
