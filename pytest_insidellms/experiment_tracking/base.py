"""The tracker contract shared by every backend.

:class:`ExperimentTracker` owns everything that must behave the same on every backend: input
validation and coercion, the step rule, run nesting, statuses and thread safety. A backend only
implements the ``_open_run`` / ``_record_*`` / ``_close_run`` methods, which receive
already-validated data for one specific open run.

Several runs may be open at once. The *active* run is the most recently started run that is
still open; every public call accepts ``run_id=`` to address any other open run instead.
"""

from __future__ import annotations

import copy
import importlib
import math
import numbers
import os
import re
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from types import ModuleType, TracebackType
from typing import Any, Final, Generic, Literal, TypeVar

from ..types import to_jsonable
from .config import TrackingConfig
from .redaction import redact_config, redact_params
from .results import flatten_experiment_result

RunStatus = Literal["finished", "failed", "killed"]
RUN_STATUSES: Final[tuple[str, ...]] = ("finished", "failed", "killed")

#: Keys are mapped to this alphabet on every backend (MLflow's, the strictest).
_KEY_FORBIDDEN = re.compile(r"[^\w.\- :/]")
_KEY_MAX_LENGTH: Final = 250


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
    """Import a backend SDK, or fail with an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'pytest-insidellms[{extra}]'"
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


RunT = TypeVar("RunT", bound=Run)


class ExperimentTracker(ABC, Generic[RunT]):
    """Base class of every tracker. See the module docstring for the model of open runs."""

    #: The name ``create_tracker`` knows this backend by.
    backend_name: str = "custom"

    def __init__(self, config: TrackingConfig | None = None) -> None:
        # A private copy: the caller's config is never mutated, and later changes to it
        # do not leak into runs already configured.
        self.config: TrackingConfig = redact_config(copy.deepcopy(config or TrackingConfig()))
        self._lock = threading.RLock()
        self._runs: dict[str, RunT] = {}
        self._context_runs: list[str] = []

    # -- runs -------------------------------------------------------------------------------

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
        with self._lock:
            if run_id is not None and run_id in self._runs:
                raise RuntimeError(f"run {run_id!r} is already open in {type(self).__name__}")
            parent: RunT | None = None
            if parent_run_id is not None:
                parent = self._open(parent_run_id)
            elif nested:
                parent = self._active_or_none()
            name = run_name or self.config.experiment_name or default_run_name()
            if not isinstance(name, str):
                raise TypeError(f"run_name must be a string, got {type(name).__name__}")
            run = self._open_run(name, run_id, parent)
            self._runs[run.run_id] = run
            return run.run_id

    def end_run(self, status: str = "finished", *, run_id: str | None = None) -> None:
        """End a run (the active one by default) and its open children. No-op with no run."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")
        with self._lock:
            run = self._active_or_none() if run_id is None else self._runs.get(run_id)
            if run is None:
                return
            for child in [r for r in self._runs.values() if r.parent is run]:
                self.end_run(status, run_id=child.run_id)
            del self._runs[run.run_id]
            self._close_run(run, status, utc_now())

    def end_all_runs(self, status: str = "finished") -> None:
        """End every open run, newest first; used when a process shuts down."""
        with self._lock:
            while self._runs:
                self.end_run(status)

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
        """Deliver anything the backend buffers. Trackers that do not buffer do nothing."""

    # -- logging ----------------------------------------------------------------------------

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, *, run_id: str | None = None
    ) -> None:
        """Log numeric metrics. ``step=None`` continues after the highest step seen so far."""
        clean = metrics if type(metrics) is _CheckedMetrics else _CheckedMetrics(
            validate_metrics(metrics))
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise TypeError(f"step must be a non-negative int, got {step!r}")
        with self._lock:
            run = self._resolve(run_id)
            if not clean:
                return
            if step is None:
                step = run.last_step + 1
            run.last_step = max(run.last_step, step)
            self._record_metrics(run, clean, step, utc_now().timestamp())

    def log_params(self, params: Mapping[str, Any], *, run_id: str | None = None) -> None:
        """Log parameters. Values become plain JSON data; secrets are redacted."""
        patterns = self.config.redact_patterns
        if type(params) is _CheckedParams and params.patterns.issuperset(patterns):
            clean = params
        else:
            clean = _CheckedParams(validate_params(params, patterns), frozenset(patterns))
        with self._lock:
            run = self._resolve(run_id)
            if clean:
                self._record_params(run, clean)

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        *,
        run_id: str | None = None,
    ) -> None:
        """Copy or upload a file or directory; the source is left untouched."""
        artifact = validate_artifact(path, name, type)
        with self._lock:
            run = self._resolve(run_id)
            if self.config.log_artifacts:
                self._record_artifact(run, artifact)

    def log_experiment_result(
        self, result: Any, prefix: str = "", *, run_id: str | None = None
    ) -> None:
        """Log an ExperimentResult (or any object shaped like one): one metrics and one
        params call, every name prefixed with ``prefix`` as given."""
        metrics, params = flatten_experiment_result(result, prefix)
        with self._lock:
            self.log_metrics(metrics, run_id=run_id)
            if params:
                self.log_params(params, run_id=run_id)

    # -- context manager --------------------------------------------------------------------

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
        if exc_type is None:
            self.end_run("finished", run_id=run_id)
            return
        status = "failed" if issubclass(exc_type, Exception) else "killed"
        try:
            self.end_run(status, run_id=run_id)
        except Exception as end_error:  # the exception in flight matters more
            warnings.warn(
                f"{type(self).__name__}: ending run {run_id} failed: {end_error!r}",
                TrackingWarning,
                stacklevel=2,
            )

    # -- backend interface ------------------------------------------------------------------

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

    @abstractmethod
    def _record_artifact(self, run: RunT, artifact: Artifact) -> None:
        """Copy or upload ``artifact.source`` under ``artifact.name``."""

    @abstractmethod
    def _close_run(self, run: RunT, status: str, ended_at: datetime) -> None:
        """Flush and finish a run with one of RUN_STATUSES."""

    # -- helpers ----------------------------------------------------------------------------

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
            raise RuntimeError(f"{type(self).__name__} has no active run; call start_run() first")
        return run


