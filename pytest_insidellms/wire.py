"""What travels from a test to the process that talks to backends.

A test's tracking data rides on its pytest reports as a :class:`Payload`: the events the test
produced (fixture calls, returned results) and the facts the replaying process cannot collect
itself (how many tests its module has, the marker experiment). In a single process the payload
stays a Python object from the test to the tracker. Only where pytest-xdist serialises a report
does it become plain JSON, through :func:`to_wire` and :func:`from_wire`, with
``ExperimentResult.to_dict``/``from_dict`` as the one serializer of results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Union

from .cases import ExperimentInfo, ResultOrigin
from .types import ExperimentResult

Target = Literal["module", "session"]


@dataclass(frozen=True)
class MetricsEvent:
    target: Target
    metrics: Mapping[str, float]
    step: int | None = None


@dataclass(frozen=True)
class ParamsEvent:
    target: Target
    params: Mapping[str, Any]


@dataclass(frozen=True)
class ArtifactEvent:
    target: Target
    #: The staged snapshot; removed once the artifact is replayed.
    path: str
    name: str
    type: str
    #: The path the test logged, shown as the artifact's source.
    source: str


@dataclass(frozen=True)
class ResultEvent:
    target: Target
    result: ExperimentResult
    prefix: str
    origin: ResultOrigin
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProblemEvent:
    """A fixture call that could not be carried out for a reason that is not the test's
    fault (the track dir is full or unwritable): a tracking problem, never a test failure."""

    target: Target
    message: str


Event = Union[MetricsEvent, ParamsEvent, ArtifactEvent, ResultEvent, ProblemEvent]


class TestEvents(list[Event]):
    """The events of one test, filled by the test (its fixture, its return value).

    Once the test's last report is made, an append (the fixture called from a thread the test
    left running) goes to ``late`` with the test's node id instead: it travels on the next
    report of this process, or at the end of the session.
    """

    def __init__(self, nodeid: str, late: list[tuple[str, Event]]) -> None:
        super().__init__()
        self.nodeid = nodeid
        self.late = late
        self.closed = False

    def append(self, event: Event) -> None:
        if self.closed:
            self.late.append((self.nodeid, event))
        else:
            super().append(event)


@dataclass
class Payload:
    """The tracking data of one phase report."""

    #: Tests collected in the report's module (the replaying process does not collect
    #: under xdist, and needs it to know when a module run is complete).
    module_tests: int | None = None
    events: list[Event] = field(default_factory=list)
    experiment: ExperimentInfo | None = None
    #: The exception class of a failing phase (``AssertionError``).
    error_type: str | None = None
    #: Events of tests that had already ended (see TestEvents), with their node ids.
    late: list[tuple[str, Event]] = field(default_factory=list)
    #: Every node id the sending process collected, before deselection: on its first
    #: payload only (the run id of records hashes them; an xdist controller collects none).
    collected: list[str] | None = None


# -- the plain-JSON form, for pytest-xdist ------------------------------------------------------


class WireEvent(TypedDict, total=False):
    kind: Literal["metrics", "params", "artifact", "result", "problem"]
    target: Target
    metrics: dict[str, float]
    step: int | None
    params: dict[str, Any]
    path: str
    name: str
    type: str
    source: str
    result: dict[str, Any]
    prefix: str
    origin: ResultOrigin
    message: str


class WireExperiment(TypedDict):
    name: str
    prefix: str
    model_name: str
    model_provider: str
    model_id: str
    probe_name: str
    probe_category: str
    params: dict[str, Any]
    cases: int
    trials: int


class WirePayload(TypedDict, total=False):
    module_tests: int | None
    events: list[WireEvent]
    experiment: WireExperiment | None
    error_type: str | None
    late: list[tuple[str, WireEvent]]
    collected: list[str]


def to_wire(payload: Payload) -> WirePayload:
    wire: WirePayload = {"module_tests": payload.module_tests,
                         "events": [_event_to_wire(e) for e in payload.events],
                         "error_type": payload.error_type,
                         "late": late_to_wire(payload.late)}
    info = payload.experiment
    if info is not None:
        wire["experiment"] = {
            "name": info.name, "prefix": info.prefix, "model_name": info.model_name,
            "model_provider": info.model_provider, "model_id": info.model_id,
            "probe_name": info.probe_name, "probe_category": info.probe_category,
            "params": dict(info.params), "cases": info.cases, "trials": info.trials,
        }
    if payload.collected is not None:
        wire["collected"] = payload.collected
    return wire


def from_wire(wire: WirePayload) -> Payload:
    info = wire.get("experiment")
    return Payload(
        module_tests=wire.get("module_tests"),
        events=[_event_from_wire(e) for e in wire.get("events", ())],
        experiment=None if info is None else ExperimentInfo(**info),
        error_type=wire.get("error_type"),
        late=late_from_wire(wire.get("late", [])),
        collected=wire.get("collected"),
    )


def late_to_wire(late: list[tuple[str, Event]]) -> list[tuple[str, WireEvent]]:
    return [(nodeid, _event_to_wire(event)) for nodeid, event in late]


def late_from_wire(wire: list[tuple[str, WireEvent]]) -> list[tuple[str, Event]]:
    return [(nodeid, _event_from_wire(event)) for nodeid, event in wire]


def _event_to_wire(event: Event) -> WireEvent:
    if isinstance(event, MetricsEvent):
        return {"kind": "metrics", "target": event.target, "metrics": dict(event.metrics),
                "step": event.step}
    if isinstance(event, ParamsEvent):
        return {"kind": "params", "target": event.target, "params": dict(event.params)}
    if isinstance(event, ArtifactEvent):
        return {"kind": "artifact", "target": event.target, "path": event.path,
                "name": event.name, "type": event.type, "source": event.source}
    if isinstance(event, ProblemEvent):
        return {"kind": "problem", "target": event.target, "message": event.message}
    return {"kind": "result", "target": event.target, "result": event.result.to_dict(),
            "prefix": event.prefix, "origin": event.origin, "params": dict(event.params)}


def _event_from_wire(wire: WireEvent) -> Event:
    kind, target = wire["kind"], wire["target"]
    if kind == "metrics":
        return MetricsEvent(target, wire["metrics"], wire.get("step"))
    if kind == "params":
        return ParamsEvent(target, wire["params"])
    if kind == "artifact":
        return ArtifactEvent(target, wire["path"], wire["name"], wire["type"], wire["source"])
    if kind == "problem":
        return ProblemEvent(target, wire["message"])
    if kind == "result":
        return ResultEvent(target, ExperimentResult.from_dict(wire["result"]), wire["prefix"],
                           wire["origin"], wire.get("params", {}))
    raise ValueError(f"unknown tracking event {kind!r}")
