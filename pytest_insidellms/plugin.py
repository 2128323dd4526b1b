"""The pytest plugin (entry point ``insidellms``): options, the marker, capture, the fixture.

Every process (single, xdist controller, xdist worker) captures results and records the
``tracker`` fixture's calls as typed events on its test reports (:mod:`.wire`). Only the process
that is not an xdist worker starts the session side (:mod:`.session`), which replays the
reports into the backends and the records.

Without ``--track`` and ``--track-records`` this module is all that runs: it imports no other
part of the package until a test carries the marker, uses the fixture or returns a result,
and the hooks that ship events (:class:`TrackingHooks`) are not even registered. Trials
(``trials=K``, ``--track-trials``) expand marked tests either way: they change what runs.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from types import FunctionType
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs, options

if TYPE_CHECKING:
    from pathlib import Path

    from .cases import ExperimentInfo
    from .fixture import TrackerFixture
    from .wire import Event, Payload, TestEvents

#: The resolved settings; absent (None) when tracking is off.
#: Written into a track directory the plugin created: pytest never collects below it (its
#: artifacts may be named test_*.py), tracked session or not.
TRACK_DIR_MARKER = ".insidellms-track-dir"

SETTINGS = pytest.StashKey["options.Settings | None"]()
TEST_STATE = pytest.StashKey["ItemState"]()
TRACKING_HOOKS = pytest.StashKey["TrackingHooks"]()
TAKEN_FLAGS = pytest.StashKey[list[str]]()
#: ``--track-trials``: how many times each marked case runs unless its marker says.
TRIALS = pytest.StashKey[int]()


class InsideLLMsTrackingWarning(pytest.PytestWarning):
    """A tracking problem that did not change any test's outcome."""

    __module__ = "pytest_insidellms"


@dataclass
class ItemState:
    """Per-test scratch space of a tracked session, reset at the start of each run."""

    events: TestEvents
    marker: pytest.Mark | None = None
    marker_fields: dict[str, Any] = field(default_factory=dict)
    experiment: ExperimentInfo | None = None
    #: The test's module path, as the node id starts (read three times per test).
    module: str = ""


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# -- options ------------------------------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser
) -> Generator[None]:
    yield
    early_config.stash[TAKEN_FLAGS] = options.add_contested_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    for flag in config.stash.get(TAKEN_FLAGS, []):
        try:
            config.issue_config_time_warning(
                InsideLLMsTrackingWarning(
                    f"{flag} is already defined by another plugin or conftest; "
                    f"pytest-insidellms answers to --insidellms-{flag[2:]} instead"
                ),
                stacklevel=2,
            )
        except InsideLLMsTrackingWarning:
            pass  # -W error would turn a clash we cannot resolve into a crash of every run
    config.stash[TRIALS] = options.resolve_trials(config)
    settings = config.stash[SETTINGS] = options.resolve(config)
    shard = settings.shard if settings else options.resolve_shard(config, tracked=False)
    if shard is not None:  # before the session starts: it reads the shard's tags
        from .shards.select import ShardSelector

        config.pluginmanager.register(ShardSelector(shard), "insidellms-shard")
    if settings is None:
        return
    if settings.enabled:
        from .experiment_tracking.sdk_env import warm_up

        warm_up(settings.backends)  # before any test: the SDKs' own environment writes
    hooks = config.stash[TRACKING_HOOKS] = TrackingHooks(config)
    config.pluginmanager.register(hooks, "insidellms-hooks")
    if is_xdist_worker(config):
        config.pluginmanager.register(WorkerCleanup(), "insidellms-worker-cleanup")
    else:
        # Only a tracked session pays for it. (``from .x import y`` rather than
        # ``from . import x`` throughout: the latter returns a stale package attribute when
        # pytester has dropped the module from sys.modules between in-process runs.)
        from .session import start

        start(config, settings, InsideLLMsTrackingWarning, hooks)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if (collection_path / TRACK_DIR_MARKER).is_file() else None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS, None)
    hooks = config.stash.get(TRACKING_HOOKS, None)
    if settings is None or hooks is None:
        return None
    lines = []
    if settings.enabled:
        backends = settings.backends if hooks.usable is None else hooks.usable
        lines.append(f"insidellms: tracking to {', '.join(backends)} (project "
                     f"{settings.tracking.project}, dir {settings.track_dir})" if backends else
                     "insidellms: tracking off: no backend could be used (see the warnings)")
    if settings.records_dir is not None:
        lines.append(f"insidellms: records to {settings.records_dir}")
    return lines


# -- every session: the marker is checked, returned results never reach pytest ------------------

