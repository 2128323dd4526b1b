"""The session's runs: one session run, a run per module, everything logged into them.

Fed by the :class:`~.assembler.CaseAssembler` with each report's events as they arrive and with
each test once it finished. Runs open lazily, on the first report (``--collect-only`` and
``--help`` open nothing); a module run ends as soon as its last test finished. Each finished
test is also one case line in its module run's journals on this machine (the local run, the
spools), so a killed session loses no outcome and no marker case. Every backend
call goes through the problem sink's guard: nothing here can raise into pytest.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from .. import __version__
from ..cases import FinishedCase, LoggedResult
from ..experiment_tracking import MultiTracker
from ..experiment_tracking.journal import CaseEntry, HeldFile, JournalWriter
from ..experiment_tracking.local import LocalFileTracker
from ..experiment_tracking.spool import SpoolingTracker
from ..fixture import STAGING
from ..plugin import TRACK_DIR_MARKER
from ..session_info import session_params
from ..wire import ArtifactEvent, Event, MetricsEvent, ParamsEvent, ProblemEvent, ResultEvent
from .assembler import CaseConsumer
from .backends import Backends
from .datasets import dataset_params, declared_datasets
from .experiments import ExperimentAggregate, case_line
from .outcomes import Tally
from .problems import ProblemSink

#: Running outcome counts are re-logged at most this often per run (and always at its end).
LIVE_INTERVAL_SECONDS: Final = 2.0


@dataclass
class ModuleRun:
    """The run of one test module, open until its last test finished."""

    path: str
    run_id: str
    tally: Tally = field(default_factory=Tally)
    expected: int | None = None
    finished: int = 0
    experiments: dict[str, ExperimentAggregate] = field(default_factory=dict)
    last_live: float = 0.0
    #: The run's journals on this machine (the local backend's, the spools'): each finished
    #: case is appended there at once, so a killed session still has it.
    journals: list[JournalWriter] = field(default_factory=list)

    def add_case(self, case: FinishedCase) -> ExperimentAggregate | None:
        """Count a finished case in; return its experiment once every case of it is in."""
        self.tally.add(case)
        self.finished += 1
        if case.experiment is None:
            return None
        name = case.experiment.name
        experiment = self.experiments.get(name)
        if experiment is None:
            experiment = self.experiments[name] = ExperimentAggregate(self.path, case.experiment)
        experiment.add(case)
        return experiment if experiment.complete else None

    def journal_case(self, case: FinishedCase, problems: ProblemSink) -> None:
        if self.journals:
            entry = CaseEntry(case_line(case))
            with problems.guard("journal", hold_warnings=False):
                for journal in self.journals:
                    journal.append(entry)

    @property
    def done(self) -> bool:
        return self.expected is not None and self.finished >= self.expected


class TrackedSession(CaseConsumer):
    def __init__(self, config: pytest.Config, backends: Backends, problems: ProblemSink) -> None:
        self.config = config
        self.settings = backends.settings
        self.backends = backends
        self.problems = problems
        self.tracker: MultiTracker | None = None
        self.session_run: str | None = None
        self.locations: dict[str, str | None] = {}
        self.tally = Tally()
        self.results_logged = 0
        self._last_live = 0.0
        self._modules: dict[str, ModuleRun] = {}
        self._tried = False
        self._track_dir = _TrackDirKeeper(self.settings.track_dir, problems)
        self._errors_seen = 0
        #: Keeps the journals of the modules running now open for their case lines.
        self._held = HeldFile()

    # -- opening ----------------------------------------------------------------------------

    def open(self) -> bool:
        """Create the backends and the session run (once). False: tracking is off."""
        if self.tracker is not None or self._tried:
            return self.tracker is not None
        self._tried = True
        self._track_dir.note_whether_ours()
        tracker = _make_tracker(self.backends, self.problems)
        if tracker is None:
            return False
        with self.problems.guard():
            self.session_run = tracker.start_run(run_name=self.settings.run_name)
        self._collect_errors(tracker)
        if self.session_run is None:
            return False
        self.tracker = tracker
        self._track_dir.mark()
        params = _session_run_params(self.config, self.backends, self.problems)
        self._call(lambda t: t.log_params(params, run_id=self.session_run))
        return True

    def _module(self, path: str, expected: int | None) -> ModuleRun | None:
        """The module's run, opened on its first report; None if it could not be."""
        module = self._modules.get(path)
        if module is None:
            run_id = self._call(lambda t: t.start_run(path, parent_run_id=self.session_run))
            if run_id is None:
                return None
            module = self._modules[path] = ModuleRun(path, run_id)
            module.journals = self._call(lambda t: case_journals(t, run_id, self._held)) or []
            source = self.config.rootpath / path
            if self.settings.tracking.log_code and source.is_file():
                self._call(lambda t: t.log_artifact(source, f"code/{source.name}", "code",
                                                    run_id=run_id))
        if expected:
            module.expected = expected
        return module

    # -- what the assembler hands over ------------------------------------------------------

    def on_events(self, module_path: str, nodeid: str, expected: int | None,
                  events: list[Event]) -> None:
        if not self.open():
            _discard_staged(events)
            return
        module = self._module(module_path, expected)
        if module is None:
            _discard_staged(events)
            return
        for event in events:
            run_id = module.run_id if event.target == "module" else self.session_run
            assert run_id is not None
            if isinstance(event, ResultEvent):
                self._log_result(LoggedResult(event.result, event.prefix, event.origin,
                                              event.params), run_id, nodeid)
            elif isinstance(event, ProblemEvent):
                self.problems.failure("tracker fixture", OSError(f"{nodeid}: {event.message}"))
            else:
                self._call(_replay(event, run_id))

    def on_late_events(self, nodeid: str, events: list[Event]) -> None:
        """Logged into the test's module run while it is open; after, a problem."""
        module = self._modules.get(nodeid.split("::", 1)[0])
        if module is not None:
            self.on_events(module.path, nodeid, None, events)
            return
        _discard_staged(events)
        if self.tracker is not None:
            self.problems.failure("tracker fixture", RuntimeError(
                f"{nodeid}: {len(events)} call(s) made after the test and its module's run "
                "had ended (from a thread the test left running?) were not logged"))

    def on_case(self, case: FinishedCase) -> None:
        if not self.open():
            return
        module = self._module(case.module, None)
        if module is None:
            return
        module.journal_case(case, self.problems)
        complete = module.add_case(case)
        self.tally.add(case)
        if complete is not None:
            self._log_experiment(module, complete)
        now = time.monotonic()
        if now - module.last_live >= LIVE_INTERVAL_SECONDS:
            module.last_live = now
            self._log_tally(module.run_id, module.tally)
        if now - self._last_live >= LIVE_INTERVAL_SECONDS:
            self._last_live = now
            self._log_tally(self.session_run, self.tally)
        if module.done:
            self._end_module(module)

    # -- logging ----------------------------------------------------------------------------

    def _log_result(self, logged: LoggedResult, run_id: str, nodeid: str) -> None:
        if _vetoed(logged, nodeid, self.config, self.problems):
            return
        self._call(lambda t: t.log_experiment_result(logged.result, logged.prefix, run_id=run_id))
        if logged.params:
            params = {f"{logged.prefix}{k}": v for k, v in logged.params.items()}
            self._call(lambda t: t.log_params(params, run_id=run_id))
        self.results_logged += 1

    def _log_experiment(self, module: ModuleRun, experiment: ExperimentAggregate) -> None:
        del module.experiments[experiment.info.name]
        logged = experiment.logged_result()
        if logged is not None:
            self._log_result(logged, module.run_id, experiment.experiment_id)

    def _log_tally(self, run_id: str | None, tally: Tally) -> None:
        if run_id is not None and self.settings.tracking.auto_log_metrics:
            metrics = tally.metrics()
            self._call(lambda t: t.log_metrics(metrics, run_id=run_id))

    # -- ending -----------------------------------------------------------------------------

    def _end_module(self, module: ModuleRun, status: str | None = None) -> None:
        for experiment in list(module.experiments.values()):
            self._log_experiment(module, experiment)
        self._log_tally(module.run_id, module.tally)
        status = status or ("failed" if module.tally.failing else "finished")
        self._held.close()
        self._call(lambda t: t.end_run(status, run_id=module.run_id))
        del self._modules[module.path]

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        """End every open run: ``killed`` after a signal, else by the outcomes."""
        self._track_dir.remove_empty_staging()
        if self.tracker is None:
            return
        self._track_dir.mark()
        for module in list(self._modules.values()):
            self._end_module(module, "killed" if killed else None)
        self._log_tally(self.session_run, self.tally)
        # Read now, not when the session opened: a remote's location may wait for its
        # delivery thread, which must never happen on a test's clock.
        with self.problems.guard():
            self.locations = self.tracker.locations(self.session_run)
        failed = self.tally.failing or internal_error
        status = "killed" if killed else ("failed" if failed else "finished")
        self._call(lambda t: t.end_run(status, run_id=self.session_run))
        self._call(lambda t: t.flush())
        _report_outages(spoolers(self.tracker), self.problems)

    def log_to_session(self, params: dict[str, Any], artifact: Path | None = None,
                       name: str | None = None, type: str | None = None, *,
                       metrics: dict[str, float] | None = None) -> bool:
        """Log params (metrics, an artifact) into the session run while it is open: a
        consumer ahead of this one calls it from its own ``on_finish``. False when no run is
        open."""
        if self.tracker is None or self.session_run is None:
            return False
        run_id = self.session_run
        self._call(lambda t: t.log_params(params, run_id=run_id))
        if metrics:
            self._call(lambda t: t.log_metrics(metrics, run_id=run_id))
        if artifact is not None:
            self._call(lambda t: t.log_artifact(artifact, name, type, run_id=run_id))
        return True

    # -- failure handling -------------------------------------------------------------------

    def _call(self, operation: Callable[[MultiTracker], Any]) -> Any:
        """One operation on the multi-tracker; backend failures are collected, not raised.
        Returns what the operation returned (None if it raised)."""
        assert self.tracker is not None
        returned = None
        with self.problems.guard():
            returned = operation(self.tracker)
        self._collect_errors(self.tracker)
        return returned

    def _collect_errors(self, tracker: MultiTracker) -> None:
        for name, exc in tracker.errors[self._errors_seen:]:
            self.problems.failure(name, exc)
        self._errors_seen = len(tracker.errors)


