"""The pytest plugin (entry point ``insidellms``).

Every process (single, xdist controller, xdist worker) captures results and records the
``tracker`` fixture's calls as plain-JSON events on its test reports. Only the process that is
not an xdist worker creates a :class:`~pytest_insidellms.controller.Controller`, which replays
the reports into the backends. Without ``--track`` nothing is imported, written or opened.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import hookspecs, options
from .recorder import STAGING, Event, TrackerFixture, module_of, result_event
from .types import ExperimentResult, ModelInfo, ProbeCategory

SETTINGS = pytest.StashKey[options.Settings]()
COLLECTED = pytest.StashKey["Collected"]()
TEST_STATE = pytest.StashKey["ItemState"]()
TAKEN_FLAGS = pytest.StashKey[list[str]]()

MARKER_HELP = (
    "experiment(name=None, prefix=None, model_name=None, model_provider=None, model_id=None, "
    "probe_name=None, probe_category=None, params=None): log this test's cases as one "
    "ExperimentResult (or name and describe the result it returns). See pytest-insidellms."
)
MARKER_KWARGS = frozenset({"name", "prefix", "model_name", "model_provider", "model_id",
                           "probe_name", "probe_category", "params"})


class InsideLLMsTrackingWarning(pytest.PytestWarning):
    """A tracking problem that did not change any test's outcome."""


@dataclass
class Collected:
    """Counts from this process's collection, shipped on reports so the controller knows
    when a module or a marker experiment is complete (it does not collect under xdist)."""

    module_tests: Counter[str] = field(default_factory=Counter)
    experiment_cases: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class ItemState:
    """Per-test scratch space, reset at the start of each run of the test."""

    events: list[Event] = field(default_factory=list)
    experiment: dict[str, Any] | None = None


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
    settings = options.resolve(config)
    config.stash[SETTINGS] = settings
    if settings.enabled and not is_xdist_worker(config):
        from .controller import Controller  # only a tracked session pays for it

        controller = Controller(config, settings, warning=InsideLLMsTrackingWarning)
        config.pluginmanager.register(controller, "insidellms-controller")


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
        module = module_of(item.nodeid)
        collected.module_tests[module] += 1
        marker = item.get_closest_marker("experiment")
        if marker is not None:
            collected.experiment_cases[(module, _experiment_name(item, marker))] += 1
    session.config.stash[COLLECTED] = collected


# -- capturing results ------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = item.stash[TEST_STATE] = ItemState()
    marker = item.get_closest_marker("experiment")
    if marker is None:
        return
    _check_marker(marker)
    if _tracking(item.config):
        module = module_of(item.nodeid)
        name = _experiment_name(item, marker)
        collected = item.config.stash.get(COLLECTED, Collected())
        state.experiment = {
            **_marker_fields(marker), "name": name,
            "prefix": marker.kwargs.get("prefix") or f"{name}/",
            "cases": collected.experiment_cases.get((module, name), 0),
        }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    original = getattr(item, "obj", None)
    if not isinstance(item, pytest.Function) or not callable(original):
        return (yield)
    item.obj = _capturing(original, functools.partial(_keep_result, item))
    try:
        return (yield)
    finally:
        item.obj = original


