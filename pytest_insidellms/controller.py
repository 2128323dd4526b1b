"""The one object that talks to backends: the session run, a run per module, the summary.

It lives in the single pytest process or the xdist controller and is fed only by test reports,
so a session with workers produces exactly the runs of a session without. Tracking is best
effort: every backend call is guarded, failures become one warning per backend and a line in
the summary, and no test outcome ever changes because of tracking.
"""

from __future__ import annotations

import contextlib
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import FrameType
from typing import Any

import pytest

from . import __version__
from .defaults import REMOTE_BACKENDS, backend_kwargs, spool_dir
from .experiment_tracking import MultiTracker, create_tracker
from .experiment_tracking.base import ExperimentTracker, TrackingWarning
from .experiment_tracking.spool import SpoolingTracker
from .options import BUILTIN_BACKENDS, Settings
from .recorder import STAGING, module_of, replay
from .session_info import session_params
from .types import (
    ExperimentResult,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)

#: The ``when`` of the report pytest-xdist makes for a test whose worker crashed.
CRASHED = "???"
#: Running outcome counts are re-logged at most this often per run (and always at its end).
LIVE_INTERVAL_SECONDS = 2.0
_SDK_OF = {"mlflow": ("mlflow",), "wandb": ("wandb",), "tensorboard": ("tensorboardX", "torch")}
_STATUS_OF_OUTCOME = {"passed": ResultStatus.SUCCESS, "failed": ResultStatus.ERROR,
                      "error": ResultStatus.ERROR, "skipped": ResultStatus.SKIPPED}


