"""From phase reports to a test's outcome, as pytest's own summary counts it. No pytest here.

A test sends up to three phase reports (setup, call, teardown; pytest-xdist sends one with
``when="???"`` for a test whose worker crashed). :class:`CaseState` folds them, in arrival
order, into one outcome; :meth:`CaseState.finish` hands out the immutable
:class:`~pytest_insidellms.cases.FinishedCase`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from ..cases import ExperimentInfo, FinishedCase, LoggedResult, Outcome

#: The ``when`` of the report pytest-xdist makes for a test whose worker crashed.
CRASHED: Final = "???"
#: How much of pytest's failure text a marker experiment's ProbeResult keeps (a case keeps
#: it whole: records take its message from it).
ERROR_TAIL: Final = 500


@dataclass(slots=True)
class Phase:
    """What a case needs of one pytest report (not frozen: one is made per report, and a
    frozen dataclass sets each field through a call)."""

    when: str
    #: pytest's ``report.outcome``: passed, failed or skipped.
    outcome: str
    duration: float = 0.0
    start: float | None = None
    stop: float | None = None
    failure_text: str = ""
    #: The report carries ``wasxfail`` (an expected failure, or an unexpected pass).
    xfail: bool = False
    error_type: str | None = None

    @property
    def final(self) -> bool:
        return self.when in ("teardown", CRASHED)


@dataclass
class CaseState:
    """One test on its way through its phase reports."""

    outcome: Outcome = "passed"
    latency_ms: float | None = None
    started: float | None = None
    stopped: float | None = None
    error: str | None = None
    error_type: str | None = None
    #: A teardown error after a failed call: pytest counts both, one failed and one error.
    teardown_failed: bool = False
    #: pytest-rerunfailures will run this attempt again (a phase reported ``rerun``).
    rerun_pending: bool = False
    reruns: int = 0
    experiment: ExperimentInfo | None = None
    results: list[LoggedResult] = field(default_factory=list)

    def advance(self, phase: Phase) -> None:
        if phase.outcome == "rerun":
            self.rerun_pending = True
            return
        failed, skipped = phase.outcome == "failed", phase.outcome == "skipped"
        if phase.when == "call":
            self.latency_ms = phase.duration * 1000.0
            self.started, self.stopped = phase.start, phase.stop
            if failed:
                self.outcome = "failed"
            elif skipped:
                self.outcome = "xfailed" if phase.xfail else "skipped"
            elif phase.xfail:
                self.outcome = "xpassed"
        elif failed and phase.when == "teardown" and self.outcome == "failed":
            self.teardown_failed = True
        elif failed:  # setup, teardown, or a crashed worker
            self.outcome = "failed" if phase.when == CRASHED else "error"
        elif skipped and phase.when == "setup":
            self.outcome = "xfailed" if phase.xfail else "skipped"
        if failed and self.error is None:
            self.error = phase.failure_text.strip()
            self.error_type = phase.error_type

    @property
    def failing(self) -> bool:
        return self.outcome in ("failed", "error")

    def next_attempt(self) -> CaseState:
        """The state of the attempt after one pytest-rerunfailures will repeat: only the
        final attempt is the outcome; earlier ones count as reruns."""
        return CaseState(experiment=self.experiment, reruns=self.reruns + 1)

    def finish(self, nodeid: str, module: str) -> FinishedCase:
        return FinishedCase(
            nodeid=nodeid, module=module, outcome=self.outcome, error_type=self.error_type,
            error=self.error, latency_ms=self.latency_ms, started=self.started,
            stopped=self.stopped, experiment=self.experiment, results=tuple(self.results),
            teardown_failed=self.teardown_failed, reruns=self.reruns)


#: The four counts of a run: xfailed counts as skipped and xpassed as passed, as in
#: pytest's one-line summary for the purposes of a pass rate.
_TALLY_OF: Final[dict[Outcome, str]] = {
    "passed": "passed", "xpassed": "passed", "failed": "failed", "error": "error",
    "skipped": "skipped", "xfailed": "skipped",
}


@dataclass
class Tally:
    """Outcome counts of a run, as pytest's summary line counts them: a test that fails and
    then errors in teardown is one test, one failure and one error."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(
        default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0})
    total: int = 0
    #: Tests that ran (not skipped, not xfailed): what ``pass_rate`` is a rate of.
    ran: int = 0
    #: Attempts pytest-rerunfailures repeated (never outcomes of their own).
    reruns: int = 0

    def add(self, case: FinishedCase) -> None:
        self.total += 1
        self.ran += case.ran
        self.counts[_TALLY_OF[case.outcome]] += 1
        if case.teardown_failed:
            self.counts["error"] += 1
        self.reruns += case.reruns

    @property
    def failing(self) -> bool:
        return bool(self.counts["failed"] or self.counts["error"])

    def metrics(self) -> dict[str, float]:
        """The counts, ``duration_seconds`` and, once a test ran, ``pass_rate``: passed over
        tests that ran (an all-skipped run has no rate rather than a rate of 0)."""
        metrics: dict[str, float] = {
            "tests_total": self.total,
            "tests_passed": self.counts["passed"],
            "tests_failed": self.counts["failed"],
            "tests_skipped": self.counts["skipped"],
            "tests_errors": self.counts["error"],
            "duration_seconds": time.monotonic() - self.started,
        }
        if self.ran:
            metrics["pass_rate"] = self.counts["passed"] / self.ran
        if self.reruns:
            metrics["tests_reruns"] = self.reruns
        return metrics
