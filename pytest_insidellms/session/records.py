"""The session's run files (``--track-records``) and the data of its scores table.

A consumer of the :class:`~.assembler.CaseAssembler`, placed ahead of tracking: with
``--track``, the files and their params reach the session run before tracking ends it. Each
case becomes its records as it finishes (plain dicts; without ``--track-records``, only the
status counts per experiment that the scores table reads); at the end they are finalized
under the session's run id and written by :mod:`pytest_insidellms.records`, with
``tracking.json`` beside them.

What a record keeps of a case does not depend on the process that ran it: the error is
pytest's crash message (the ``E`` lines), not the traceback, whose locations are relative to
the working directory and which xdist prefixes with a worker header; a returned result is
read in its wire form, as an xdist controller receives it. Every failure here is a tracking
problem of ``records``: a test's outcome never changes and nothing raises into pytest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from .. import __version__
from ..cases import FinishedCase
from ..options import Settings
from ..records import (
    RECORDS,
    RecordsSession,
    RecordsWritten,
    build_records,
    build_summary,
    write_run_directory,
    write_tracking,
)
from ..records.build import record_groups
from ..records.summary import StatusCounts
from ..types import ExperimentResult
from .datasets import declared_datasets
from .problems import ProblemSink
from .assembler import CaseConsumer
from .shards import write_shard_file
from .tracking import TrackedSession, spoolers

if TYPE_CHECKING:
    from .gate import SessionGate

#: What the session run gets: the run directory's files under this artifact name.
ARTIFACT_NAME: Final = "records"
_WORKER_HEADER: Final = re.compile(r"\A\[gw[0-9]+\] [^\n]*\n+")


class SessionRecords(CaseConsumer):
    """Registered as a plugin too, for the session's exit state."""

    def __init__(self, config: pytest.Config, settings: Settings, problems: ProblemSink,
                 tracked: TrackedSession | None,
                 collected: Callable[[], Sequence[str] | None],
                 gate: SessionGate | None = None) -> None:
        self.config = config
        self.settings = settings
        self.problems = problems
        self.tracked = tracked
        self.directory = settings.records_dir
        self._collected = collected
        self.gate = gate
        #: Every case's records are kept for the run files or the gate; else only counts.
        self._keep = self.directory is not None or gate is not None
        self._hidden = hidden_paths(config, settings)
        # Records are drafted under a placeholder run id, and finalized under the real one.
        self._draft = RecordsSession(settings.tracking.project, (), hidden_paths=self._hidden)
        self._records: list[dict[str, Any]] = []
        self._counts = StatusCounts()
        self._timings: list[FinishedCase] = []
        self._session: pytest.Session | None = None
        self._started = time.time()
        #: summary.json's content once the session ended (also without run files).
        self.summary: dict[str, Any] | None = None
        self.written: RecordsWritten | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session

    # -- what the assembler hands over ------------------------------------------------------

    def on_case(self, case: FinishedCase) -> None:
        if not self._keep:  # the scores table only: statuses and groups suffice
            with self.problems.guard(ARTIFACT_NAME, hold_warnings=False):
                self._counts.add_groups(case.module, record_groups(case))
            return
        with self.problems.guard(ARTIFACT_NAME):
            case = portable(case)
            self._records.extend(build_records(self._draft, [case]))
            self._timings.append(FinishedCase(
                case.nodeid, case.module, case.outcome, latency_ms=case.latency_ms,
                started=case.started, stopped=case.stopped, trial=case.trial))

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        if self.config.getoption("collectonly", False):
            return
        completed = not (killed or internal_error or self._stopped())
        comparison = None
        if self.gate is not None:
            comparison = self.gate.judge(self._records, completed=completed)
        with self.problems.guard(ARTIFACT_NAME):
            if self.directory is not None:
                self._write(self.directory, completed, comparison)
            elif self._keep:
                self.summary = build_summary(self._records)
            else:
                self.summary = self._counts.summary()

    # -- the run files ----------------------------------------------------------------------

    def _write(self, directory: Path, completed: bool, comparison: str | None) -> None:
        collected = self._collected() or [r["custom"]["nodeid"] for r in self._records]
        session = RecordsSession(
            self.settings.tracking.project, collected, library_version=__version__,
            run_completed=completed, hidden_paths=self._hidden,
            datasets=declared_datasets(self.config, self.settings, self.problems))
        written = write_run_directory(directory, session, self._records,
                                      comparison_html=comparison)
        gate_files = self.gate.write_files(directory) if self.gate is not None else ()
        self.written, self.summary = written, written.summary
        shard_file = write_shard_file(directory, self.settings, session, self._records)
        if shard_file is not None:
            self.written = dataclasses.replace(written, files=(*written.files, shard_file))
        digest = hashlib.sha256((directory / RECORDS).read_bytes()).hexdigest()
        write_tracking(directory, written.run_id, backends=self._backends(),
                       cases=self._timings, started=self._started, stopped=time.time(),
                       extra={"project": self.settings.tracking.project,
                              "session_run_name": self.settings.run_name,
                              "records_sha256": digest})
        if self.tracked is not None:
            self._attach(directory, gate_files, {"records_dir": str(directory), "records_sha256": digest,
                                     "records_run_id": written.run_id})

    def _attach(self, directory: Path, extra: Sequence[Path], params: dict[str, Any]) -> None:
        """The files, copied as one directory (the user's directory may hold others)."""
        assert self.tracked is not None
        with tempfile.TemporaryDirectory(prefix="insidellms-records-") as scratch:
            staged = Path(scratch) / ARTIFACT_NAME
            staged.mkdir()
            assert self.written is not None
            for path in (*self.written.files, directory / "tracking.json", *extra):
                shutil.copy2(path, staged / path.name)
            self.tracked.log_to_session(params, staged, ARTIFACT_NAME, "records")

    def _backends(self) -> dict[str, Any]:
        tracked = self.tracked
        if tracked is None or tracked.tracker is None or tracked.session_run is None:
            return {}
        # Tracking reads the locations only once it has ended its runs: ask the tracker. A
        # spooled (remote) backend's run is known here by its spool's id, the run's name; its
        # own id is learnt later, on the delivery thread.
        run_ids = tracked.tracker.child_run_ids(tracked.session_run)
        locations = tracked.tracker.locations(tracked.session_run)
        spooled = {spooler.backend_name for spooler in spoolers(tracked.tracker)}
        mask = self.problems.mask  # a tracking URI may carry credentials; CI keeps this file
        return {name: {"run_id": run_ids.get(name), "location": mask(location) if location
                       else location, "spooled": name in spooled}
                for name, location in locations.items()}

    def _stopped(self) -> bool:
        """The session ended before running everything it selected (-x, Ctrl-C, exit)."""
        session = self._session
        if session is None:
            return False
        return bool(session.shouldstop or session.shouldfail
                    or session.exitstatus == pytest.ExitCode.INTERRUPTED)