class _TrackDirKeeper:
    """The track dir's housekeeping: marking one this session created, and removing the
    fixture's staging directory once nothing waits there."""

    def __init__(self, track_dir: Path, problems: ProblemSink) -> None:
        self._track_dir = track_dir
        self._problems = problems
        self._ours = False

    def note_whether_ours(self) -> None:
        """Called before the backends create it: one that exists already is the user's."""
        self._ours = not self._track_dir.exists()

    def mark(self) -> None:
        if self._ours:  # one that existed is the user's (--track-dir=.)
            with self._problems.guard():
                mark_track_dir(self._track_dir)

    def remove_empty_staging(self) -> None:
        with contextlib.suppress(OSError):  # fixture artifacts wait there; gone once replayed
            (self._track_dir / STAGING).rmdir()


def _vetoed(logged: LoggedResult, nodeid: str, config: pytest.Config,
            problems: ProblemSink) -> bool:
    """A ``pytest_insidellms_result`` hook returned False: the result is not logged."""
    if not config.hook.pytest_insidellms_result.get_hookimpls():
        return False  # calling a hook nobody implements still costs a dozen calls
    verdicts = problems.call_hook("pytest_insidellms_result", result=logged.result,
                                  nodeid=nodeid, prefix=logged.prefix, config=config)
    return any(v is False for v in verdicts)


