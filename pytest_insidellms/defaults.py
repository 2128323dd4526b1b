"""Compatibility names over the backend registry, for code written before it existed.

Where each backend writes when given only a track directory, and which backends are spooled,
now live in :mod:`pytest_insidellms.experiment_tracking.registry` (``BackendSpec.defaults``,
``BackendSpec.remote``, ``BackendSpec.session_tracker``); new code should use that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from .experiment_tracking.config import TrackingConfig
from .experiment_tracking.registry import (
    backend,
    backend_names,
    embedded_mlflow_uri,
    find_backend,
    is_backend,
    spool_dir,
)

__all__ = ["BACKEND_NAMES", "REMOTE_BACKENDS", "backend_kwargs", "embedded_mlflow_uri",
           "spool_dir"]


class RegisteredNames(Sequence[str]):
    """The registered backend names (those ``wanted`` accepts), read each time it is used,
    so that the tuples this replaces also see entry-point backends. ``in`` loads no entry
    point's object for a name that ``wanted`` does not need to look at."""

    def __init__(self, wanted: Callable[[str], bool] | None = None) -> None:
        self._wanted = wanted

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n in backend_names() if self._wanted is None or self._wanted(n))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not is_backend(name):
            return False
        return self._wanted is None or self._wanted(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __repr__(self) -> str:
        return repr(self._names())


def _is_remote(name: str) -> bool:
    try:
        spec = find_backend(name)
    except ImportError:  # a broken entry point: creating it fails first, and says why
        return False
    return spec is not None and spec.remote


#: Every registered backend name (``options.BUILTIN_BACKENDS`` is this).
BACKEND_NAMES: Sequence[str] = RegisteredNames()
#: Backends that talk to something that can be down; their calls are spooled first.
REMOTE_BACKENDS: Sequence[str] = RegisteredNames(_is_remote)


def backend_kwargs(name: str, tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    """Constructor arguments for backend ``name``: embedded defaults under ``track_dir``,
    overridden by the config file's section for that backend."""
    return backend(name).default_kwargs(tracking, track_dir)
