"""What a tracked session shows: the terminal summary section and JUnit XML properties."""

from __future__ import annotations

from typing import Any

import pytest

from ..cases import FinishedCase
from ..wire import Event
from .problems import ProblemSink
from .tracking import TrackedSession


class TrackingReport:
    """A plugin object of its own, registered beside the assembler, and its last consumer:
    JUnit properties are added once the runs have ended (junitxml writes its file after)."""

    def __init__(self, config: pytest.Config, tracked: TrackedSession,
                 problems: ProblemSink) -> None:
        self.config = config
        self.tracked = tracked
        self.problems = problems

    def on_events(self, module: str, nodeid: str, expected: int | None,
                  events: list[Event]) -> None:
        pass

    def on_late_events(self, nodeid: str, events: list[Event]) -> None:
        pass

    def on_case(self, case: FinishedCase) -> None:
        pass

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        if self.tracked.session_run is not None:
            self._record_in_junit()

    def _record_in_junit(self) -> None:
        junit = next((p for p in self.config.pluginmanager.get_plugins()
                      if callable(getattr(p, "add_global_property", None))), None)
        if junit is None:
            return
        mask = self.problems.mask
        junit.add_global_property("insidellms_session_run", mask(str(self.tracked.session_run)))
        for name, location in self.tracked.locations.items():
            if location:
                junit.add_global_property(f"insidellms_{name}", mask(location))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tracked = self.tracked
        if tracked.tracker is None and not self.problems:
            return
        write = terminalreporter.write_line
        terminalreporter.section("insidellms tracking", sep="-")
        if tracked.tracker is not None:
            write(f"session run {tracked.settings.run_name}: {tracked.results_logged} result(s) "
                  f"logged, {tracked.tally.total} test(s) tracked")
            for name, location in tracked.locations.items():
                write(f"  {name}: {self.problems.mask(location or '(no location)')}")
        for line in self.problems.summary_lines():
            write(line, yellow=True)
