"""The report replay: the one pytest plugin object of the process that talks to backends.

It lives in the single pytest process or the pytest-xdist controller and is fed only by test
reports, so a session with workers produces exactly what a session without does. Each report's
events go to the tracked session as they arrive (a crash loses nothing already reported); when
a test's last report arrived, its :class:`~pytest_insidellms.cases.FinishedCase` goes to every
consumer.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ..cases import LoggedResult
from ..fixture import STAGING
from ..wire import Payload, ResultEvent, from_wire
from .outcomes import CaseState, Phase
from .problems import ProblemSink
from .signals import SigtermAsInterrupt
from .tracking import TrackedSession


class CaseAssembler:
    def __init__(self, config: pytest.Config, tracked: TrackedSession,
                 problems: ProblemSink, payloads: Any) -> None:
        self.config = config
        self.tracked = tracked
        self.problems = problems
        self._payloads = payloads
        self._cases: dict[str, CaseState] = {}
        self.interrupted = False
        self._sigterm = SigtermAsInterrupt()

    # -- reports ----------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.tracked.open():
            return
        if not self._sigterm.installed:
            self._sigterm.install()
        with self.problems.guard():
            self._take(report)

    def _take(self, report: pytest.TestReport) -> None:
        payload = self._payload_of(report)
        module = report.nodeid.split("::", 1)[0]
        case = self._cases.setdefault(report.nodeid, CaseState())
        self.tracked.on_events(module, report.nodeid, payload.module_tests, payload.events)
        for event in payload.events:
            if isinstance(event, ResultEvent) and event.origin == "returned":
                case.results.append(LoggedResult(event.result, event.prefix, event.origin,
                                                 event.params))
        if payload.experiment is not None:
            case.experiment = payload.experiment
        phase = _phase(report, payload)
        case.advance(phase)
        if phase.final:
            del self._cases[report.nodeid]
            self.tracked.on_case(case.finish(report.nodeid, module))

    def _payload_of(self, report: pytest.TestReport) -> Payload:
        local = self._payloads.pop(report, None)
        if local is not None:
            return local  # type: ignore[no-any-return]
        wire = report.__dict__.pop("insidellms", None)  # from an xdist worker
        return from_wire(wire) if wire else Payload()

    # -- the end ----------------------------------------------------------------------------

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._sigterm.restore()
        if self.tracked.tracker is not None:
            with self.problems.guard():
                for nodeid, case in list(self._cases.items()):
                    if case.failing:  # reported failing, never finished (interrupted)
                        del self._cases[nodeid]
                        self.tracked.on_case(case.finish(nodeid, nodeid.split("::", 1)[0]))
                self.tracked.finish(
                    killed=self.interrupted,
                    internal_error=exitstatus == pytest.ExitCode.INTERNAL_ERROR)
        with contextlib.suppress(OSError):  # fixture artifacts wait there; gone once replayed
            (self.tracked.settings.track_dir / STAGING).rmdir()
        self.problems.apply_strict(session)

    def pytest_unconfigure(self) -> None:
        self._sigterm.restore()


def _phase(report: pytest.TestReport, payload: Payload) -> Phase:
    failure = ""
    if report.failed:
        failure = str(getattr(report, "longreprtext", "") or report.longrepr)
    return Phase(when=str(report.when), outcome=report.outcome, duration=report.duration,
                 start=getattr(report, "start", None), stop=getattr(report, "stop", None),
                 failure_text=failure, xfail=hasattr(report, "wasxfail"),
                 error_type=payload.error_type)

