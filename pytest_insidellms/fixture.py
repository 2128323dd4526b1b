"""The ``tracker`` fixture: what a test holds to log anything a returned result does not carry.

Calls are validated where they are made, so a bad value fails the test that passed it, with or
without ``--track``; then they become typed events on the test's report (see :mod:`.wire`) and
the process that talks to backends replays them. One path, with or without xdist.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

from .experiment_tracking.base import (
    check_step,
    sanitize_key,
    validate_artifact,
    validate_metrics,
    validate_params,
)
from .experiment_tracking.results import flatten_experiment_result
from .types import ExperimentResult
from .wire import (
    ArtifactEvent,
    Event,
    MetricsEvent,
    ParamsEvent,
    ProblemEvent,
    ResultEvent,
    Target,
)

#: Fixture artifacts are snapshotted here (under the track dir) until they are replayed.
STAGING = ".staging"


class EventSink(Protocol):
    def append(self, event: Event, /) -> None: ...


class TrackerFixture:
    """Logs into the test's module run, each metric, param and result named under the test
    case's prefix (``test_x/case-1/ece``, the prefix a returned result gets), so the cases of
    one parametrized test never share a series or a param. :attr:`module` logs into the
    module run and :attr:`session` into the session run, both without a prefix.

    Without ``--track`` every call still validates its input and then does nothing.
    """

    def __init__(self, events: EventSink | None, staging_dir: Path | None,
                 target: Target = "module", prefix: str | Callable[[], str] = "") -> None:
        self._events = events
        self._staging_dir = staging_dir
        self._target: Target = target
        #: A callable for shared_tracker: the prefix of whichever test is running.
        self._prefix = prefix

    @property
    def enabled(self) -> bool:
        """True when the session is tracked."""
        return self._events is not None

    @property
    def prefix(self) -> str:
        """What this tracker puts before every metric, param and result name."""
        return self._prefix if isinstance(self._prefix, str) else self._prefix()

    @property
    def module(self) -> TrackerFixture:
        """The same API, aimed at the module run as a whole: names are logged as given."""
        return TrackerFixture(self._events, self._staging_dir, target="module")

    @property
    def session(self) -> TrackerFixture:
        """The same API, aimed at the session run: names are logged as given."""
        return TrackerFixture(self._events, self._staging_dir, target="session")

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        clean = validate_metrics(metrics)
        check_step(step)
        self._emit(MetricsEvent(self._target, self._prefixed(clean), step))

    def log_params(self, params: dict[str, Any]) -> None:
        self._emit(ParamsEvent(self._target, self._prefixed(validate_params(params))))

    def log_artifact(
        self, path: str | os.PathLike[str], name: str | None = None, type: str | None = None
    ) -> None:
        """Snapshot a file or directory now: later changes to the source are not logged.
        Artifacts keep their names (no prefix: a second one of a name becomes ``name_2``)."""
        artifact = validate_artifact(path, name, type)
        if self._events is None or self._staging_dir is None:
            return
        holder = self._staging_dir / uuid.uuid4().hex
        copy = holder / Path(artifact.name).name
        try:
            holder.mkdir(parents=True)
            if artifact.source.is_dir():
                shutil.copytree(artifact.source, copy, symlinks=True)
            else:
                shutil.copy2(artifact.source, copy)
        except OSError as exc:  # the track dir is full, unwritable, not a directory...
            shutil.rmtree(holder, ignore_errors=True)
            self._emit(ProblemEvent(self._target, f"artifact {artifact.name!r} not logged: "
                                                  f"{exc.__class__.__name__}: {exc}"))
            return
        self._emit(ArtifactEvent(self._target, str(copy), artifact.name, artifact.type,
                                 str(artifact.source.absolute())))

    def log_experiment_result(self, result: Any, prefix: str = "") -> None:
        """``prefix`` goes after this tracker's own (``test_x/case-1/<prefix>accuracy``)."""
        metrics, params = flatten_experiment_result(result, prefix)  # raises naming a field
        if not isinstance(result, ExperimentResult) and not hasattr(result, "results"):
            # A summary alone (success_rate, counts, ...): its figures are all there is.
            self.log_metrics(metrics)
            if params:
                self.log_params(params)
            return
        self._emit(ResultEvent(self._target, as_experiment_result(result), self.prefix + prefix,
                               "fixture"))

    def _prefixed(self, clean: dict[str, Any]) -> dict[str, Any]:
        prefix = self.prefix
        if not prefix:
            return clean
        # Names were checked already; the joined name is only re-spelled (a long one is
        # shortened with a hash, as any logged name is).
        return {sanitize_key(prefix + key): value for key, value in clean.items()}

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            self._events.append(event)


def as_experiment_result(value: Any) -> ExperimentResult:
    """An ExperimentResult as it is, or any object with its attributes converted once."""
    if isinstance(value, ExperimentResult):
        return value
    return ExperimentResult.from_dict(_result_fields(value))


def _result_fields(result: Any) -> dict[str, Any]:
    """Plain data from an object shaped like an ExperimentResult."""
    from .types import to_jsonable

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
