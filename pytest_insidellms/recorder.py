"""What a test holds as the ``tracker`` fixture, and how its calls travel.

Calls are validated where they are made (so a bad value fails the test that passed it, with or
without ``--track``) and recorded as plain-JSON events. The plugin attaches a test's events to
the pytest report of the phase they happened in; the process that talks to backends (the single
pytest process or the xdist controller) replays them. One path, with or without xdist.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .experiment_tracking.base import (
    ExperimentTracker,
    validate_artifact,
    validate_metrics,
    validate_params,
)
from .experiment_tracking.results import flatten_experiment_result
from .types import to_jsonable

Event = dict[str, Any]

STAGING = ".staging"


class TrackerFixture:
    """Logs into the test's module run; :attr:`session` logs into the session run.

    Without ``--track`` every call still validates its input and then does nothing.
    """

    def __init__(self, events: list[Event] | None, staging_dir: Path | None,
                 target: str = "module") -> None:
        self._events = events
        self._staging_dir = staging_dir
        self._target = target

    @property
    def enabled(self) -> bool:
        """True when the session is tracked."""
        return self._events is not None

    @property
    def session(self) -> TrackerFixture:
        """The same API, aimed at the session run."""
        return TrackerFixture(self._events, self._staging_dir, target="session")

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        clean = validate_metrics(metrics)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise TypeError(f"step must be a non-negative int, got {step!r}")
        self._emit({"kind": "metrics", "metrics": clean, "step": step})

    def log_params(self, params: dict[str, Any]) -> None:
        self._emit({"kind": "params", "params": validate_params(params)})

    def log_artifact(
        self, path: str | os.PathLike[str], name: str | None = None, type: str | None = None
    ) -> None:
        """Snapshot a file or directory now: later changes to the source are not logged."""
        artifact = validate_artifact(path, name, type)
        if self._events is None or self._staging_dir is None:
            return
        holder = self._staging_dir / uuid.uuid4().hex
        copy = holder / Path(artifact.name).name
        holder.mkdir(parents=True)
        if artifact.source.is_dir():
            shutil.copytree(artifact.source, copy, symlinks=True)
        else:
            shutil.copy2(artifact.source, copy)
        self._emit({"kind": "artifact", "path": str(copy), "name": artifact.name,
                    "type": artifact.type})

    def log_experiment_result(self, result: Any, prefix: str = "") -> None:
        flatten_experiment_result(result, prefix)  # validates; raises naming a bad field
        self._emit(result_event(result, prefix))

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            event["target"] = self._target
            self._events.append(event)


def module_of(nodeid: str) -> str:
    """The test module's path as node ids spell it: the name of its module run."""
    return nodeid.split("::", 1)[0]


def result_event(result: Any, prefix: str, params: dict[str, Any] | None = None) -> Event:
    event: Event = {"kind": "result", "target": "module", "prefix": prefix,
                    "result": result_to_dict(result)}
    if params:
        event["params"] = validate_params(params)
    return event


def result_to_dict(result: Any) -> dict[str, Any]:
    """Plain JSON for an ExperimentResult or any object with its attributes."""
    def attrs(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
        return {n: to_jsonable(getattr(obj, n)) for n in names if getattr(obj, n, None) is not None}

    model = getattr(result, "model_info", None)
    score = getattr(result, "score", None)
    category = getattr(result, "probe_category", None)
    return {
        "experiment_id": str(getattr(result, "experiment_id", "") or ""),
        "model_info": {
            "name": str(getattr(model, "name", "") or ""),
            "provider": str(getattr(model, "provider", "") or ""),
            "model_id": str(getattr(model, "model_id", "") or ""),
            **attrs(model, ("max_tokens", "supports_streaming", "supports_chat", "extra")),
        },
        "probe_name": str(getattr(result, "probe_name", "") or ""),
        "probe_category": str(to_jsonable(category) or "custom").lower(),
        "results": [
            {"status": str(to_jsonable(getattr(r, "status", "success"))).lower(),
             "input": to_jsonable(getattr(r, "input", None)),
             **attrs(r, ("output", "error", "latency_ms", "metadata"))}
            for r in getattr(result, "results", None) or []
        ],
        "score": None if score is None else attrs(score, (
            "accuracy", "precision", "recall", "f1_score", "mean_latency_ms", "total_tokens",
            "error_rate", "custom_metrics")),
        **attrs(result, ("started_at", "completed_at", "config", "metadata")),
    }


def replay(tracker: ExperimentTracker[Any], event: Event, run_id: str) -> None:
    """Apply one non-result event to ``run_id`` (results go through the controller's hooks)."""
    kind = event["kind"]
    if kind == "metrics":
        tracker.log_metrics(event["metrics"], event.get("step"), run_id=run_id)
    elif kind == "params":
        tracker.log_params(event["params"], run_id=run_id)
    elif kind == "artifact":
        staged = Path(event["path"])
        try:
            tracker.log_artifact(staged, event["name"], event["type"], run_id=run_id)
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
    else:
        raise ValueError(f"unknown tracking event {kind!r}")