@dataclass
class Tally:
    """Outcome counts of a run."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(
        default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0})
    last_logged: float = 0.0

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def failing(self) -> bool:
        return bool(self.counts["failed"] or self.counts["error"])

    def metrics(self) -> dict[str, float]:
        ran = self.total - self.counts["skipped"]
        return {
            "tests_total": self.total,
            "tests_passed": self.counts["passed"],
            "tests_failed": self.counts["failed"],
            "tests_skipped": self.counts["skipped"],
            "tests_errors": self.counts["error"],
            "pass_rate": self.counts["passed"] / ran if ran else 0.0,
            "duration_seconds": time.monotonic() - self.started,
        }


@dataclass
class Case:
    """One test on its way through setup, call and teardown reports."""

    outcome: str = "passed"
    latency_ms: float | None = None
    error: str | None = None
    returned_result: bool = False
    experiment: dict[str, Any] | None = None
    started: float | None = None
    stopped: float | None = None


@dataclass
class Experiment:
    """The cases of one ``@pytest.mark.experiment`` in one module, until all have finished."""

    info: dict[str, Any]
    results: list[ProbeResult] = field(default_factory=list)
    seen: int = 0
    started: float | None = None
    stopped: float | None = None


@dataclass
class Module:
    path: str
    run_id: str
    tally: Tally = field(default_factory=Tally)
    expected: int | None = None
    finished: set[str] = field(default_factory=set)
    experiments: dict[str, Experiment] = field(default_factory=dict)


class Controller:
    """Registered as a plugin on the non-worker process when tracking is on."""

    def __init__(self, config: pytest.Config, settings: Settings,
                 warning: type[Warning] = UserWarning) -> None:
        self.config = config
        self.settings = settings
        self.warning = warning
        self.tracker: MultiTracker | None = None
        self.session_run: str | None = None
        self.locations: dict[str, str | None] = {}
        self.session_tally = Tally()
        self.modules: dict[str, Module] = {}
        self.cases: dict[str, Case] = {}
        self.results_logged = 0
        self.problems: dict[str, list[str]] = {}
        self.stopped = False
        self.interrupted = False
        self._errors_seen = 0
        self._warned: set[str] = set()
        self._pending_warnings: list[str] = []
        self._guard_depth = 0
        self._custom: dict[str, ExperimentTracker[Any]] = {}
        self._previous_sigterm: Any = None
        # Before any tracker exists: a hook-provided one is built in _check_backends and
        # copies the config when it is constructed.
        for tags in config.hook.pytest_insidellms_session_tags(config=config):
            settings.tracking.tags.extend(str(t) for t in tags or ())
        self._check_backends()

    # -- start-up ---------------------------------------------------------------------------

    def _check_backends(self) -> None:
        """Unknown names are usage errors; a missing SDK disables that backend (or, with
        --track-strict, is a usage error). Nothing is imported or opened here."""
        import importlib.util

        usable = []
        for name in self.settings.backends:
            try:
                tracker = self._hook_tracker(name) if name not in BUILTIN_BACKENDS else None
            except Exception as exc:  # e.g. an in-house tracker that cannot reach its server
                self._disable(name, f"--track {name}: pytest_insidellms_make_tracker failed: "
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
            self._disable(
                name, f"--track {name}: its SDK is not installed; install it with: "
                      f"pip install 'pytest-insidellms[{name}]'",
                f"SDK not installed (pip install 'pytest-insidellms[{name}]'): backend disabled")
        self.backends = usable

    def _disable(self, name: str, message: str, problem: str) -> None:
        """Leave backend ``name`` out with a warning, or stop pytest with --track-strict."""
        if self.settings.strict:
            raise pytest.UsageError(message)
        try:
            self.config.issue_config_time_warning(
                self.warning(message + " (backend disabled)"), stacklevel=3)
        except self.warning:
            pass  # warnings are errors (-W error) and pytest would crash: the summary says it
        self.problems.setdefault(name, []).append(problem)

    def _hook_tracker(self, name: str) -> ExperimentTracker[Any] | None:
        tracker: ExperimentTracker[Any] | None = self.config.hook.pytest_insidellms_make_tracker(
            name=name, tracking=self.settings.tracking, track_dir=self.settings.track_dir,
            backend_settings=self.settings.tracking.backends.get(name, {}), config=self.config)
        return tracker

    def _make_tracker(self, name: str) -> ExperimentTracker[Any]:
        if name in self._custom:
            return self._custom.pop(name)
        hooked = self._hook_tracker(name)
        if hooked is not None:
            return hooked
        track_dir = self.settings.track_dir
        tracker = create_tracker(name, **backend_kwargs(name, self.settings.tracking, track_dir))
        if name in REMOTE_BACKENDS:
            return SpoolingTracker(tracker, spool_dir(track_dir, name))
        return tracker

    def _open_session(self) -> bool:
        """Create the backends and the session run on the first report. False: tracking off."""
        if self.tracker is not None:
            return True
        if self.stopped:
            return False
        self.stopped = True  # until proven otherwise: never try twice
        trackers = []
        for name in self.backends:
            with self._guard(name):
                trackers.append(self._make_tracker(name))
        if not trackers:
            return False
        tracker = MultiTracker(trackers, config=self.settings.tracking, on_error="ignore")
        with self._guard("tracking"):
            self.session_run = tracker.start_run(run_name=self.settings.run_name)
        self._collect_errors(tracker)
        if self.session_run is None:
            return False
        self.tracker, self.stopped = tracker, False
        self.locations = tracker.locations(self.session_run)
        params = session_params(self.config, __version__)
        for extra in self.config.hook.pytest_insidellms_session_params(config=self.config):
            params.update(extra or {})
        self._call(lambda t: t.log_params(params, run_id=self.session_run))
        self._record_in_junit()
        self._install_sigterm()
        return True

    def _record_in_junit(self) -> None:
        junit = next((p for p in self.config.pluginmanager.get_plugins()
                      if callable(getattr(p, "add_global_property", None))), None)
        if junit is None:
            return
        junit.add_global_property("insidellms_session_run", str(self.session_run))
        for name, location in self.locations.items():
            if location:
                junit.add_global_property(f"insidellms_{name}", location)

    def _install_sigterm(self) -> None:
        """SIGTERM (CI cancelling a job) ends runs as killed, like Ctrl-C."""
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread: leave signals alone
            pass

    # -- reports ----------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self._open_session():
            return
        with self._guard("tracking"):
            self._take(report)

    def _take(self, report: pytest.TestReport) -> None:
        payload: dict[str, Any] = getattr(report, "insidellms", None) or {}
        module = self._module(module_of(report.nodeid), payload.get("module_tests"))
        case = self.cases.setdefault(report.nodeid, Case())
        for event in payload.get("events", ()):
            self._apply(event, module, report.nodeid)
            if event["kind"] == "result" and event["target"] == "module":
                case.returned_result = True  # a marker case that returned its own result
        if payload.get("experiment") is not None:
            case.experiment = payload["experiment"]
        _advance(case, report)
        if report.when in ("teardown", CRASHED):
            self._finish_case(report.nodeid, module)

    def _module(self, path: str, expected: int | None) -> Module:
        module = self.modules.get(path)
        if module is None:
            assert self.tracker is not None
            run_id = self.tracker.start_run(path, parent_run_id=self.session_run)
            self._collect_errors(self.tracker)
            module = self.modules[path] = Module(path, run_id)
        if expected:
            module.expected = expected
        return module

    def _apply(self, event: dict[str, Any], module: Module, nodeid: str) -> None:
        run_id = module.run_id if event.get("target") == "module" else self.session_run
        assert run_id is not None
        if event["kind"] == "result":
            result = ExperimentResult.from_dict(event["result"])
            self._log_result(result, event["prefix"], run_id, nodeid, event.get("params"))
        else:
            self._call(lambda t: replay(t, event, run_id))

    def _log_result(self, result: ExperimentResult, prefix: str, run_id: str, nodeid: str,
                    params: dict[str, Any] | None = None) -> None:
        verdicts = self.config.hook.pytest_insidellms_result(
            result=result, nodeid=nodeid, prefix=prefix, config=self.config)
        if any(v is False for v in verdicts):
            return
        self._call(lambda t: t.log_experiment_result(result, prefix, run_id=run_id))
        if params:
            self._call(lambda t: t.log_params({f"{prefix}{k}": v for k, v in params.items()},
                                              run_id=run_id))
        self.results_logged += 1

    def _finish_case(self, nodeid: str, module: Module) -> None:
        case = self.cases.pop(nodeid)
        module.tally.add(case.outcome)
        self.session_tally.add(case.outcome)
        module.finished.add(nodeid)
        if case.experiment is not None:
            self._add_to_experiment(case, nodeid, module)
        self._log_live(module.run_id, module.tally)
        self._log_live(self.session_run, self.session_tally)
        if module.expected is not None and len(module.finished) >= module.expected:
            self._end_module(module)

    def _add_to_experiment(self, case: Case, nodeid: str, module: Module) -> None:
        info = case.experiment
        assert info is not None
        experiment = module.experiments.setdefault(info["name"], Experiment(info))
        experiment.seen += 1
        if not case.returned_result:
            experiment.results.append(ProbeResult(
                input=nodeid.split("::", 1)[-1], status=_STATUS_OF_OUTCOME[case.outcome],
                error=case.error, latency_ms=case.latency_ms))
            if case.started is not None:
                experiment.started = min(experiment.started or case.started, case.started)
            if case.stopped is not None:
                experiment.stopped = max(experiment.stopped or case.stopped, case.stopped)
        if experiment.seen >= info.get("cases", 0):
            self._log_experiment(module, experiment)

    def _log_experiment(self, module: Module, experiment: Experiment) -> None:
        del module.experiments[experiment.info["name"]]
        if not experiment.results:
            return
        info = experiment.info
        experiment_id = f"{module.path}::{info['name']}"
        result = aggregate(experiment_id, info, experiment)
        self._log_result(result, info["prefix"], module.run_id, experiment_id, info.get("params"))

    def _log_live(self, run_id: str | None, tally: Tally, final: bool = False) -> None:
        now = time.monotonic()
        if run_id is None or (not final and now - tally.last_logged < LIVE_INTERVAL_SECONDS):
            return
        tally.last_logged = now
        metrics = tally.metrics()
        self._call(lambda t: t.log_metrics(metrics, run_id=run_id))

    def _end_module(self, module: Module, status: str | None = None) -> None:
        for experiment in list(module.experiments.values()):
            self._log_experiment(module, experiment)
        self._log_live(module.run_id, module.tally, final=True)
        status = status or ("failed" if module.tally.failing else "finished")
        self._call(lambda t: t.end_run(status, run_id=module.run_id))
        del self.modules[module.path]

    # -- the end ----------------------------------------------------------------------------

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._restore_sigterm()
        if self.tracker is None:
            return
        with self._guard("tracking"):
            for nodeid, case in list(self.cases.items()):
                if case.outcome in ("failed", "error"):  # reported failing, never finished
                    module = self.modules.get(module_of(nodeid))
                    if module is not None:
                        self._finish_case(nodeid, module)
            killed = self.interrupted
            for module in list(self.modules.values()):
                self._end_module(module, "killed" if killed else None)
            self._log_live(self.session_run, self.session_tally, final=True)
            failed = self.session_tally.failing or exitstatus == pytest.ExitCode.INTERNAL_ERROR
            status = "killed" if killed else ("failed" if failed else "finished")
            self._call(lambda t: t.end_run(status, run_id=self.session_run))
            self._call(lambda t: t.flush())
        with contextlib.suppress(OSError):  # fixture artifacts wait there; gone once replayed
            (self.settings.track_dir / STAGING).rmdir()
        for spooler in self._spoolers():
            outage = spooler.outage()
            if outage:
                self.problems.setdefault(spooler.backend_name, []).insert(0, outage)
        if self.settings.strict and self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_unconfigure(self) -> None:
        self._restore_sigterm()

    def _spoolers(self) -> list[SpoolingTracker]:
        trackers = self.tracker.trackers if self.tracker is not None else []
        return [t for t in trackers if isinstance(t, SpoolingTracker)]

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.tracker is None and not self.problems:
            return
        write = terminalreporter.write_line
        terminalreporter.section("insidellms tracking", sep="-")
        if self.tracker is not None:
            write(f"session run {self.settings.run_name}: {self.results_logged} result(s) logged, "
                  f"{self.session_tally.total} test(s) tracked")
            for name, location in self.locations.items():
                write(f"  {name}: {location or '(no location)'}")
        for name, problems in self.problems.items():
            write(f"  {name}: {len(problems)} problem(s), first: {problems[0]}", yellow=True)

    # -- failure handling -------------------------------------------------------------------

    def _call(self, operation: Any) -> None:
        """Run one operation on the multi-tracker; backend failures are collected, not raised."""
        assert self.tracker is not None
        with self._guard("tracking"):
            operation(self.tracker)
        self._collect_errors(self.tracker)

    def _collect_errors(self, tracker: MultiTracker) -> None:
        for name, exc in tracker.errors[self._errors_seen:]:
            self._problem(name, exc)
        self._errors_seen = len(tracker.errors)

    @contextlib.contextmanager
    def _guard(self, name: str) -> Iterator[None]:
        """Never let tracking raise into pytest (an INTERNALERROR) or leak warnings into it
        (``-W error`` would turn a truncation notice into a failure). Guards nest; what is
        to be shown is shown when the outermost one ends, outside every catch_warnings."""
        self._guard_depth += 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield
                except Exception as exc:
                    self._problem(name, exc)
        finally:
            self._guard_depth -= 1
        for message in caught:
            # Our library's notices (a truncated param, a backend that went down) are shown
            # once each; other libraries' warnings raised while logging (SQLAlchemy
            # deprecations inside MLflow, ...) are theirs, not the user's: left out.
            if isinstance(message.message, TrackingWarning):
                self._warn(str(message.message))
        if self._guard_depth == 0:
            self._show_warnings()

    def _problem(self, name: str, error: BaseException) -> None:
        """A tracking failure: counted for the summary (and --track-strict), warned once."""
        first = name not in self.problems
        self.problems.setdefault(name, []).append(f"{type(error).__name__}: {error}")
        if first:
            self._warn(f"insidellms tracking ({name}): {type(error).__name__}: {error}")

    def _warn(self, text: str) -> None:
        """Show ``text`` once, as a warning, when the outermost guard ends (or now)."""
        if text in self._warned:
            return
        self._warned.add(text)
        self._pending_warnings.append(text)
        if self._guard_depth == 0:
            self._show_warnings()

    def _show_warnings(self) -> None:
        pending, self._pending_warnings = self._pending_warnings, []
        for text in pending:
            try:
                warnings.warn(self.warning(text), stacklevel=4)
            except Warning:
                pass  # warnings are errors here; the summary still reports failures


def _advance(case: Case, report: pytest.TestReport) -> None:
    """Fold one phase report into the test's outcome, as pytest's summary counts it."""
    if report.when == "call":
        case.latency_ms = report.duration * 1000.0
        case.started, case.stopped = getattr(report, "start", None), getattr(report, "stop", None)
        if report.failed:
            case.outcome = "failed"
        elif report.skipped:
            case.outcome = "skipped"
    elif report.failed:  # setup, teardown, or a crashed worker
        case.outcome = "failed" if str(report.when) == CRASHED else "error"
    elif report.skipped and report.when == "setup":
        case.outcome = "skipped"
    if report.failed and case.error is None:
        case.error = str(getattr(report, "longreprtext", "") or report.longrepr).strip()[-500:]


def aggregate(experiment_id: str, info: dict[str, Any], experiment: Experiment) -> ExperimentResult:
    """The ExperimentResult of a marker experiment: one ProbeResult per case."""
    results = experiment.results
    ran = [r for r in results if r.status is not ResultStatus.SKIPPED]
    passed = sum(r.status is ResultStatus.SUCCESS for r in ran)
    latencies = [r.latency_ms for r in ran if r.latency_ms is not None]
    errors = sum(r.status is ResultStatus.ERROR for r in results)

    def when(stamp: float | None) -> datetime | None:
        return None if stamp is None else datetime.fromtimestamp(stamp, timezone.utc)

    return ExperimentResult(
        experiment_id=experiment_id,
        model_info=ModelInfo(name=info.get("model_name", ""), provider=info.get("model_provider", ""),
                             model_id=info.get("model_id", "")),
        probe_name=info.get("probe_name") or info["name"],
        probe_category=ProbeCategory(info.get("probe_category", "custom")),
        results=results,
        score=ProbeScore(
            accuracy=passed / len(ran) if ran else None,
            mean_latency_ms=sum(latencies) / len(latencies) if latencies else None,
            error_rate=errors / len(results) if results else 0.0,
        ),
        started_at=when(experiment.started),
        completed_at=when(experiment.stopped),
    )


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
