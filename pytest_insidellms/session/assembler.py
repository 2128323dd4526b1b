"""The report replay: the one pytest plugin object of the process that talks to backends.

It lives in the single pytest process or the pytest-xdist controller and is fed only by test
reports, so a session with workers produces exactly what a session without does. Each report's
events go to the consumers as they arrive (a crash loses nothing already reported); when a
test's last report arrived, its :class:`~pytest_insidellms.cases.FinishedCase` goes to every
consumer. Tracking is one consumer; records are another.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from ..cases import FinishedCase, LoggedResult
from ..marker import as_attempt
from ..wire import Event, Payload, ResultEvent, from_wire, late_from_wire
from .outcomes import ERROR_TAIL, CaseState, Phase
from .problems import ProblemSink
from .signals import SignalWatch

if TYPE_CHECKING:
    from ..plugin import TrackingHooks


class CaseConsumer:
    """What the assembler feeds; each consumer overrides what it reads (the defaults ignore)."""

    def on_events(self, module: str, nodeid: str, expected: int | None,
                  events: list[Event]) -> None:
        """A report's events, as it arrives; ``expected``: tests in the module, if known."""

    def on_case(self, case: FinishedCase) -> None:
        """A test whose last report arrived."""

    def on_late_events(self, nodeid: str, events: list[Event]) -> None:
        """Events of a test that had already ended (its fixture, used from a thread)."""

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        """The session ended (``killed``: by a signal)."""


