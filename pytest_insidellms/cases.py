"""The per-case data every consumer of a session reads: tracking, records, the gate, shards.

A :class:`FinishedCase` is what one test (one attempt of one parametrized case) left behind
once its last phase report arrived: its outcome as pytest's summary counts it, the marker
experiment it belongs to, and the results it logged. It is built by the session's report
replay and handed, unchanged, to every consumer. Nothing here knows pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .types import ExperimentResult

Outcome = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("passed", "failed", "skipped", "error", "xfailed",
                                       "xpassed")

#: Where a result came from. A marker case counts itself into its experiment unless the test
#: *returned* its own result; results logged through the fixture never change that.
ResultOrigin = Literal["returned", "fixture", "aggregated"]


@dataclass(frozen=True)
class ExperimentInfo:
    """What ``@pytest.mark.experiment`` declares about the cases of one experiment."""

    name: str
    prefix: str
    model_name: str = ""
    model_provider: str = ""
    model_id: str = ""
    probe_name: str = ""
    probe_category: str = "custom"
    params: Mapping[str, Any] = field(default_factory=dict)
    #: How many cases (attempts included) the module holds; the experiment is complete then.
    cases: int = 0
    #: How many times each case runs (``trials=K`` / ``--track-trials``).
    trials: int = 1


@dataclass(frozen=True)
class LoggedResult:
    """An ExperimentResult on its way to a run, with the prefix of its metric names."""

    result: ExperimentResult
    prefix: str
    origin: ResultOrigin
    #: Extra params logged beside the result (the marker's ``params``), already plain JSON.
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FinishedCase:
    """One test attempt, complete."""

    nodeid: str
    #: The module's path as node ids spell it (``evals/test_qa.py``).
    module: str
    outcome: Outcome
    #: The exception class of the failure (``AssertionError``), None when nothing failed.
    error_type: str | None = None
    #: The tail of pytest's failure text, None when nothing failed.
    error: str | None = None
    #: The call phase's duration; None when the call never ran.
    latency_ms: float | None = None
    #: Wall-clock bounds of the call phase (seconds since the epoch), for tracking only.
    started: float | None = None
    stopped: float | None = None
    experiment: ExperimentInfo | None = None
    #: Results the test returned (origin ``returned``), in order.
    results: tuple[LoggedResult, ...] = ()
    #: The call failed and teardown errored too (pytest counts a failure and an error).
    teardown_failed: bool = False
    #: 0-based trial of a case run several times; 0 otherwise.
    trial: int = 0
    #: Earlier attempts pytest-rerunfailures made before this, the final one.
    reruns: int = 0
    #: The xdist worker that ran this copy, set only under ``--dist each`` (where every
    #: worker runs every test and each copy is a case of its own).
    worker: str | None = None

    @property
    def example_id(self) -> str:
        """The parametrization id (``gpt-4-case 1``), else the test's name."""
        path = self.nodeid.split("::", 1)[-1]
        function, bracket, params = path.partition("[")
        return params.removesuffix("]") if bracket else function.split("::")[-1]

    @property
    def test_name(self) -> str:
        """The node id after the module: ``TestQA::test_x[case]``."""
        return self.nodeid.split("::", 1)[-1]

    @property
    def ran(self) -> bool:
        return self.outcome not in ("skipped", "xfailed")

    @property
    def passed(self) -> bool:
        """Counted as a pass by experiments and rates (xpassed under non-strict xfail too)."""
        return self.outcome in ("passed", "xpassed")
