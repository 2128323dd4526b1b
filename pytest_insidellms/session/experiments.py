"""Marker experiments: the cases of one ``@pytest.mark.experiment`` in one module become one
ExperimentResult once all of them have finished; until then each case is only in its module
run's journal (:func:`case_line`). No pytest here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from ..cases import ExperimentInfo, FinishedCase, LoggedResult
from .outcomes import ERROR_TAIL
from ..types import (
    ExperimentResult,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)

_STATUS_OF_OUTCOME: Final = {
    "passed": ResultStatus.SUCCESS, "xpassed": ResultStatus.SUCCESS,
    "failed": ResultStatus.ERROR, "error": ResultStatus.ERROR,
    "skipped": ResultStatus.SKIPPED, "xfailed": ResultStatus.SKIPPED,
}


@dataclass
class ExperimentAggregate:
    """The cases of one marker experiment in one module, until all have finished."""

    module: str
    info: ExperimentInfo
    results: list[ProbeResult] = field(default_factory=list)
    seen: int = 0
    started: float | None = None
    stopped: float | None = None

    @property
    def experiment_id(self) -> str:
        return f"{self.module}::{self.info.name}"

    @property
    def complete(self) -> bool:
        return self.seen >= self.info.cases

    def add(self, case: FinishedCase) -> None:
        """Count a case; it becomes a ProbeResult unless the test returned its own result
        (results logged through the fixture do not count as the case's own)."""
        self.seen += 1
        if returned_its_own(case):
            return
        self.results.append(probe_result(case))
        if case.started is not None:
            self.started = min(self.started or case.started, case.started)
        if case.stopped is not None:
            self.stopped = max(self.stopped or case.stopped, case.stopped)

    def logged_result(self) -> LoggedResult | None:
        """The aggregate as a result to log; None when every case returned its own."""
        if not self.results:
            return None
        return LoggedResult(aggregate(self), self.info.prefix, "aggregated", self.info.params)


def returned_its_own(case: FinishedCase) -> bool:
    return any(r.origin == "returned" for r in case.results)


def probe_result(case: FinishedCase) -> ProbeResult:
    """The ProbeResult a marker case adds to its experiment."""
    return ProbeResult(
        input=case.test_name, status=_STATUS_OF_OUTCOME[case.outcome],
        error=None if case.error is None else case.error[-ERROR_TAIL:],
        latency_ms=case.latency_ms)


def case_line(case: FinishedCase) -> dict[str, Any]:
    """What a module run's journal keeps of a finished case, at once (a killed session loses
    no outcome, nor a marker case whose experiment had not completed): its node id, outcome
    and error type and, for a marker case, its experiment and the fields of the ProbeResult
    it adds (``status``, ``latency_ms``, ``error``; absent when the test returned its own
    result, logged as it arrived). :func:`probe_result_of_line` reads them back."""
    line: dict[str, Any] = {"nodeid": case.nodeid, "outcome": case.outcome}
    if case.error_type is not None:
        line["error_type"] = case.error_type
    for key, value in (("trial", case.trial), ("reruns", case.reruns), ("worker", case.worker),
                       ("teardown_failed", case.teardown_failed)):
        if value:
            line[key] = value
    if case.experiment is not None:
        line["experiment"] = case.experiment.name
        if not returned_its_own(case):  # probe_result's fields, without building one
            line["status"] = _STATUS_OF_OUTCOME[case.outcome].value
            if case.latency_ms is not None:
                line["latency_ms"] = case.latency_ms
            if case.error is not None:
                line["error"] = case.error[-ERROR_TAIL:]
    return line


def probe_result_of_line(line: dict[str, Any]) -> ProbeResult | None:
    """The ProbeResult a :func:`case_line` records; None for a case that added none."""
    if "status" not in line:
        return None
    return ProbeResult(input=str(line["nodeid"]).split("::", 1)[-1],
                       status=ResultStatus(line["status"]), error=line.get("error"),
                       latency_ms=line.get("latency_ms"))


def aggregate(experiment: ExperimentAggregate) -> ExperimentResult:
    """The ExperimentResult of a marker experiment: one ProbeResult per case."""
    info, results = experiment.info, experiment.results
    ran = [r for r in results if r.status is not ResultStatus.SKIPPED]
    passed = sum(r.status is ResultStatus.SUCCESS for r in ran)
    latencies = [r.latency_ms for r in ran if r.latency_ms is not None]
    errors = sum(r.status is ResultStatus.ERROR for r in results)

    def when(stamp: float | None) -> datetime | None:
        return None if stamp is None else datetime.fromtimestamp(stamp, timezone.utc)

    return ExperimentResult(
        experiment_id=experiment.experiment_id,
        model_info=ModelInfo(name=info.model_name, provider=info.model_provider,
                             model_id=info.model_id),
        probe_name=info.probe_name or info.name,
        probe_category=ProbeCategory(info.probe_category),
        results=results,
        score=ProbeScore(
            accuracy=passed / len(ran) if ran else None,
            mean_latency_ms=sum(latencies) / len(latencies) if latencies else None,
            error_rate=errors / len(results) if results else 0.0,
        ),
        started_at=when(experiment.started),
        completed_at=when(experiment.stopped),
    )
