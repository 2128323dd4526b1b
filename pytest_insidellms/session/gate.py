"""The regression gate of a session: one verdict, and everything shown or decided from it.

The baseline is resolved when the session starts (an unreadable one is a usage error before
any test runs; a missing one is judged by ``--track-baseline-missing``). The verdict is
reached once, from the session's records, when the records consumer finalizes them, and the
terminal section, ``gate.json`` / ``gate.md``, the GitHub step summary, the comparison in
``report.html``, the params and metrics of the session run and the exit status are all
rendered from that one :class:`~pytest_insidellms.gate.engine.Verdict`, so they cannot
disagree. An interrupted, killed or crashed session gets no verdict: its exit status stays
pytest's.

Exit contract (``--track-exit``): pytest's own codes other than 0 and 1 always win; ``both``
(the default) makes a failing gate turn 0 into 1; ``gate`` also counts a failed call of a
``@pytest.mark.experiment`` test as data, so the session passes when the gate does and
nothing else failed (an error in setup or teardown, a plain test's failure, a collection
error still fail it); ``tests`` reports the verdict and leaves the status to pytest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from ..cases import FinishedCase
from ..gate.baseline import Baseline, BaselineError, MissingBaseline, resolve_baseline
from ..gate.engine import GateSettings, Verdict, evaluate
from ..gate.render import append_step_summary, render_html, render_text, write_gate_files
from ..gate.rules import RuleError
from ..options import GateOptions, Settings
from .problems import ProblemSink
from .assembler import CaseConsumer
from .tracking import TrackedSession

PROBLEM_NAME: Final = "gate"


class SessionGate(CaseConsumer):
    """A case consumer (it counts the failures the gate cannot excuse) and a plugin object
    (the terminal section and the exit status)."""

    def __init__(self, config: pytest.Config, settings: Settings, options: GateOptions,
                 problems: ProblemSink, tracked: TrackedSession | None) -> None:
        self.config = config
        self.settings = settings
        self.options = options
        self.problems = problems
        self.tracked = tracked
        self.baseline: Baseline | MissingBaseline | None = None
        self.verdict: Verdict | None = None
        #: Why there is no verdict (the session stopped early, the rules matched nothing).
        self.no_verdict: str | None = None
        #: Interrupted, killed or crashed: no verdict, and the exit status stays pytest's.
        self.stopped_early = False
        #: Failures that are not an experiment's data: they fail the session in every mode.
        self.blocking_failures = 0
        self._judged = False

    # -- the baseline -----------------------------------------------------------------------

    def resolve(self) -> None:
        """Called once the session starts; raises pytest.UsageError for an unreadable one."""
        spec = self.options.baseline
        if spec is None:
            return
        try:
            self.baseline = resolve_baseline(
                spec, track_dir=self.settings.track_dir, project=self.settings.tracking.project,
                root=self.config.rootpath, mlflow_uri=_configured_mlflow_uri(self.settings))
        except BaselineError as exc:
            raise pytest.UsageError(f"{self.options.baseline_source}: {exc}") from None
        if isinstance(self.baseline, MissingBaseline) and self.options.missing == "warn":
            self.problems.config_time_warning(
                f"insidellms gate: no baseline ({self.problems.mask(self.baseline.reason)}); "
                f"the comparative rules are skipped")

    # -- the cases --------------------------------------------------------------------------

    def on_case(self, case: FinishedCase) -> None:
        data = case.experiment is not None and case.outcome == "failed" and not (
            case.teardown_failed)
        if case.outcome in ("failed", "error") and not data:
            self.blocking_failures += 1

    # -- the verdict ------------------------------------------------------------------------

    def judge(self, records: Sequence[Mapping[str, Any]], *, completed: bool) -> str | None:
        """Reach the verdict on the session's records; the HTML for report.html's
        comparison, or None. Called by the records consumer, before it writes."""
        self._judged = True
        if not completed:
            self.stopped_early = True
            self.no_verdict = "the session did not run to its end"
            return None
        baseline = self.baseline
        with self.problems.guard(PROBLEM_NAME):
            try:
                self.verdict = evaluate(
                    records, baseline.records if isinstance(baseline, Baseline) else None,
                    GateSettings(rules=self.options.rules, alpha=self.options.alpha),
                    baseline_label=None if baseline is None else baseline.spec,
                    missing=baseline.reason if isinstance(baseline, MissingBaseline) else None)
            except RuleError as exc:  # a rule that matches nothing: a gate that checks nothing
                self.no_verdict = str(exc)
                return None
            return render_html(self.verdict)
        self.no_verdict = "the gate could not be evaluated (see the tracking problems)"
        return None

    @property
    def failed(self) -> bool:
        """The gate says no: its verdict failed, a rule matched nothing, or the baseline is
        missing under ``--track-baseline-missing fail``."""
        if not self._judged or self.stopped_early:
            return False
        if self.verdict is None:
            return True
        missing = isinstance(self.baseline, MissingBaseline) and self.options.missing == "fail"
        return missing or not self.verdict.passed

    def write_files(self, directory: Path) -> tuple[Path, ...]:
        if self.verdict is None:
            return ()
        return write_gate_files(directory, self.verdict)

    def on_finish(self, *, killed: bool, internal_error: bool) -> None:
        if self.verdict is None:
            return
        self._append_step_summary(self.verdict)
        if self.tracked is not None:
            self._log(self.tracked, self.verdict)

    def _append_step_summary(self, verdict: Verdict) -> None:
        with self.problems.guard(PROBLEM_NAME):
            append_step_summary(verdict)

    def _log(self, tracked: TrackedSession, verdict: Verdict) -> None:
        """The verdict's params and numbers on the session run, with gate.json and gate.md
        (also inside the records artifact when the session writes records)."""
        params = {"gate_verdict": "fail" if self.failed else "pass",
                  "gate_alpha": self.options.alpha,
                  "gate_rules": [rule.label for rule in self.options.rules],
                  "gate_baseline": None if self.baseline is None else self.baseline.spec}
        with self.problems.guard(PROBLEM_NAME), \
                tempfile.TemporaryDirectory(prefix="insidellms-gate-") as scratch:
            staged = Path(scratch) / "gate"
            staged.mkdir()
            write_gate_files(staged, verdict)
            tracked.log_to_session(params, staged, "gate", "gate",
                                   metrics=verdict.metrics())

    # -- what pytest shows and returns ------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._judged:
            return
        terminalreporter.section("insidellms gate", sep="-")
        if self.verdict is not None:
            for line in render_text(self.verdict).splitlines():
                terminalreporter.write_line(self.problems.mask(line))
        if self.no_verdict is not None:
            terminalreporter.write_line(f"no verdict: {self.problems.mask(self.no_verdict)}",
                                        red=self.failed, yellow=not self.failed)
        if isinstance(self.baseline, MissingBaseline):
            action = "the gate fails" if self.options.missing == "fail" else "skipped"
            terminalreporter.write_line(
                f"no baseline: {self.problems.mask(self.baseline.reason)} "
                f"(comparative rules {action}; --track-baseline-missing "
                f"{self.options.missing})", yellow=True)
        if self.options.exit == "gate":
            terminalreporter.write_line(
                "--track-exit gate: failed cases of experiments are data; the exit status "
                "comes from the gate and from other failures")
        if self._judged and self.no_verdict is None:
            word = "FAILED" if self.failed else "passed"
            terminalreporter.write_line(f"gate {word}", red=self.failed, green=not self.failed,
                                        bold=True)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # After the report replay's (tryfirst) hook, which reached the verdict; the strict
        # rule again after: a session the gate turned to 0 still exits 4 on problems.
        self.apply_exit(session)
        self.problems.apply_strict(session)

    def apply_exit(self, session: pytest.Session) -> None:
        """The session's exit status under the contract in the module docstring."""
        status = session.exitstatus
        if (status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not self._judged
                or self.stopped_early or self.options.exit == "tests"):
            return
        tests_failed = status == pytest.ExitCode.TESTS_FAILED
        if self.options.exit == "gate":
            tests_failed = self.blocking_failures > 0
        failed = tests_failed or self.failed
        session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK


def _configured_mlflow_uri(settings: Settings) -> str | None:
    """The config file's MLflow store; without one, the baseline resolver picks what a
    tracked session would (``MLFLOW_TRACKING_URI``, else the embedded store)."""
    uri = settings.tracking.backends.get("mlflow", {}).get("tracking_uri")
    return str(uri) if uri else None