MARKER_HELP = (
    "experiment(name=None, prefix=None, model_name=None, model_provider=None, model_id=None, "
    "probe_name=None, probe_category=None, params=None, trials=1): log this test's cases as "
    "one ExperimentResult (or name and describe the result it returns); run each case "
    "`trials` times. See pytest-insidellms."
)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Last, so the trial id ends the node id: test_x[case-1-trial2].
    mark = metafunc.definition.get_closest_marker("experiment")
    if mark is None:
        return
    from .marker import expand_trials, trials_of

    trials = trials_of(mark, metafunc.config.stash.get(TRIALS, 1))
    if trials > 1:
        expand_trials(metafunc, trials)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    hooks = item.config.stash.get(TRACKING_HOOKS, None)
    mark = item.get_closest_marker("experiment")
    if mark is None:
        if hooks is not None:
            item.stash[TEST_STATE] = hooks.state_of(item)
        return
    from .marker import MarkerError, check

    try:
        fields = check(mark)
    except MarkerError as exc:
        pytest.fail(str(exc), pytrace=False)
    if hooks is not None:
        item.stash[TEST_STATE] = hooks.state_of(item, mark, fields)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    global _running
    original = getattr(item, "obj", None)
    if not isinstance(item, pytest.Function) or not callable(original):
        return (yield)
    item.obj = _capturing(original)
    previous, _running = _running, item  # a test may run a pytest session of its own
    try:
        return (yield)
    finally:
        item.obj = original
        _running = previous


#: The test whose call is running: what its captured return value belongs to.
_running: pytest.Item | None = None
#: One capturing wrapper per test function, made at its first case, not at every case.
_WRAPPERS: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
    weakref.WeakKeyDictionary())


def _capturing(func: Callable[..., Any]) -> Callable[..., Any]:
    cacheable = type(func) is FunctionType  # a bound method is a new object every time
    wrapper = _WRAPPERS.get(func) if cacheable else None
    if wrapper is None:
        from .capture import capturing

        wrapper = capturing(func, _keep_running)
        if cacheable:
            _WRAPPERS[func] = wrapper
    return wrapper


def _keep_running(value: Any) -> Any:
    if value is None or _running is None:
        return value
    return _keep_result(_running, value)


def _keep_result(item: pytest.Item, value: Any) -> Any:
    """What a test returned: an ExperimentResult, or a mapping of names to numbers (logged
    as metrics, as ``auto_track`` does), never reaches pytest; anything else does."""
    if value is None:
        return None
    from .capture import case_prefix, is_experiment_result, numeric_mapping

    is_result = is_experiment_result(value)
    metrics = None if is_result else numeric_mapping(value)
    if metrics is None and not is_result:
        return value
    state = item.stash.get(TEST_STATE, None)
    if state is None:
        return None
    prefix = case_prefix(state.events.nodeid, state.marker.kwargs if state.marker else None)
    if metrics is not None:
        from .experiment_tracking.base import validate_metrics
        from .wire import MetricsEvent

        state.events.append(MetricsEvent("module", validate_metrics(
            {f"{prefix}{k}": v for k, v in metrics.items()})))
        return None
    from .fixture import as_experiment_result
    from .wire import ResultEvent

    result = as_experiment_result(value)
    if state.marker_fields:  # the marker fills what the result leaves empty
        from .marker import fill_metadata

        fill_metadata(result, state.marker_fields)
    state.events.append(ResultEvent("module", result, prefix, "returned",
                                    state.marker_fields.get("params", {})))
    return None


@pytest.fixture
def tracker(request: pytest.FixtureRequest) -> TrackerFixture:
    """Log metrics, params, artifacts and results into this test's module run, named under
    the test case's prefix (``tracker.module``: unprefixed; ``tracker.session``: the session
    run). A validating no-op without ``--track``."""
    from .capture import case_prefix
    from .fixture import STAGING, TrackerFixture

    mark = request.node.get_closest_marker("experiment")
    prefix = case_prefix(request.node.nodeid, mark.kwargs if mark else None)
    state = request.node.stash.get(TEST_STATE, None)
    settings = request.config.stash.get(SETTINGS, None)
    if state is None or settings is None or not settings.enabled:
        return TrackerFixture(None, None, prefix=prefix)  # records keep no fixture calls
    return TrackerFixture(state.events, settings.track_dir / STAGING, prefix=prefix)


@pytest.fixture(scope="session")
def shared_tracker(request: pytest.FixtureRequest) -> TrackerFixture:
    """The ``tracker`` API as a session-scoped fixture: each call logs into the run of the
    test running at the time. For Hypothesis ``@given`` tests, whose health check refuses
    function-scoped fixtures."""
    from .fixture import STAGING, TrackerFixture

    settings = request.config.stash.get(SETTINGS, None)
    hooks = request.config.stash.get(TRACKING_HOOKS, None)
    if settings is None or hooks is None or not settings.enabled:
        return TrackerFixture(None, None)
    running = _RunningTest(hooks)
    return TrackerFixture(running, settings.track_dir / STAGING, prefix=running.prefix)