def _make_tracker(backends: Backends, problems: ProblemSink) -> MultiTracker | None:
    """The session's tracker over every backend that could be built; None for none."""
    trackers = []
    for name in backends.names:
        with problems.guard(name):
            trackers.append(backends.make(name))
    if not trackers:
        return None
    return MultiTracker(trackers, config=backends.settings.tracking, on_error="ignore")


def _session_run_params(
    config: pytest.Config, backends: Backends, problems: ProblemSink
) -> dict[str, Any]:
    """The session run's params: the session's facts, its datasets, what hooks add."""
    params = session_params(config, __version__)
    params.update(dataset_params(declared_datasets(config, backends.settings, problems)))
    for extra in problems.call_hook("pytest_insidellms_session_params", config=config):
        params.update(extra or {})
    return params


def _report_outages(spoolers: list[SpoolingTracker], problems: ProblemSink) -> None:
    for spooler in spoolers:
        outage = spooler.outage()
        if outage:
            problems.add(spooler.backend_name, outage, first=True)


def spoolers(tracker: MultiTracker | None) -> list[SpoolingTracker]:
    """The session's remote backends (each behind its spool)."""
    trackers = tracker.trackers if tracker is not None else []
    return [t for t in trackers if isinstance(t, SpoolingTracker)]


def case_journals(tracker: MultiTracker, run_id: str, opener: HeldFile) -> list[JournalWriter]:
    """The journals this machine keeps of ``run_id``: a local backend's run, a spool's."""
    ids = tracker.child_run_ids(run_id)
    names = [t.backend_name for t in tracker.trackers]
    journals = []
    for index, backend in enumerate(tracker.trackers):
        # MultiTracker's naming of its backends: a name, or name#index when it repeats.
        name = names[index] if names.count(names[index]) == 1 else f"{names[index]}#{index}"
        local = backend.spool if isinstance(backend, SpoolingTracker) else backend
        if name in ids and isinstance(local, LocalFileTracker):
            journals.append(local.journal_writer(ids[name], opener))
    return journals


def mark_track_dir(track_dir: Path) -> None:
    """Mark a track directory the session created as pytest marks ``.pytest_cache``: ignored
    by git (a ``.gitignore`` of ``*``) and never collected by pytest."""
    marker = track_dir / TRACK_DIR_MARKER
    if track_dir.is_dir() and not marker.exists():
        (track_dir / ".gitignore").write_text("# Created by pytest-insidellms.\n*\n", "utf-8")
        marker.write_text(
            "pytest-insidellms keeps tracked runs here; pytest does not collect below it.\n",
            "utf-8")


def _replay(event: MetricsEvent | ParamsEvent | ArtifactEvent,
            run_id: str) -> Callable[[MultiTracker], None]:
    """A fixture call as an operation on ``run_id``."""
    if isinstance(event, MetricsEvent):
        return lambda t: t.log_metrics(event.metrics, event.step, run_id=run_id)
    if isinstance(event, ParamsEvent):
        return lambda t: t.log_params(event.params, run_id=run_id)

    def artifact(t: MultiTracker) -> None:
        try:
            t.log_artifact(Path(event.path), event.name, event.type, run_id=run_id,
                           origin=event.source)
        finally:
            _discard_staged([event])

    return artifact


def _discard_staged(events: list[Event]) -> None:
    for event in events:
        if isinstance(event, ArtifactEvent):
            shutil.rmtree(Path(event.path).parent, ignore_errors=True)
