"""Trackers written to insideLLMs' contract, driven by this package's machinery.

An insideLLMs tracker overrides the public methods (``start_run(run_name, run_id, nested)``,
``log_metrics(metrics, step)``, ``log_params(params)``, ``log_artifact(artifact_path,
artifact_name, artifact_type)``, ``end_run(status)``) and holds one active run. MultiTracker,
``auto_track`` and the plugin instead open several runs and address each with ``run_id=``.
:class:`ReferenceTrackerAdapter` sits between: it is a tracker of this package (it validates,
keeps the open runs, applies the step rule) whose hooks call the wrapped tracker's public
methods. Given a class or a factory it makes one wrapped tracker per run, so runs open at
once (the plugin's session run and module runs) stay apart; given an instance every run goes
to that instance, as insideLLMs would send it (a run started while another is open is started
``nested=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .base import (
    Artifact,
    ExperimentTracker,
    Run,
    follows_reference_contract,
    unique_run_id,
)
from .config import TrackingConfig


@dataclass(eq=False, kw_only=True)
class ReferenceRun(Run):
    #: The wrapped tracker this run was started on.
    target: Any
    #: The id the wrapped tracker returned from start_run.
    target_run_id: str


class ReferenceTrackerAdapter(ExperimentTracker[ReferenceRun]):
    """This package's contract over a tracker written to insideLLMs' one.

    ``tracker`` is an instance (every run goes to it) or a class or zero-argument factory
    (each run gets a fresh instance). ``config`` defaults to the instance's ``config`` (a
    factory's adapter uses TrackingConfig() unless given one). The run ids are the wrapped
    tracker's, with ``_2``... added when it returns one that is already open.
    """

    def __init__(self, tracker: Any, config: TrackingConfig | None = None) -> None:
        makes_trackers = isinstance(tracker, type) or not hasattr(tracker, "start_run")
        if not callable(tracker) and makes_trackers:
            raise TypeError(f"ReferenceTrackerAdapter needs a tracker or a factory of trackers, "
                            f"got {type(tracker).__name__}")
        self.shared: Any = None if makes_trackers else tracker
        self.factory: Any = tracker if makes_trackers else None
        own_config = getattr(self.shared, "config", None)
        super().__init__(config or (own_config if isinstance(own_config, TrackingConfig) else None))
        kind = tracker if makes_trackers else type(tracker)
        self.backend_name = str(getattr(kind, "backend_name", "custom"))
        if self.backend_name == "custom":
            self.backend_name = getattr(kind, "__name__", "reference")

    def _open_run(self, name: str, run_id: str | None, parent: ReferenceRun | None) -> ReferenceRun:
        target = self.shared if self.factory is None else self.factory()
        # A fresh instance has no active run to nest under.
        nested = parent is not None and self.factory is None
        returned = target.start_run(run_name=name, run_id=run_id, nested=nested)
        target_id = str(returned or run_id or name)
        return ReferenceRun(run_id=unique_run_id(target_id, self._runs), name=name,
                            parent=parent, target=target, target_run_id=target_id)

    def _record_metrics(
        self, run: ReferenceRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        run.target.log_metrics(metrics, step)

    def _record_params(self, run: ReferenceRun, params: dict[str, Any]) -> None:
        run.target.log_params(params)

    def _record_artifact(self, run: ReferenceRun, artifact: Artifact) -> None:
        # Positional: insideLLMs' names (artifact_path...) and ours (path...) both receive it.
        run.target.log_artifact(str(artifact.source), artifact.name, artifact.type)

    def _close_run(self, run: ReferenceRun, status: str, ended_at: datetime) -> None:
        run.target.end_run(status)


def as_contract_tracker(tracker: Any) -> ExperimentTracker[Any]:
    """``tracker`` itself if it follows this package's contract, else wrapped in a
    :class:`ReferenceTrackerAdapter` (a reference-contract subclass or any object with the five
    public methods)."""
    if isinstance(tracker, ExperimentTracker) and not follows_reference_contract(tracker):
        return tracker
    if follows_reference_contract(tracker):
        return ReferenceTrackerAdapter(tracker)
    raise TypeError(f"{type(tracker).__name__} is not a tracker: it has neither this package's "
                    "contract nor insideLLMs' (start_run, log_metrics, log_params, "
                    "log_artifact, end_run)")
