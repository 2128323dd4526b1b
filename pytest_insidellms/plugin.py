"""The pytest plugin (entry point ``insidellms``): options, the marker, capture, the fixture.

Every process (single, xdist controller, xdist worker) captures results and records the
``tracker`` fixture's calls as typed events on its test reports (:mod:`.wire`). Only the process
that is not an xdist worker starts the session side (:mod:`.session`), which replays the
reports into the backends. Without ``--track`` nothing is imported, written or opened.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import hookspecs, marker, options
from .capture import capturing, default_prefix, is_experiment_result
from .cases import ExperimentInfo
from .fixture import STAGING, TrackerFixture, as_experiment_result
from .wire import Event, Payload, ResultEvent, to_wire

SETTINGS = pytest.StashKey[options.Settings]()
COLLECTED = pytest.StashKey["Collected"]()
TEST_STATE = pytest.StashKey["ItemState"]()
TAKEN_FLAGS = pytest.StashKey[list[str]]()
#: In a single process, reports' payloads stay objects here, off the report (other plugins
#: serialise reports; only an xdist worker puts the plain-JSON form on the report itself).
PAYLOADS = pytest.StashKey["weakref.WeakKeyDictionary[pytest.TestReport, Payload]"]()


class InsideLLMsTrackingWarning(pytest.PytestWarning):
    """A tracking problem that did not change any test's outcome."""

    __module__ = "pytest_insidellms"


@dataclass
class Collected:
    """Counts from this process's collection, shipped on reports so the replaying process
    knows when a module or a marker experiment is complete (it does not collect under xdist)."""

    module_tests: Counter[str] = field(default_factory=Counter)
    experiment_cases: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class ItemState:
    """Per-test scratch space, reset at the start of each run of the test."""

    events: list[Event] = field(default_factory=list)
    experiment: ExperimentInfo | None = None
    marker_fields: dict[str, Any] = field(default_factory=dict)


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
    config.addinivalue_line("markers", marker.HELP)
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
    settings = options.resolve(config)
    config.stash[SETTINGS] = settings
    if settings.enabled and not is_xdist_worker(config):
        from . import session  # only a tracked session pays for it

        payloads: weakref.WeakKeyDictionary[pytest.TestReport, Payload] = (
            weakref.WeakKeyDictionary())
        config.stash[PAYLOADS] = payloads
        session.start(config, settings, InsideLLMsTrackingWarning, payloads)


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not settings.enabled:
        return None
    return (f"insidellms: tracking to {', '.join(settings.backends)} "
            f"(project {settings.tracking.project}, dir {settings.track_dir})")


# -- collection counts ------------------------------------------------------------------------


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _tracking(session.config):
        return
    collected = Collected()
    for item in session.items:
        module = item.nodeid.split("::", 1)[0]
        collected.module_tests[module] += 1
        mark = item.get_closest_marker("experiment")
        if mark is not None:
            collected.experiment_cases[(module, marker.experiment_name(item, mark))] += 1
    session.config.stash[COLLECTED] = collected


# -- capturing results ------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.stash[TEST_STATE] = ItemState()
    mark = item.get_closest_marker("experiment")
    if mark is None:
        return
    try:
        state.marker_fields = marker.check(mark)
    except marker.MarkerError as exc:
        pytest.fail(str(exc), pytrace=False)
    if _tracking(item.config):
        module = item.nodeid.split("::", 1)[0]
        collected = item.config.stash.get(COLLECTED, Collected())
        cases = collected.experiment_cases.get((module, marker.experiment_name(item, mark)), 0)
        state.experiment = marker.experiment_info(item, mark, cases)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    original = getattr(item, "obj", None)
    if not isinstance(item, pytest.Function) or not callable(original):
        return (yield)
    item.obj = capturing(original, lambda value: _keep_result(item, value))
    try:
        return (yield)
    finally:
        item.obj = original


def _keep_result(item: pytest.Item, value: Any) -> Any:
    if not is_experiment_result(value):
        return value
    state = item.stash.get(TEST_STATE, None)
    if state is not None and _tracking(item.config):
        mark = item.get_closest_marker("experiment")
        result = as_experiment_result(value)
        marker.fill_metadata(result, state.marker_fields)
        prefix = (mark.kwargs.get("prefix") if mark else None) or default_prefix(
            item.nodeid, mark.kwargs.get("name") if mark else None)
        state.events.append(ResultEvent("module", result, prefix, "returned",
                                        state.marker_fields.get("params", {})))
    return None


# -- shipping events on reports ---------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
    None, pytest.TestReport, pytest.TestReport
]:
    report = yield
    state = item.stash.get(TEST_STATE, None)
    if state is None or not _tracking(item.config):
        return report
    collected = item.config.stash.get(COLLECTED, Collected())
    payload = Payload(module_tests=collected.module_tests.get(item.nodeid.split("::", 1)[0]),
                      events=state.events.copy(), experiment=state.experiment)
    state.events.clear()  # in place: the tracker fixture holds this list
    if report.failed and call.excinfo is not None:
        payload.error_type = call.excinfo.typename
    if is_xdist_worker(item.config):
        report.insidellms = to_wire(payload)  # type: ignore[attr-defined]
    else:
        item.config.stash[PAYLOADS][report] = payload
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Delivered by now (sent to the xdist controller); pytest keeps every report until the
    # session ends, and with the payload memory would grow with every result logged.
    report.__dict__.pop("insidellms", None)


@pytest.fixture
def tracker(request: pytest.FixtureRequest) -> TrackerFixture:
    """Log metrics, params, artifacts and results into this test's module run
    (``tracker.session`` for the session run). A validating no-op without ``--track``."""
    state = request.node.stash.get(TEST_STATE, None)
    settings = request.config.stash[SETTINGS]
    if state is None or not settings.enabled:
        return TrackerFixture(None, None)
    return TrackerFixture(state.events, settings.track_dir / STAGING)


def _tracking(config: pytest.Config) -> bool:
    settings = config.stash.get(SETTINGS, None)
    return settings is not None and settings.enabled