# -- validation shared by every backend -------------------------------------------------------


class _CheckedMetrics(dict[str, float]):
    """Metrics a tracker has validated. A tracker that wraps trackers (MultiTracker,
    SpoolingTracker) hands them on as they are, and the wrapped one does not check them again:
    with a spool that was four validations of every call. Never leaves the trackers."""

    __slots__ = ()


class _CheckedParams(dict[str, Any]):
    """Params a tracker has validated and redacted with ``patterns`` (see _CheckedMetrics);
    a tracker with other redaction patterns checks them again."""

    __slots__ = ("patterns",)

    def __init__(self, params: dict[str, Any], patterns: frozenset[str]) -> None:
        super().__init__(params)
        self.patterns = patterns


def sanitize_key(key: Any) -> str:
    """Map a metric or param name to the portable alphabet every backend accepts.

    Characters outside letters, digits, ``_ - . : /`` and space become ``_``; repeated
    slashes collapse; leading and trailing slashes go; ``..`` becomes ``_``, and so does a
    path segment that is just ``.``; names over 250 characters are shortened with a hash of
    the full name so they stay distinct. MLflow treats names as paths and rejects any name
    that a path normalisation would change, hence the slash and dot rules.
    """
    if not isinstance(key, str):
        raise TypeError(f"metric and param names must be strings, got {type(key).__name__}")
    if _is_clean_key(key):
        return key
    clean = _KEY_FORBIDDEN.sub("_", key.strip())
    clean = re.sub(r"/{2,}", "/", clean).strip("/")
    clean = re.sub(r"\.{2,}", "_", clean)
    clean = "/".join("_" if part == "." else part for part in clean.split("/"))
    if not clean:
        raise ValueError(f"metric and param names must not be empty (got {key!r})")
    if len(clean) > _KEY_MAX_LENGTH:
        import hashlib

        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
        clean = f"{clean[: _KEY_MAX_LENGTH - 11]}-{digest}"
    return clean


def _is_clean_key(key: str) -> bool:
    """True when sanitize_key would return ``key`` unchanged (most names; checked without the
    regular-expression rewrites, as every logged name is checked at least once)."""
    return (
        0 < len(key) <= _KEY_MAX_LENGTH
        and _KEY_FORBIDDEN.search(key) is None
        and key.strip() == key
        and key[0] != "/"
        and key[-1] != "/"
        and "//" not in key
        and ".." not in key
        and key != "."
        and not key.startswith("./")
        and not key.endswith("/.")
        and "/./" not in key
    )


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
    clean = {sanitize_key(key): _spell_non_finite(to_jsonable(value)) for key, value in params.items()}
    return redact_params(clean, redact_patterns)


def _spell_non_finite(value: Any) -> Any:
    """Params are plain JSON, which has no NaN or infinity: spell them as strings."""
    if isinstance(value, float) and not is_finite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [_spell_non_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _spell_non_finite(v) for k, v in value.items()}
    return value


def validate_artifact(path: Any, name: str | None, type: str | None) -> Artifact:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"artifact path must be a str or PathLike, got {type_name(path)}")
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"artifact not found: {os.fspath(path)}")
    return Artifact(source=source, name=safe_relative_name(name or source.name), type=type or "file")


def safe_relative_name(name: Any) -> str:
    """An artifact or run name that stays inside its directory: relative, no ``..``."""
    if not isinstance(name, str):
        raise TypeError(f"artifact name must be a string, got {type_name(name)}")
    posix = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or posix.is_absolute() or ".." in parts or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"artifact name {name!r} must be a relative path without '..'")
    return "/".join(parts)


def type_name(value: Any) -> str:
    return type(value).__name__


def is_finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