def _capturing(func: Callable[..., Any], keep: Callable[[Any], Any]) -> Callable[..., Any]:
    """Wrap a test function so that a returned ExperimentResult is kept, not returned.

    An async test gets an async wrapper, so async plugins (pytest-asyncio, anyio) still see a
    coroutine function and run it as before.
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            return keep(await func(*args, **kwargs))

        return call_async

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        return keep(func(*args, **kwargs))

    return call


def _keep_result(item: pytest.Item, value: Any) -> Any:
    if not is_experiment_result(value):
        return value
    state = item.stash.get(TEST_STATE, None)
    if state is not None and _tracking(item.config):
        marker = item.get_closest_marker("experiment")
        fields = _marker_fields(marker) if marker else {}
        _fill_metadata(value, fields)
        prefix = (marker.kwargs.get("prefix") if marker else None) or default_prefix(
            item.nodeid, marker.kwargs.get("name") if marker else None)
        state.events.append(result_event(value, prefix, fields.get("params")))
    return None


def is_experiment_result(value: Any) -> bool:
    return isinstance(value, ExperimentResult) or (
        hasattr(value, "results") and hasattr(value, "probe_name") and hasattr(value, "model_info")
    )


def default_prefix(nodeid: str, name: str | None = None) -> str:
    """``test_qa`` -> ``test_qa/``; ``TestQA::test_x[gpt-4-case 1]`` -> ``TestQA/test_x/gpt-4-case 1/``.

    The part after the module, with ``::`` and the parametrization brackets turned into
    ``/`` levels; the tracker's key rules then apply (see sanitize_key).
    """
    path = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    function, _, params = path.partition("[")
    parts = function.split("::")
    if name:
        parts[-1] = name
    if params:
        parts.append(params.removesuffix("]"))
    return "/".join(parts) + "/"


# -- shipping events on reports ---------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
    None, pytest.TestReport, pytest.TestReport
]:
    report = yield
    state = item.stash.get(TEST_STATE, None)
    if state is not None and _tracking(item.config):
        collected = item.config.stash.get(COLLECTED, Collected())
        payload: dict[str, Any] = {"module_tests": collected.module_tests.get(module_of(item.nodeid))}
        if state.events:
            payload["events"] = state.events.copy()
            state.events.clear()  # in place: the tracker fixture holds this list
        if state.experiment is not None:
            payload["experiment"] = state.experiment
        report.insidellms = payload  # type: ignore[attr-defined]
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Delivered by now (replayed by the controller in this process, or sent to it by
    # xdist); pytest keeps every report until the session ends, and with the payload
    # memory would grow with every result logged.
    report.__dict__.pop("insidellms", None)


@pytest.fixture
def tracker(request: pytest.FixtureRequest) -> TrackerFixture:
    """Log metrics, params, artifacts and results into this test's module run
    (``tracker.session`` for the session run). A validating no-op without ``--track``."""
    item = request.node
    state = item.stash.get(TEST_STATE, None)
    settings = request.config.stash[SETTINGS]
    if state is None or not settings.enabled:
        return TrackerFixture(None, None)
    return TrackerFixture(state.events, settings.track_dir / STAGING)


# -- helpers ----------------------------------------------------------------------------------


def _tracking(config: pytest.Config) -> bool:
    settings = config.stash.get(SETTINGS, None)
    return settings is not None and settings.enabled


def _experiment_name(item: pytest.Item, marker: pytest.Mark) -> str:
    name = marker.kwargs.get("name")
    if name:
        return str(name)
    return str(getattr(item, "originalname", item.name))


def _check_marker(marker: pytest.Mark) -> None:
    unknown = set(marker.kwargs) - MARKER_KWARGS
    if marker.args or unknown:
        raise TypeError(
            f"@pytest.mark.experiment takes only keyword arguments {sorted(MARKER_KWARGS)}; "
            f"got {', '.join(sorted(unknown)) or 'positional arguments'}"
        )
    params = marker.kwargs.get("params")
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"@pytest.mark.experiment(params=...) must be a dict, got {params!r}")
    category = marker.kwargs.get("probe_category")
    if category is not None:
        ProbeCategory(getattr(category, "value", category))


def _marker_fields(marker: pytest.Mark) -> dict[str, Any]:
    fields = {k: marker.kwargs[k] for k in ("model_name", "model_provider", "model_id",
                                            "probe_name") if marker.kwargs.get(k) is not None}
    category = marker.kwargs.get("probe_category")
    if category is not None:
        fields["probe_category"] = getattr(category, "value", category)
    if marker.kwargs.get("params"):
        fields["params"] = dict(marker.kwargs["params"])
    return fields


def _fill_metadata(result: Any, fields: dict[str, Any]) -> None:
    """The marker fills what a returned result leaves empty; it never overwrites."""
    model = getattr(result, "model_info", None)
    if isinstance(model, ModelInfo):
        for attr, key in (("name", "model_name"), ("provider", "model_provider"),
                          ("model_id", "model_id")):
            if not getattr(model, attr) and key in fields:
                setattr(model, attr, fields[key])
    if not getattr(result, "probe_name", None) and "probe_name" in fields:
        result.probe_name = fields["probe_name"]
    if getattr(result, "probe_category", None) is None and "probe_category" in fields:
        result.probe_category = ProbeCategory(fields["probe_category"])
