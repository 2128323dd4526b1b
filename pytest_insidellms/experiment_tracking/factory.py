"""create_tracker and auto_track."""

from __future__ import annotations

import functools
import inspect
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from . import registry
from .base import ExperimentTracker, TrackingWarning
from .reference import as_contract_tracker

#: The built-in backends' specs by name (entry-point backends: ``registry.backend_names()``).
BACKENDS: Final[Mapping[str, registry.BackendSpec]] = registry.builtin_backends()

F = TypeVar("F", bound=Callable[..., Any])


def create_tracker(backend: str = "local", **kwargs: Any) -> ExperimentTracker[Any]:
    """Create a tracker by backend name (built in, or from an installed entry point);
    ``kwargs`` go to its constructor.

    Raises ValueError for an unknown name ("Unknown backend", listing the valid ones),
    ImportError naming what to install when the backend's SDK is missing, and
    :class:`~.registry.BackendLoadError` when the entry point of that name is broken.
    """
    return registry.backend(backend).create(**kwargs)


def auto_track(tracker: ExperimentTracker[Any], experiment_name: str | None = None) -> Callable[[F], F]:
    """Decorate a function so that each call is its own run.

    The run is named ``experiment_name`` or the function's name (the local backend adds a
    suffix instead of overwriting an earlier call's run). A returned mapping has its numeric
    values (not bools) logged as metrics; a returned ExperimentResult is logged with
    ``log_experiment_result``. An exception ends the run ``failed`` and propagates; a
    KeyboardInterrupt ends it ``killed``. The signature is kept, so pytest still injects
    fixtures into a decorated test, and ``async def`` functions are awaited inside the run.
    A tracker written to insideLLMs' contract is driven through a ReferenceTrackerAdapter.
    """
    tracker = as_contract_tracker(tracker)

    def decorate(func: F) -> F:
        name = experiment_name or func.__name__

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                run_id = tracker.start_run(run_name=name)
                with _ending(tracker, run_id):
                    result = await func(*args, **kwargs)
                    _log_return(tracker, result, run_id)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            run_id = tracker.start_run(run_name=name)
            with _ending(tracker, run_id):
                result = func(*args, **kwargs)
                _log_return(tracker, result, run_id)
            return result

        return run_sync  # type: ignore[return-value]

    return decorate


class _ending:
    """Ends ``run_id`` finished, failed (Exception) or killed (any other BaseException)."""

    def __init__(self, tracker: ExperimentTracker[Any], run_id: str) -> None:
        self.tracker, self.run_id = tracker, run_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.tracker.end_run("finished", run_id=self.run_id)
            return
        status = "failed" if issubclass(exc_type, Exception) else "killed"
        try:
            self.tracker.end_run(status, run_id=self.run_id)
        except Exception as end_error:  # the caller's exception matters more
            warnings.warn(
                f"auto_track: ending run {self.run_id} failed: {end_error!r}",
                TrackingWarning,
                stacklevel=2,
            )


def _log_return(tracker: ExperimentTracker[Any], result: Any, run_id: str) -> None:
    if isinstance(result, Mapping):
        values = {
            str(k): float(v)
            for k, v in result.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)
        }
        if values:
            tracker.log_metrics(values, run_id=run_id)
    elif hasattr(result, "results") and hasattr(result, "probe_name"):
        tracker.log_experiment_result(result, run_id=run_id)