def hidden_paths(config: pytest.Config, settings: Settings) -> tuple[str, ...]:
    """Absolute paths that differ between two checkouts or runs of the same session."""
    paths = [config.rootpath, config.invocation_params.dir, settings.track_dir]
    if settings.records_dir is not None:
        paths.append(settings.records_dir)
    basetemp = config.getoption("basetemp", None)
    if basetemp:
        paths.append(Path(basetemp).absolute())
    return tuple(dict.fromkeys(str(p) for p in paths))


def portable(case: FinishedCase) -> FinishedCase:
    """``case`` as any process would have seen it (see the module's docstring)."""
    results = tuple(
        dataclasses.replace(logged, result=ExperimentResult.from_dict(logged.result.to_dict()))
        for logged in case.results)
    return dataclasses.replace(case, error=crash_message(case.error), results=results)


def crash_message(text: str | None) -> str | None:
    """What pytest's failure text says went wrong, without where: the last block of its
    ``E`` lines, dedented; a text without any (a crashed worker, ``--tb=native``) loses only
    an xdist worker header."""
    if text is None:
        return None
    block: list[str] = []
    for line in reversed(text.splitlines()):
        if line == "E" or line.startswith("E "):
            block.append(line[1:])
        elif block:
            break
    if block:
        return textwrap.dedent("\n".join(reversed(block))).strip()
    return _WORKER_HEADER.sub("", text).strip()
