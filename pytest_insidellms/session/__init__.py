"""The process that talks to backends (the single pytest process or the xdist controller).

Split by role, the way pytest-xdist splits its controller: the report replay
(:mod:`.assembler`), the pure outcome state machine (:mod:`.outcomes`) and marker aggregation
(:mod:`.experiments`), the session's runs (:mod:`.tracking`), the backends (:mod:`.backends`),
the run files (:mod:`.records`), the regression gate (:mod:`.gate`), one problem sink (:mod:`.problems`), SIGTERM
(:mod:`.signals`) and what the terminal and JUnit show (:mod:`.reporting`). Imported only by
a session with tracking or records on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..options import Settings
from .assembler import CaseAssembler, CaseConsumer
from .backends import Backends
from .problems import ProblemSink
from .records import SessionRecords
from .reporting import TrackingReport
from .tracking import TrackedSession

if TYPE_CHECKING:
    from ..plugin import TrackingHooks
    from .gate import SessionGate


def start(config: pytest.Config, settings: Settings, warning: type[Warning],
          hooks: TrackingHooks) -> CaseAssembler:
    """Build the session side and register its plugin objects with pytest."""
    problems = ProblemSink(config, warning, settings.strict,
                           settings.tracking.redact_patterns)
    if settings.shard is not None:
        from .shards import prepare

        prepare(settings)
    tracked = _tracked_session(config, settings, problems) if settings.enabled else None
    hooks.usable = list(tracked.backends.names) if tracked is not None else []
    # Records first: at the end they reach the session run before tracking ends it.
    gate = _gate(config, settings, problems, tracked)
    records = SessionRecords(config, settings, problems, tracked,
                             collected=lambda: assembler.collected, gate=gate)
    report = TrackingReport(config, tracked, records, problems)
    consumers: list[CaseConsumer] = [records, *([gate] if gate else []),
                                     *([tracked] if tracked else []), report]
    assembler = CaseAssembler(config, consumers, problems, hooks)
    config.pluginmanager.register(assembler, "insidellms-session")
    config.pluginmanager.register(records, "insidellms-records")
    config.pluginmanager.register(report, "insidellms-report")
    if gate is not None:
        config.pluginmanager.register(gate, "insidellms-gate")
    return assembler


def _gate(config: pytest.Config, settings: Settings, problems: ProblemSink,
          tracked: TrackedSession | None) -> SessionGate | None:
    if settings.gate is None:
        return None
    from .gate import SessionGate  # the gate, its statistics and baselines: only when asked

    gate = SessionGate(config, settings, settings.gate, problems, tracked)
    gate.resolve()
    return gate


def _tracked_session(config: pytest.Config, settings: Settings,
                     problems: ProblemSink) -> TrackedSession:
    # Before any tracker exists: a hook-provided one is built when the backends are
    # checked and copies the config when it is constructed.
    try:
        for tags in config.hook.pytest_insidellms_session_tags(config=config):
            settings.tracking.tags.extend(str(t) for t in tags or ())
    except Exception as exc:
        problem = f"pytest_insidellms_session_tags failed: {type(exc).__name__}: {exc}"
        problems.add("hooks", problem)
        problems.config_time_warning(f"insidellms tracking: {problem} (no tags from hooks)")
    return TrackedSession(config, Backends(config, settings, problems), problems)
