"""Which backends a session talks to, and building their trackers.

Checked at configure time without importing or opening anything: an unknown name is a usage
error; a missing SDK or a failing ``pytest_insidellms_make_tracker`` hook disables that backend
(a usage error with ``--track-strict``). Trackers are built when the session run opens.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Final

import pytest

from ..defaults import REMOTE_BACKENDS, backend_kwargs, spool_dir
from ..experiment_tracking import create_tracker
from ..experiment_tracking.base import ExperimentTracker
from ..experiment_tracking.spool import SpoolingTracker
from ..options import BUILTIN_BACKENDS, Settings
from .problems import ProblemSink

_SDK_OF: Final = {"mlflow": ("mlflow",), "wandb": ("wandb",),
                  "tensorboard": ("tensorboardX", "torch")}


class Backends:
    def __init__(self, config: pytest.Config, settings: Settings, problems: ProblemSink) -> None:
        self.config = config
        self.settings = settings
        self.problems = problems
        self._custom: dict[str, ExperimentTracker[Any]] = {}
        self.names = self._usable()

    def _usable(self) -> list[str]:
        usable = []
        for name in self.settings.backends:
            try:
                tracker = self._hooked(name) if name not in BUILTIN_BACKENDS else None
            except Exception as exc:  # e.g. an in-house tracker that cannot reach its server
                self.problems.disable(
                    name, f"--track {name}: pytest_insidellms_make_tracker failed: "
                          f"{type(exc).__name__}: {exc}", f"{type(exc).__name__}: {exc}")
                continue
            if tracker is not None:
                self._custom[name] = tracker
                usable.append(name)
                continue
            if name not in BUILTIN_BACKENDS:
                raise pytest.UsageError(
                    f"{self.settings.backends_source}: unknown backend {name!r}; "
                    f"valid: {', '.join(BUILTIN_BACKENDS)} "
                    "(or one provided by a pytest_insidellms_make_tracker hook)")
            if any(importlib.util.find_spec(m) for m in _SDK_OF.get(name, ("json",))):
                usable.append(name)
                continue
            self.problems.disable(
                name, f"--track {name}: its SDK is not installed; install it with: "
                      f"pip install 'pytest-insidellms[{name}]'",
                f"SDK not installed (pip install 'pytest-insidellms[{name}]'): backend disabled")
        return usable

    def _hooked(self, name: str) -> ExperimentTracker[Any] | None:
        tracker: ExperimentTracker[Any] | None = self.config.hook.pytest_insidellms_make_tracker(
            name=name, tracking=self.settings.tracking, track_dir=self.settings.track_dir,
            backend_settings=self.settings.tracking.backends.get(name, {}), config=self.config)
        return tracker

    def make(self, name: str) -> ExperimentTracker[Any]:
        if name in self._custom:
            return self._custom.pop(name)
        hooked = self._hooked(name)
        if hooked is not None:
            return hooked
        track_dir = self.settings.track_dir
        tracker = create_tracker(name, **backend_kwargs(name, self.settings.tracking, track_dir))
        if name in REMOTE_BACKENDS:
            return SpoolingTracker(tracker, spool_dir(track_dir, name))
        return tracker