class CaseAssembler:
    def __init__(self, config: pytest.Config, consumers: list[CaseConsumer],
                 problems: ProblemSink, hooks: TrackingHooks) -> None:
        self.consumers: list[CaseConsumer] = []
        # Per report and per case, only the consumers that read them (the defaults ignore).
        self._readers_of_events: list[CaseConsumer] = []
        self._readers_of_cases: list[CaseConsumer] = []
        for consumer in consumers:
            self.add_consumer(consumer)
        self._hooks = hooks
        #: Under ``--dist each`` every worker runs every test: each copy is a case, and a
        #: module (or an experiment) is complete once every worker's copies have finished.
        self._each = config.getoption("dist", "no") == "each"
        self._copies = 0
        self.problems = problems
        #: (worker under --dist each, else None; node id) -> the test's state so far.
        self._cases: dict[tuple[str | None, str], CaseState] = {}
        self.signals = SignalWatch()
        #: The node ids collected before deselection, from the first payload carrying them.
        self.collected: list[str] | None = None
        #: Modules the consumers have heard of (see _take).
        self._announced: set[str] = set()

    def add_consumer(self, consumer: CaseConsumer) -> None:
        """Feed ``consumer`` too, after those already fed."""
        self.consumers.append(consumer)
        if type(consumer).on_events is not CaseConsumer.on_events:
            self._readers_of_events.append(consumer)
        if type(consumer).on_case is not CaseConsumer.on_case:
            self._readers_of_cases.append(consumer)

    # -- reports ----------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.signals.installed:
            self.signals.install()
        # Not a guard: the consumers guard their own backend calls, whose warnings they hold
        # (a guard's catch_warnings on each of three reports per test cost more than the rest).
        try:
            self._take(report)
        except Exception as exc:  # noqa: BLE001 - tracking never fails a test
            self.problems.failure("tracking", exc)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._copies += 1  # every node collects before the first test is scheduled

    def _take(self, report: pytest.TestReport) -> None:
        payload = self._payload_of(report)
        nodeid = report.nodeid
        module = nodeid.split("::", 1)[0]
        if payload is None:
            # A single process sends no payload for a phase with nothing in it; the
            # consumers still hear of each module once, with its size from the collection.
            if module not in self._announced:
                self._announced.add(module)
                expected = self._hooks.module_tests.get(module)
                for consumer in self._readers_of_events:
                    consumer.on_events(module, nodeid, expected, [])
            if report.when == "setup" and report.outcome == "passed":
                return  # changes nothing a case keeps
        worker: str | None = getattr(report, "worker_id", None) if self._each else None
        key = (worker, nodeid)
        case = self._cases.get(key)
        if case is None:
            case = self._cases[key] = CaseState()
        if payload is not None:
            self._deliver(payload, case, module, nodeid, worker)
        phase = _phase(report, None if payload is None else payload.error_type)
        case.advance(phase)
        if not phase.final:
            return
        if case.rerun_pending:
            self._cases[key] = case.next_attempt()
            return
        del self._cases[key]
        finished = case.finish(nodeid, module)
        self._finished(finished if worker is None else replace(finished, worker=worker))

    def _deliver(self, payload: Payload, case: CaseState, module: str, nodeid: str,
                 worker: str | None) -> None:
        self._announced.add(module)
        if self.collected is None and payload.collected is not None:
            self.collected = payload.collected
        expected = payload.module_tests
        if worker is not None and self._copies > 1:
            expected = expected and expected * self._copies
            if payload.experiment is not None:
                payload.experiment = replace(payload.experiment,
                                             cases=payload.experiment.cases * self._copies)
        for consumer in self._readers_of_events:
            consumer.on_events(module, nodeid, expected, payload.events)
        self._late(payload.late)
        for event in payload.events:
            if isinstance(event, ResultEvent) and event.origin == "returned":
                case.results.append(LoggedResult(event.result, event.prefix, event.origin,
                                                 event.params))
        if payload.experiment is not None:
            case.experiment = payload.experiment

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that failed to collect (kept going with --continue-on-collection-errors)
        counts as one errored case of its module."""
        if not report.failed:
            return
        with self.problems.guard():
            nodeid = report.nodeid or "<collection>"
            text = str(getattr(report, "longreprtext", "") or report.longrepr)
            self._finished(FinishedCase(
                nodeid=nodeid, module=nodeid.split("::", 1)[0], outcome="error",
                error_type="CollectionError", error=text.strip()[-ERROR_TAIL:]))

    def _late(self, late: list[tuple[str, Event]]) -> None:
        for nodeid, event in late:
            for consumer in self.consumers:
                consumer.on_late_events(nodeid, [event])

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker's late events no report carried (see TrackingHooks)."""
        wire = getattr(node, "workeroutput", {}).get("insidellms_late")
        if wire:
            with self.problems.guard():
                self._late(late_from_wire(wire))

    def _finished(self, case: FinishedCase) -> None:
        case = as_attempt(case)
        for consumer in self._readers_of_cases:
            consumer.on_case(case)

    def _payload_of(self, report: pytest.TestReport) -> Payload | None:
        """The report's payload; None for a phase of this process that had nothing to carry
        (a report from elsewhere without one gets an empty payload: it may be the only
        report of its module that arrives)."""
        local = self._hooks.payloads.pop(report, None)
        if local is not None:
            return local
        wire = report.__dict__.pop("insidellms", None)  # from an xdist worker
        if wire:
            return from_wire(wire)
        return None if self._hooks.module_tests else Payload()

    # -- the end ----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        killed = bool(self.signals.received)
        with self.problems.guard():
            self._late(self._hooks.take_late())
            for (worker, nodeid), case in list(self._cases.items()):
                if case.failing:  # reported failing, never finished (interrupted)
                    del self._cases[(worker, nodeid)]
                    self._finished(replace(case.finish(nodeid, nodeid.split("::", 1)[0]),
                                           worker=worker))
            for consumer in self.consumers:
                consumer.on_finish(killed=killed,
                                   internal_error=exitstatus == pytest.ExitCode.INTERNAL_ERROR)
        self.problems.apply_strict(session)

    def pytest_unconfigure(self) -> None:
        # Only now: a second signal while pytest finishes (its summary included) is held,
        # so an interrupted session always ends with pytest's own exit code 2.
        self.signals.restore()


def _phase(report: pytest.TestReport, error_type: str | None) -> Phase:
    failure = ""
    outcome = report.outcome
    if outcome == "failed":
        failure = str(getattr(report, "longreprtext", "") or report.longrepr)
    return Phase(str(report.when), outcome, report.duration, getattr(report, "start", None),
                 getattr(report, "stop", None), failure, hasattr(report, "wasxfail"),
                 error_type)
