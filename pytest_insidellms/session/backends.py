"""Which backends a session talks to, and building their trackers.

Checked at configure time without importing or opening anything: a name neither the backend
registry nor a ``pytest_insidellms_make_tracker`` hook knows, or a broken entry point, is a
usage error; a missing SDK or a failing hook disables that backend (a usage error with
``--track-strict``). Trackers are built when the session run opens.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..experiment_tracking.base import ExperimentTracker
from ..experiment_tracking.registry import BackendLoadError, backend, backend_names, find_backend
from ..options import Settings
from .problems import ProblemSink


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
                spec = find_backend(name)
            except BackendLoadError as exc:
                raise pytest.UsageError(f"{self.settings.backends_source}: {exc}") from None
            if spec is None:
                if self._provided_by_hook(name):
                    usable.append(name)
                continue
            if spec.sdk_available():
                usable.append(name)
                continue
            self.problems.disable(name, f"--track {name}: its SDK is not installed; install it "
                                        f"with: {spec.install_command}",
                                  f"SDK not installed ({spec.install_command}): backend disabled")
        return usable

    def _provided_by_hook(self, name: str) -> bool:
        """A name the registry does not know: a hook must provide it, now."""
        try:
            tracker = self._hooked(name)
        except Exception as exc:  # e.g. an in-house tracker that cannot reach its server
            self.problems.disable(
                name, f"--track {name}: pytest_insidellms_make_tracker failed: "
                      f"{type(exc).__name__}: {exc}", f"{type(exc).__name__}: {exc}")
            return False
        if tracker is None:
            raise pytest.UsageError(
                f"{self.settings.backends_source}: unknown backend {name!r}; "
                f"valid: {', '.join(backend_names())} "
                "(or one provided by a pytest_insidellms_make_tracker hook)")
        self._custom[name] = tracker
        return True

    def _hooked(self, name: str) -> ExperimentTracker[Any] | None:
        tracker: ExperimentTracker[Any] | None = self.config.hook.pytest_insidellms_make_tracker(
            name=name, tracking=self.settings.tracking, track_dir=self.settings.track_dir,
            backend_settings=self.settings.tracking.backends.get(name, {}), config=self.config)
        return tracker

    def make(self, name: str) -> ExperimentTracker[Any]:
        """The tracker of ``name``: a hook's (which may replace a registered backend), else the
        registry's, with its embedded defaults and, for a remote backend, its spool."""
        if name in self._custom:
            return self._custom.pop(name)
        hooked = self._hooked(name)
        if hooked is not None:
            return hooked
        return backend(name).session_tracker(self.settings.tracking, self.settings.track_dir)
