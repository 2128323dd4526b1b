"""Configure the MLflow and W&B SDKs for the trackers without touching ``os.environ``.

Both SDKs read some settings from the process environment, and code under test shares that
environment (and the SDKs' process-global state) with the trackers. Writing a variable, even
briefly, races with test code: the trackers may work on the spool's delivery thread while tests
run. So nothing here writes ``os.environ`` once tests may be running:

* MLflow's HTTP retry/timeout bounds and its URL printing are read through
  ``mlflow.environment_variables`` objects on every request. Those objects get a ``get`` that
  answers the tracker's defaults only on a thread inside :func:`mlflow_scope` and only while
  the user left the variable unset; everyone else reads the environment as before.
* MLflow's telemetry switch is read once, on mlflow's first import: :func:`import_mlflow` sets
  it around that import, which :func:`warm_up` runs before any test can run.
* W&B: the trackers' runs are taken off W&B's list of active runs (``wandb.init`` without
  ``reinit`` returns the newest active run, ``reinit="finish_previous"`` finishes all of
  them); ``reinit="create_new"`` already keeps them out of ``wandb.run``. The mode is an init
  argument; W&B's own analytics, which an offline tracker turns off, is a process-wide switch.
  W&B's service announces itself in ``WANDB_SERVICE``: :func:`warm_up` starts the service
  before the tests and takes the variable back out.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, Final

from .base import import_sdk

#: Applied unless the user set them. Without the first two, a client facing a dead server
#: retries with backoff for minutes; the third stops ``set_terminated`` from printing two
#: "View run" lines per run to the terminal (and from fetching the run again to print them).
MLFLOW_REQUEST_DEFAULTS: Final[dict[str, Any]] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 10,
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": True,
}
_TELEMETRY: Final = "MLFLOW_DISABLE_TELEMETRY"
_WANDB_SERVICE: Final = "WANDB_SERVICE"

_scope = threading.local()
_install_lock = threading.Lock()
_import_lock = threading.Lock()


def import_mlflow() -> ModuleType:
    """Import mlflow with its telemetry off unless the user set ``MLFLOW_DISABLE_TELEMETRY``
    (the telemetry client starts on import and looks up a remote host). The variable is set
    only for the first import and removed after it."""
    with _import_lock:
        if "mlflow" not in sys.modules and _TELEMETRY not in os.environ:
            os.environ[_TELEMETRY] = "true"
            try:
                module = import_sdk("mlflow", "mlflow")
            finally:
                os.environ.pop(_TELEMETRY, None)
        else:
            module = import_sdk("mlflow", "mlflow")
    _install_request_defaults()
    return module


def _install_request_defaults() -> None:
    variables = importlib.import_module("mlflow.environment_variables")
    with _install_lock:
        for name, value in MLFLOW_REQUEST_DEFAULTS.items():
            variable = getattr(variables, name, None)
            if variable is None or getattr(variable, "_insidellms_scoped", False):
                continue
            variable.get = _scoped_get(name, value, variable.get)
            variable._insidellms_scoped = True


def _scoped_get(name: str, value: Any, read: Callable[[], Any]) -> Callable[[], Any]:
    def get() -> Any:
        if getattr(_scope, "depth", 0) and name not in os.environ:
            return value
        return read()

    return get


@contextlib.contextmanager
def mlflow_scope() -> Iterator[None]:
    """MLflow calls made on this thread inside the block use the tracker's request defaults."""
    _scope.depth = getattr(_scope, "depth", 0) + 1
    try:
        yield
    finally:
        _scope.depth -= 1


class ScopedClient:
    """An ``MlflowClient`` whose every method call runs inside :func:`mlflow_scope`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            with mlflow_scope():
                return found(*args, **kwargs)

        return call


# -- W&B ------------------------------------------------------------------------------------


def hide_wandb_run(wandb: ModuleType, handle: Any) -> None:
    """Take a tracker's run off W&B's active runs, so the user's ``wandb.init`` neither
    returns nor finishes it. It stays usable through its handle, and its own ``finish`` works
    as before (removing a run twice is no error in W&B)."""
    setup = getattr(getattr(wandb, "sdk", None), "wandb_setup", None)
    singleton = getattr(setup, "singleton", None)
    if singleton is None:
        return
    remove = getattr(singleton(), "remove_active_run", None)
    if remove is not None:
        remove(handle)


def disable_wandb_analytics() -> None:
    """W&B's analytics exporter contacts a W&B host at exit unless the process-wide settings
    say offline; an offline tracker turns it off rather than setting ``WANDB_MODE``."""
    try:
        proxy = importlib.import_module("wandb.analytics.opentelemetry.opentelemetry_proxy")
    except ImportError:
        return
    disable = getattr(proxy, "disable", None)
    if disable is not None:
        disable()


def start_wandb_service(wandb: ModuleType) -> None:
    """Start W&B's service now and drop the ``WANDB_SERVICE`` variable it leaves behind
    (unless it was there before): this process keeps its connection, and a process the tests
    start sees the environment it would see untracked."""
    had_service = _WANDB_SERVICE in os.environ
    wandb.setup()
    if not had_service:
        os.environ.pop(_WANDB_SERVICE, None)


def warm_up(backends: Iterable[str]) -> list[str]:
    """Import (and for W&B, start) the SDKs of ``backends`` on the calling thread, before any
    test runs, so the few environment writes they need happen then. Returns a problem per SDK
    that failed; the trackers will report it again when they start."""
    problems: list[str] = []
    for backend in backends:
        try:
            if backend == "mlflow":
                import_mlflow()
            elif backend == "wandb":
                start_wandb_service(importlib.import_module("wandb"))
        except Exception as exc:  # noqa: BLE001 - best effort; the tracker reports its own
            problems.append(f"{backend}: {exc}")
    return problems