class _RunningTest:
    """The events of whichever test is running (see shared_tracker)."""

    def __init__(self, hooks: TrackingHooks) -> None:
        self._hooks = hooks

    def prefix(self) -> str:
        item = self._hooks.current_item
        if item is None:
            return ""  # append refuses the call
        from .capture import case_prefix

        mark = item.get_closest_marker("experiment")
        return case_prefix(item.nodeid, mark.kwargs if mark else None)

    def append(self, event: Event) -> None:
        current = self._hooks.current
        if current is None:
            raise RuntimeError("shared_tracker logs into the running test's run: "
                               "call it from a test, not between tests")
        current.append(event)


# -- tracked sessions only: events ride on reports ---------------------------------------------


class TrackingHooks:
    """Registered in every process of a tracked session (xdist workers included)."""

    def __init__(self, config: pytest.Config) -> None:
        self.worker = is_xdist_worker(config)
        #: Tests per module and cases per (module, experiment), from this process's
        #: collection: shipped on reports, since the replaying process does not collect
        #: under xdist and needs them to know when a module or an experiment is complete.
        self.module_tests: Counter[str] = Counter()
        self.experiment_cases: Counter[tuple[str, str]] = Counter()
        #: Every node id collected, before any deselection or sharding (the run id of
        #: records hashes them), shipped on this process's first payload.
        self.collected: list[str] | None = None
        self._collected_sent = False
        #: In a single process, reports' payloads stay objects here, off the report (other
        #: plugins serialise reports; only a worker puts the plain-JSON form on the report).
        self.payloads: weakref.WeakKeyDictionary[pytest.TestReport, Payload] = (
            weakref.WeakKeyDictionary())
        #: Fixture calls made after their test ended (from a thread it left running).
        self.late: list[tuple[str, Event]] = []
        #: The test running now (for shared_tracker) and its state.
        self.current_item: pytest.Item | None = None
        self.current_state: ItemState | None = None
        #: The backends that passed their checks (set by the session side).
        self.usable: list[str] | None = None

    @property
    def current(self) -> TestEvents | None:
        """The events of the test running now."""
        return None if self.current_state is None else self.current_state.events

    def state_of(self, item: pytest.Item, mark: pytest.Mark | None = None,
                 fields: dict[str, Any] | None = None) -> ItemState:
        """A fresh state for ``item``, which is the running test from now on."""
        from .wire import TestEvents

        nodeid = item.nodeid
        self.current_item = item
        self.current_state = ItemState(TestEvents(nodeid, self.late), mark, fields or {},
                                       module=nodeid.split("::", 1)[0])
        return self.current_state

    def take_late(self) -> list[tuple[str, Event]]:
        late = []
        while self.late:  # pop is atomic: a thread appending meanwhile loses nothing
            late.append(self.late.pop(0))
        return late

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # First: -k, -m, --deselect and splitters (pytest-split, pytest-shard) come later.
        self.collected = [item.nodeid for item in items]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .marker import experiment_name

        for item in session.items:
            module = item.nodeid.split("::", 1)[0]
            self.module_tests[module] += 1
            mark = item.get_closest_marker("experiment")
            if mark is not None:
                self.experiment_cases[(module, experiment_name(item, mark))] += 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        # The running test's state, without the stash's lookup (three calls, three times a test).
        state = (self.current_state if item is self.current_item
                 else item.stash.get(TEST_STATE, None))
        if state is None:
            return report
        if report.when == "teardown":
            state.events.closed = True
        failed = call.excinfo is not None and report.failed
        if not (self.worker or state.events or state.marker or self.late or failed
                or not self._collected_sent):
            return report  # nothing to carry: the replaying process knows the module's size
        from .wire import Payload, to_wire

        module = state.module
        if state.marker is not None and state.experiment is None:
            from .marker import experiment_info, experiment_name, expanded_trial, trials_of

            cases = self.experiment_cases.get((module, experiment_name(item, state.marker)), 0)
            trials = 1 if expanded_trial(item) is None else trials_of(
                state.marker, item.config.stash.get(TRIALS, 1))
            state.experiment = experiment_info(item, state.marker, state.marker_fields, cases,
                                               trials)
        payload = Payload(module_tests=self.module_tests.get(module),
                          events=list(state.events), experiment=state.experiment,
                          late=self.take_late() if self.late else [])
        if not self._collected_sent and self.collected is not None:
            self._collected_sent = True
            payload.collected = self.collected
        state.events.clear()  # in place: the tracker fixture holds this list
        if failed:
            assert call.excinfo is not None
            payload.error_type = call.excinfo.typename
        if self.worker:
            report.insidellms = to_wire(payload)  # type: ignore[attr-defined]
        else:
            self.payloads[report] = payload
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A worker's late events that no report carried go with its output."""
        output = getattr(session.config, "workeroutput", None)
        if output is not None and self.late:
            from .wire import late_to_wire

            output["insidellms_late"] = late_to_wire(self.take_late())


class WorkerCleanup:
    """Registered in xdist workers only, where payloads ride on the reports."""

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Delivered by now (sent to the xdist controller); pytest keeps every report until
        # the session ends, and with the payload memory would grow with every result logged.
        report.__dict__.pop("insidellms", None)
