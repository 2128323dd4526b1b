"""MLflowTracker: runs in an MLflow tracking store (sqlite file, tracking server, ...).

Everything goes through an ``MlflowClient`` bound to this tracker's tracking URI, with explicit
run ids. The fluent API (``mlflow.start_run`` and its process-global run stack and tracking
URI) is never touched, so code under test may use it freely, and several runs can be open at
once.

The tracker keeps the run bookkeeping; :class:`_TrackingStore` talks to the store
(experiment, run tags, resume, search, registry), :class:`.mlflow_batching.LogBatcher` buffers
and sends metrics and params, :class:`_ArtifactUploader` names and uploads artifacts.

How data maps to MLflow:

* Nested runs carry the ``mlflow.parentRunId`` tag; config tags become run tags with the value
  ``"true"``; config notes become the run description (``mlflow.note.content``).
* Metrics and params are buffered per run and sent with ``log_batch`` within MLflow's
  per-request limits: when a batch is full, from a daemon thread for a run that sent nothing
  for ``flush_interval`` seconds, on :meth:`MLflowTracker.flush` and at ``end_run``. If a
  request fails, that batch is dropped and the error is raised (as :class:`TrackingError`)
  by the call that sent it or, for the timer, by the next call on the tracker.
* Metric timestamps are nudged so they strictly increase per run (all values of one call
  share one): a metric logged several times at one step ends with its last value in MLflow's
  run view, not the largest. One clock per run rather than one per metric key keeps the
  tracker's memory flat however many keys a run has; calls faster than one a millisecond
  run it a little ahead of the wall clock.
* Params become strings (lists and dicts as compact JSON); values over 6000 characters are
  cut with a :class:`TrackingWarning`. MLflow forbids changing a param: re-logging the same
  value is skipped, and a new value is kept as ``<key>.v2``, ``<key>.v3``... (the first value
  stays under ``<key>``).
* NaN is stored as NaN. MLflow's sql stores have no infinity: ``inf`` reads back as
  ``1.7976931348623157e308`` (the largest float) and ``-inf`` as its negative.
* Artifacts are uploaded at once under their name (the artifact type is not stored); a
  second artifact of a taken name in one run is kept as ``name_2.ext`` (the local backend's
  rule, :func:`.names.numbered_name`). The path the caller logged it from is the run tag
  ``insidellms.artifact_source/<name>``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import posixpath
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from .base import (
    Artifact,
    ExperimentTracker,
    Run,
    TrackingError,
    safe_relative_name,
    sanitize_key,
    utc_now,
)
from .config import TrackingConfig
from .mlflow_batching import MAX_BATCH_LOG_REQUEST_SIZE as MAX_BATCH_LOG_REQUEST_SIZE
from .mlflow_batching import MAX_ENTITIES_PER_BATCH as MAX_ENTITIES_PER_BATCH
from .mlflow_batching import MAX_METRICS_PER_BATCH as MAX_METRICS_PER_BATCH
from .mlflow_batching import MAX_PARAM_VAL_LENGTH as MAX_PARAM_VAL_LENGTH
from .mlflow_batching import MAX_PARAMS_TAGS_PER_BATCH as MAX_PARAMS_TAGS_PER_BATCH
from .mlflow_batching import MAX_TAG_VAL_LENGTH as MAX_TAG_VAL_LENGTH
from .mlflow_batching import LogBatcher, cut, ms
from .mlflow_batching import param_string as param_string
from .names import numbered_name
from .redaction import redact_text
from .sdk_env import ScopedClient, import_mlflow


_STATUS: Final = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
_MISSING_RUN_CODES: Final = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
_EXISTS_CODES: Final = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
_PARENT_TAG: Final = "mlflow.parentRunId"
_NOTE_TAG: Final = "mlflow.note.content"
#: MLflow 3's experiment kind (its UI opens a model-development experiment on its runs).
EXPERIMENT_KIND_TAG: Final = "mlflow.experimentKind"
MODEL_DEVELOPMENT: Final = "custom_model_development"
#: ``<this>/<artifact name>``: the path the caller logged the artifact from.
ARTIFACT_SOURCE_TAG: Final = "insidellms.artifact_source"


@dataclass(eq=False, kw_only=True)
class MLflowRun(Run):
    experiment_id: str
    #: Buffered metrics as ``(key, value, timestamp ms, step)``, oldest first.
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    #: Buffered params, key -> string value.
    params: dict[str, str] = field(default_factory=dict)
    #: Every param key sent or buffered in this run, with its value.
    param_values: dict[str, str] = field(default_factory=dict)
    #: Only for keys logged with a changed value: the latest value and its version number.
    param_latest: dict[str, str] = field(default_factory=dict)
    param_versions: dict[str, int] = field(default_factory=dict)
    #: The last metric timestamp (ms) used in this run.
    clock: int = -1
    #: When (``time.monotonic()``) a request last carried this run's data.
    last_sent: float = 0.0
    #: Artifact names (paths) the run holds; for a resumed run, of the folders listed so far.
    artifact_names: set[str] = field(default_factory=set)
    resumed: bool = False
    listed_folders: set[str] = field(default_factory=set)


class MLflowTracker(ExperimentTracker[MLflowRun]):
    """Logs runs to MLflow (see the module docstring for how data maps).

    ``tracking_uri``: the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``
    in the current directory (MLflow's own default); a relative sqlite path is made absolute
    now. The experiment is ``experiment_name``, else ``config.experiment_name``, else
    ``config.project``; it is created when missing, with ``artifact_location`` or, for sqlite
    stores, the ``mlartifacts`` directory beside the database file (a tracking server picks
    its own). Raises :class:`TrackingError` when the store cannot be reached.
    """

    backend_name = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        config: TrackingConfig | None = None,
        artifact_location: str | None = None,
        *,
        flush_interval: float = 2.0,
    ) -> None:
        super().__init__(config)
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        self.flush_interval = flush_interval
        import_mlflow()  # its request bounds and telemetry switch, without os.environ
        self._entities = importlib.import_module("mlflow.entities")
        self._exception_type: type[Exception] = importlib.import_module(
            "mlflow.exceptions"
        ).MlflowException
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
        self.tracking_uri: str = _absolute_sqlite_uri(uri)
        with _quiet_schema_setup():
            self.client: Any = ScopedClient(importlib.import_module("mlflow.tracking").MlflowClient(
                tracking_uri=self.tracking_uri
            ))
        self.experiment_name: str = (
            experiment_name or self.config.experiment_name or self.config.project
        )
        if experiment_name:
            # The private config copy: a ``with tracker:`` run is named after it too.
            self.config.experiment_name = experiment_name
        self._store = _TrackingStore(self.client, self._exception_type, self.tracking_uri)
        self._batcher = LogBatcher(self.client, self._entities, self._exception_type,
                                   self._store.error, self._lock, self._runs, flush_interval)
        self._artifacts = _ArtifactUploader(self.client)
        self._run_experiments: dict[str, str] = {}
        try:
            with _quiet_schema_setup():
                self.experiment_id: str = self._store.open_experiment(
                    self.experiment_name, artifact_location)
        except self._exception_type as exc:
            raise self._store.error(
                f"cannot open experiment {self.experiment_name!r}", exc) from exc

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: MLflowRun | None) -> MLflowRun:
        self._batcher.raise_background_error()
        if run_id is not None:
            run = self._resume(run_id, name, parent)
        else:
            run = self._store.create_run(self.experiment_id, name, self.config, parent)
        self._run_experiments[run.run_id] = run.experiment_id
        self._batcher.start_timer()
        return run

    def _resume(self, run_id: str, name: str, parent: MLflowRun | None) -> MLflowRun:
        existing = self._store.reopen_run(run_id, parent)
        run = MLflowRun(
            run_id=run_id,
            name=existing.info.run_name or name,
            parent=parent,
            experiment_id=existing.info.experiment_id,
            resumed=True,
        )
        self._batcher.restore(run, existing)
        return run

    def _record_metrics(
        self, run: MLflowRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        self._batcher.raise_background_error()
        self._batcher.record_metrics(run, metrics, step, timestamp)

    def _record_params(self, run: MLflowRun, params: dict[str, Any]) -> None:
        self._batcher.raise_background_error()
        self._batcher.record_params(run, params)

    def _record_artifact(self, run: MLflowRun, artifact: Artifact) -> None:
        self._batcher.raise_background_error()
        self._artifacts.upload(run, artifact)

    def _close_run(self, run: MLflowRun, status: str, ended_at: datetime) -> None:
        try:
            self._batcher.flush_run(run)
        finally:
            if not self._runs:
                self._batcher.halt_timer()
            self.client.set_terminated(
                run.run_id, _STATUS[status], end_time=ms(ended_at.timestamp())
            )
        self._batcher.raise_background_error()

    # -- buffering --------------------------------------------------------------------------

    def flush(self) -> None:
        """Send every buffered metric and param now."""
        with self._lock:
            self._batcher.raise_background_error()
            self._batcher.flush_all()

    def close(self) -> None:
        """Flush and stop the background flush thread. Open runs stay open; the thread
        starts again with the next run."""
        thread = None
        with self._lock:
            try:
                self._batcher.flush_all()
            finally:
                thread = self._batcher.halt_timer()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.flush_interval + 30)

    # -- experiments, locations, models -----------------------------------------------------

    def find_run(self, name: str, parent_run_id: str | None, started_after: datetime) -> str | None:
        """A run still RUNNING with this name and parent, started no earlier than
        ``started_after``: the newest, or None (``sync`` asks when a start was in doubt)."""
        return self._store.find_run(self.experiment_id, name, parent_run_id, started_after)

    def metric_steps(self, run_id: str) -> dict[str, set[int]]:
        """The steps each metric of a stored run already has (``sync`` skips those points)."""
        with self._lock:
            if run_id in self._runs:
                self._batcher.flush_run(self._runs[run_id])
            keys = self.client.get_run(run_id).data.metrics
            return {key: {m.step for m in self.client.get_metric_history(run_id, key)}
                    for key in keys}

    def run_location(self, run_id: str | None = None) -> str | None:
        """The run's page for a tracking server (``<uri>/#/experiments/<id>/runs/<run>``),
        else the ``mlflow ui`` command that shows this store."""
        with self._lock:
            if run_id is None:
                run = self._active_or_none()
                if run is None:
                    return None
                run_id = run.run_id
            experiment_id = self._run_experiments.get(run_id, self.experiment_id)
        if self.tracking_uri.startswith(("http://", "https://")):
            base = self.tracking_uri.rstrip("/")
            return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"mlflow ui --backend-store-uri {shlex.quote(self.tracking_uri)}"

    def log_model(
        self,
        model: Any,
        model_name: str,
        model_flavor: str = "pyfunc",
        *,
        run_id: str | None = None,
        **save_kwargs: Any,
    ) -> str:
        """Save ``model`` with ``mlflow.<model_flavor>.save_model`` and upload it as the
        artifact directory ``model_name`` of a run; return its ``runs:/`` URI.

        For ``pyfunc``, ``model`` is the ``python_model``. ``save_kwargs`` go to
        ``save_model`` (e.g. ``pip_requirements=[...]`` skips MLflow's slow inference).
        """
        name = safe_relative_name(model_name)
        try:
            flavor = importlib.import_module(f"mlflow.{model_flavor}")
        except ImportError as exc:
            raise ValueError(f"MLflow model flavor {model_flavor!r} is unavailable: {exc}") from exc
        with self._lock:
            target = self._resolve(run_id).run_id
        with tempfile.TemporaryDirectory(prefix="insidellms-mlflow-model-") as tmp:
            path = os.path.join(tmp, "model")
            if model_flavor == "pyfunc":
                flavor.save_model(path, python_model=model, **save_kwargs)
            else:
                flavor.save_model(model, path, **save_kwargs)
            with self._lock:
                self.client.log_artifacts(target, path, artifact_path=name)
        return f"runs:/{target}/{name}"

    def register_model(self, model_uri: str, model_name: str) -> Any:
        """Register ``model_uri`` (``runs:/<run id>/<path>`` or a storage URI) as a new
        version of the registered model ``model_name`` (created when missing). Returns the
        ``ModelVersion``."""
        return self._store.register_model(model_uri, model_name)


class _TrackingStore:
    """The tracking store as one tracker sees it, through its ``MlflowClient``: the
    experiment (created with MLflow 3's experiment kind), the tags a new run starts with,
    reopening a run, searching runs, the model registry, and how a failure reads."""

    def __init__(self, client: Any, exception_type: type[Exception], tracking_uri: str) -> None:
        self._client = client
        self._exception_type = exception_type
        self._tracking_uri = tracking_uri
        self._source: dict[str, str] | None = None

    def error(self, what: str, exc: BaseException) -> TrackingError:
        message = redact_text(f"MLflow at {self._tracking_uri}: {what}: {exc}")
        return TrackingError(message, [(MLflowTracker.backend_name, exc)])

    def open_experiment(self, experiment_name: str, artifact_location: str | None) -> str:
        """The id of ``experiment_name``, created when missing."""
        experiment = self._client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = artifact_location
            if location is None:
                location = _default_artifact_location(self._tracking_uri)
            elif len(urlparse(location).scheme) <= 1:  # a local path (maybe C:\\...)
                location = Path(location).resolve().as_uri()
            try:
                created: str = self._client.create_experiment(
                    experiment_name, artifact_location=location,
                    tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT},
                )
                return created
            except self._exception_type as exc:
                # Another process may have created it between our two calls.
                if getattr(exc, "error_code", None) not in _EXISTS_CODES:
                    raise
            experiment = self._client.get_experiment_by_name(experiment_name)
        if experiment.lifecycle_stage == "deleted":
            raise self._exception_type(
                f"experiment {experiment_name!r} is deleted; restore it "
                f"(MlflowClient.restore_experiment) or choose another name"
            )
        found: str = experiment.experiment_id
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            # Without it, MLflow 3's UI opens the experiment on its GenAI traces view.
            self._client.set_experiment_tag(found, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
        return found

    def create_run(
        self, experiment_id: str, name: str, config: TrackingConfig, parent: MLflowRun | None
    ) -> MLflowRun:
        """A new run, tagged with its source, the config's tags and notes, and its parent."""
        started = utc_now()
        tags = {**self._source_tags(), **{sanitize_key(tag): "true" for tag in config.tags}}
        if config.notes:
            tags[_NOTE_TAG] = cut(config.notes, MAX_TAG_VAL_LENGTH, "notes")
        if parent is not None:
            tags[_PARENT_TAG] = parent.run_id
        created = self._client.create_run(
            experiment_id, start_time=ms(started.timestamp()), tags=tags, run_name=name
        )
        return MLflowRun(
            run_id=created.info.run_id,
            name=name,
            parent=parent,
            started_at=started,
            experiment_id=experiment_id,
        )

    def _source_tags(self) -> dict[str, str]:
        """What MLflow's own clients tag a run with (its context providers: ``mlflow.user``,
        ``mlflow.source.name``/``type``, and git when GitPython is there), plus the git tags
        from the ``git`` command when those are missing. Its UI fills "Source" and "Created
        by" from them. Found once per tracker."""
        if self._source is None:
            try:
                registry = importlib.import_module("mlflow.tracking.context.registry")
                found: dict[str, str] = {k: str(v) for k, v in registry.resolve_tags().items()}
            except Exception:  # noqa: BLE001 - the tags are a courtesy; never fail a run for them
                found = {}
            for key, value in _git_tags(Path.cwd()).items():
                found.setdefault(key, value)
            self._source = {key: redact_text(value)[:MAX_TAG_VAL_LENGTH]
                            for key, value in found.items()}
        return self._source

    def reopen_run(self, run_id: str, parent: MLflowRun | None) -> Any:
        """Mark a stored run RUNNING again (under ``parent``) and return it as MLflow has it."""
        try:
            existing = self._client.get_run(run_id)
        except self._exception_type as exc:
            if getattr(exc, "error_code", None) in _MISSING_RUN_CODES:
                raise ValueError(
                    f"cannot resume MLflow run {run_id!r}: no such run in {self._tracking_uri}"
                ) from exc
            raise
        if existing.info.lifecycle_stage == "deleted":
            raise ValueError(f"cannot resume MLflow run {run_id!r}: it was deleted")
        self._client.update_run(run_id, status="RUNNING")
        if parent is not None:
            self._client.set_tag(run_id, _PARENT_TAG, parent.run_id)
        return existing

    def find_run(
        self, experiment_id: str, name: str, parent_run_id: str | None, started_after: datetime
    ) -> str | None:
        if parent_run_id is not None:
            query = f"tags.{_PARENT_TAG} = '{parent_run_id}'"
        else:
            quote = next((q for q in ("'", '"') if q not in name), None)
            query = "" if quote is None else f"attributes.run_name = {quote}{name}{quote}"
        since = ms(started_after.timestamp())
        found = [run for run in self._client.search_runs([experiment_id], filter_string=query)
                 if run.info.run_name == name and run.info.status == "RUNNING"
                 and run.info.start_time >= since
                 and run.data.tags.get(_PARENT_TAG) == parent_run_id]
        newest = max(found, key=lambda run: run.info.start_time, default=None)
        return None if newest is None else str(newest.info.run_id)

    def register_model(self, model_uri: str, model_name: str) -> Any:
        try:
            self._client.create_registered_model(model_name)
        except self._exception_type as exc:
            if getattr(exc, "error_code", None) not in _EXISTS_CODES:
                raise
        source, run_id = model_uri, None
        if model_uri.startswith("runs:/"):
            run_id, _, path = model_uri[len("runs:/") :].partition("/")
            artifact_root = self._client.get_run(run_id).info.artifact_uri.rstrip("/")
            source = f"{artifact_root}/{path}" if path else artifact_root
        return self._client.create_model_version(model_name, source, run_id=run_id)


class _ArtifactUploader:
    """Uploads artifacts under the names asked for (numbered when the run has the name
    already) and tags each with where it came from."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def upload(self, run: MLflowRun, artifact: Artifact) -> None:
        name = self._free_name(run, artifact.name)
        run.artifact_names.add(name)
        source = artifact.source
        if source.is_dir():
            self._client.log_artifacts(run.run_id, str(source), artifact_path=name)
        else:
            folder = posixpath.dirname(name) or None
            filename = posixpath.basename(name)
            if source.name == filename:
                self._client.log_artifact(run.run_id, str(source), artifact_path=folder)
            else:
                # MLflow names an uploaded file after its source; give it the requested name.
                with tempfile.TemporaryDirectory(prefix="insidellms-mlflow-") as tmp:
                    renamed = Path(tmp) / filename
                    shutil.copy2(source, renamed)
                    self._client.log_artifact(run.run_id, str(renamed), artifact_path=folder)
        # MLflow keeps no metadata per artifact: where it came from is a run tag.
        origin = artifact.origin or str(source)
        self._client.set_tag(run.run_id, sanitize_key(f"{ARTIFACT_SOURCE_TAG}/{name}"),
                             cut(origin, MAX_TAG_VAL_LENGTH, f"source of artifact {name!r}"))

    def _free_name(self, run: MLflowRun, name: str) -> str:
        """``name``, numbered as the local backend numbers it when the run has it already (an
        upload under a taken name would replace the earlier file)."""
        if run.resumed:
            # What the run held before this tracker opened it, one listing per folder.
            folder = posixpath.dirname(name)
            if folder not in run.listed_folders:
                run.listed_folders.add(folder)
                listed = self._client.list_artifacts(run.run_id, folder or None)
                run.artifact_names.update(info.path for info in listed)
        return numbered_name(name, run.artifact_names)


# -- helpers -----------------------------------------------------------------------------------


def _git_tags(directory: Path) -> dict[str, str]:
    """MLflow's git tags for the checkout holding ``directory`` (empty outside one, or
    without git)."""
    queries = {
        "mlflow.source.git.commit": ["rev-parse", "HEAD"],
        "mlflow.source.git.branch": ["rev-parse", "--abbrev-ref", "HEAD"],
        "mlflow.source.git.repoURL": ["config", "--get", "remote.origin.url"],
    }
    tags: dict[str, str] = {}
    for tag, args in queries.items():
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True,
                                  text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return tags
        value = done.stdout.strip()
        if done.returncode == 0 and value and value != "HEAD":  # HEAD: a detached checkout
            tags[tag] = value
        elif tag.endswith("commit"):
            return tags  # not a checkout
    return tags


def _sqlite_path(uri: str) -> tuple[Path, str] | None:
    """The database file and query string of a ``sqlite:///`` URI; None for anything else."""
    if not uri.startswith("sqlite:///"):
        return None
    rest, mark, query = uri[len("sqlite:///") :].partition("?")
    if not rest or rest.startswith(":memory:"):
        return None
    return Path(rest), mark + query


def _absolute_sqlite_uri(uri: str) -> str:
    """Pin a relative sqlite path to the current directory, so a later ``chdir`` (tests do
    that) does not move the store, and make sure its directory exists."""
    parsed = _sqlite_path(uri)
    if parsed is None:
        return uri
    path, query = parsed
    path = path if path.is_absolute() else Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}{query}"


def _default_artifact_location(uri: str) -> str | None:
    parsed = _sqlite_path(uri)
    if parsed is None:
        return None
    return (parsed[0].parent / "mlartifacts").as_uri()


@contextlib.contextmanager
def _quiet_schema_setup() -> Iterator[None]:
    """MLflow logs each step of creating a new sqlite store at INFO to stderr, in the middle
    of pytest's progress line; those lines say nothing a user acts on."""
    loggers = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
