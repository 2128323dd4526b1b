"""What a session with tracking or records shows: the terminal summary section (runs, run
files, the scores table, problems) and JUnit XML properties."""

from __future__ import annotations

from typing import Any, Final

import pytest

from ..records import scores_table
from .problems import ProblemSink
from .assembler import CaseConsumer
from .records import SessionRecords
from .tracking import TrackedSession

#: The scores table never gets wider than this, however wide the terminal.
TABLE_WIDTH: Final = 120


class TrackingReport(CaseConsumer):
    """A plugin object of its own, registered beside the assembler, and its last consumer:
    JUnit properties are added once the runs have ended (junitxml writes its file after)."""

    def __init__(self, config: pytest.Config, tracked: TrackedSession | None,
                 records: SessionRecords, problems: ProblemSink) -> None:
        self.config = config
        self.tracked = tracked
        self.records = records
        self.problems = problems

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        if self.tracked is not None and self.tracked.session_run is not None:
            self._record_in_junit(self.tracked)

    def _record_in_junit(self, tracked: TrackedSession) -> None:
        junit = next((p for p in self.config.pluginmanager.get_plugins()
                      if callable(getattr(p, "add_global_property", None))), None)
        if junit is None:
            return
        mask = self.problems.mask
        junit.add_global_property("insidellms_session_run", mask(str(tracked.session_run)))
        for name, location in tracked.locations.items():
            if location:
                junit.add_global_property(f"insidellms_{name}", mask(location))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tracked = self.tracked if self.tracked is not None and self.tracked.tracker else None
        written = self.records.written
        table = self._table()
        if tracked is None and written is None and not table and not self.problems:
            return
        write = terminalreporter.write_line
        terminalreporter.section("insidellms tracking", sep="-")
        if tracked is not None:
            write(f"session run {tracked.settings.run_name}: {tracked.results_logged} result(s) "
                  f"logged, {tracked.tally.total} test(s) tracked")
            for name, location in tracked.locations.items():
                write(f"  {name}: {self.problems.mask(location or '(no location)')}")
        if written is not None:
            write(f"records: {written.directory} ({written.records} record(s), "
                  f"run id {written.run_id})")
        for line in table:
            write(line)
        for line in self.problems.summary_lines():
            write(line, yellow=True)

    def _table(self) -> list[str]:
        summary = self.records.summary
        if summary is None:
            return []
        width = min(self.config.get_terminal_writer().fullwidth, TABLE_WIDTH)
        return scores_table(summary, width=width)
