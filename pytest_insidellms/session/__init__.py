"""The process that talks to backends (the single pytest process or the xdist controller).

Split by role, the way pytest-xdist splits its controller: the report replay
(:mod:`.assembler`), the pure outcome state machine (:mod:`.outcomes`) and marker aggregation
(:mod:`.experiments`), the session's runs (:mod:`.tracking`), the backends (:mod:`.backends`),
one problem sink (:mod:`.problems`), SIGTERM (:mod:`.signals`) and what the terminal and JUnit
show (:mod:`.reporting`). Imported only by a tracked session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..options import Settings
from .assembler import CaseAssembler
from .backends import Backends
from .problems import ProblemSink
from .reporting import TrackingReport
from .tracking import TrackedSession

if TYPE_CHECKING:
    from ..plugin import TrackingHooks


def start(config: pytest.Config, settings: Settings, warning: type[Warning],
          hooks: TrackingHooks) -> CaseAssembler:
    """Build the session side and register its plugin objects with pytest."""
    problems = ProblemSink(config, warning, settings.strict,
                           settings.tracking.redact_patterns)
    # Before any tracker exists: a hook-provided one is built when the backends are
    # checked and copies the config when it is constructed.
    try:
        for tags in config.hook.pytest_insidellms_session_tags(config=config):
            settings.tracking.tags.extend(str(t) for t in tags or ())
    except Exception as exc:
        problem = f"pytest_insidellms_session_tags failed: {type(exc).__name__}: {exc}"
        problems.add("hooks", problem)
        problems.config_time_warning(f"insidellms tracking: {problem} (no tags from hooks)")
    backends = Backends(config, settings, problems)
    hooks.usable = list(backends.names)
    tracked = TrackedSession(config, backends, problems)
    report = TrackingReport(config, tracked, problems)
    assembler = CaseAssembler(config, [tracked, report], problems, hooks)
    config.pluginmanager.register(assembler, "insidellms-session")
    config.pluginmanager.register(report, "insidellms-report")
    return assembler
