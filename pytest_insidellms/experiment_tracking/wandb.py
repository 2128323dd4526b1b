"""WandBTracker: runs in Weights & Biases, online or as offline files for ``wandb sync``.

How the tracker maps onto W&B (W&B has no nested runs; ``group`` and ``job_type`` are the
hierarchy it has):

* Every run of one tree shares ``group=<root run id>``. ``job_type`` follows the depth:
  ``session`` (top level), ``module`` (its children), ``nested`` (deeper). A child's parent
  id is in its config under ``_parent_run_id``.
* Metrics: W&B drops a row whose ``step`` is lower than the run's current step, and our
  steps may arrive out of order. So W&B's own ``_step`` just counts rows, and our step is
  logged as the metric ``insidellms/step``, declared (``define_metric``) as the x-axis of
  every other metric. Nothing is dropped.
* Params go to the run config with ``allow_val_change=True``: a param logged again with a
  new value keeps the new value. They are gathered per run and sent at most every
  ``flush_interval`` seconds (by the next call or a daemon thread), on :meth:`flush` and at
  ``end_run``: each ``config.update`` is a round trip to W&B's service thread, and one per
  logged result cost more than its metrics.
* Artifacts become ``wandb.Artifact`` objects (named by :func:`.names.wandb_artifact_name` and
  :func:`.names.wandb_artifact_type`); a second one of a taken name in one run is numbered as
  the local backend numbers it (``name_2.ext``), and its metadata ``source`` is the path the
  caller logged.
* The status is written to the run summary (``status``) and the run finishes with exit code
  0 (finished), 1 (failed) or 255 (killed); W&B shows any non-zero exit as *failed*.
* ``finish`` runs in a thread bounded by ``finish_timeout``: a hang becomes a
  :class:`TrackingWarning` (the run's data stays on disk for ``wandb sync``).
"""

from __future__ import annotations

import os
import secrets
import shlex
import string
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

from ..types import to_jsonable
from .base import Artifact, ExperimentTracker, Run, TrackingWarning, import_sdk, sanitize_key
from .config import TrackingConfig
from .names import (
    check_wandb_project,
    clean_wandb_tags,
    numbered_name,
    wandb_artifact_name,
    wandb_artifact_type,
)
from .redaction import redact_value
from .sdk_env import disable_wandb_analytics, hide_wandb_run

#: The metric that carries our step; every other metric is charted against it.
STEP_METRIC: Final = "insidellms/step"
#: The config key of a child run that holds its parent's run id.
PARENT_KEY: Final = "_parent_run_id"
#: ``run.finish(exit_code=...)`` per status.
EXIT_CODES: Final[Mapping[str, int]] = {"finished": 0, "failed": 1, "killed": 255}
DEFAULT_JOB_TYPES: Final = ("session", "module", "nested")

#: ``wandb.init`` keywords the tracker sets itself; passing them as extra kwargs is an error.
_OWN_INIT_KEYS: Final = frozenset({
    "project", "entity", "name", "tags", "notes", "config", "id",
    "resume", "reinit", "dir", "mode",
})
#: Settings applied unless the caller's ``settings=`` says otherwise: no system metrics, host
#: metadata or git probing (they cost time and say little about an eval), no console capture
#: (pytest captures output itself) and no W&B banners (the plugin reports where runs are).
_DEFAULT_SETTINGS: Final[Mapping[str, Any]] = {
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "disable_git": True,
    "x_save_requirements": False,
    "console": "off",
    "silent": True,
}
_OFFLINE_MODES: Final = ("offline", "dryrun")
_ID_ALPHABET: Final = string.ascii_lowercase + string.digits


@dataclass(eq=False, kw_only=True)
class WandBRun(Run):
    handle: Any  #: the ``wandb.Run`` object
    group: str  #: the root run's id, shared by the whole tree
    depth: int
    disabled: bool = False  #: ``mode="disabled"``: W&B's no-op run
    #: Params not yet sent to the run config, and when the oldest of them arrived.
    pending_params: dict[str, Any] = field(default_factory=dict)
    pending_since: float = 0.0
    #: Artifact names logged to this run (as the caller named them, numbered when taken).
    artifact_names: set[str] = field(default_factory=set)


class WandBTracker(ExperimentTracker[WandBRun]):
    """Weights & Biases backend; see the module docstring for the mapping.

    ``project``: the argument, else ``config.project``. ``mode``: the argument, else
    ``WANDB_MODE``, else W&B's default (online). ``dir``: where W&B writes (``<dir>/wandb/``),
    else ``WANDB_DIR``, else the current directory. The tracker writes no environment
    variable: offline, it turns W&B's analytics off (a process-wide switch; it would contact a
    W&B host at exit), and its runs are kept out of ``wandb.run`` and of W&B's active runs, so
    code under test calling ``wandb.init``/``wandb.finish`` gets and ends its own runs.
    W&B stages artifact copies and caches in its usual directories (``WANDB_DATA_DIR``,
    ``WANDB_CACHE_DIR``, else the user's data and cache dirs).

    ``group``: every run tree's W&B group instead of its root run's id, so that the runs of
    several processes (CI shards) share one; ``job_type``: the job type of top-level runs
    instead of ``job_types[0]`` (nested runs keep theirs).
    Extra keyword arguments go to every ``wandb.init``; ``settings=`` (a mapping or a
    ``wandb.Settings``) is merged over the tracker's defaults, and a fresh ``wandb.Settings``
    is built for each run. ``run_id=`` in :meth:`start_run` resumes with ``resume="allow"``:
    the run is continued if W&B has it, else created under that id. Offline, W&B cannot
    check: the resumed part is a second run file that ``wandb sync`` appends, and since its
    last step is unknown, omitted steps start again at 0.

    ``flush_interval``: the longest params wait before they reach the run config.
    """

    backend_name = "wandb"

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        mode: str | None = None,
        config: TrackingConfig | None = None,
        dir: str | os.PathLike[str] | None = None,
        finish_timeout: float = 30.0,
        job_types: Sequence[str] = DEFAULT_JOB_TYPES,
        flush_interval: float = 1.0,
        *,
        group: str | None = None,
        job_type: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__(config)
        _check_arguments(init_kwargs, job_types, finish_timeout, flush_interval)
        self.project: str = project or self.config.project
        check_wandb_project(self.project)
        self.config.project = self.project  # the tracker's private copy says where runs go
        for what, value in (("group", group), ("job_type", job_type)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{what} must be a non-empty string, got {value!r}")
        self.group, self.job_type = group, job_type
        self.entity = entity
        self.mode: str | None = mode or os.environ.get("WANDB_MODE") or None
        self.dir = Path(dir or os.environ.get("WANDB_DIR") or os.getcwd()).absolute()
        self.finish_timeout = float(finish_timeout)
        self.flush_interval = float(flush_interval)
        self._params = _ParamSender(self.flush_interval, self._lock, self._runs)
        self.job_types = tuple(job_types)
        self._settings_overrides = _settings_mapping(init_kwargs.pop("settings", None))
        self._init_kwargs = init_kwargs
        self._tags = clean_wandb_tags(self.config.tags, TrackingWarning)
        self._locations = _RunLocations()
        self._wandb = import_sdk("wandb", "wandb")
        if self.offline:
            disable_wandb_analytics()

    @property
    def offline(self) -> bool:
        return self.mode in _OFFLINE_MODES

    # -- extras -----------------------------------------------------------------------------

    def log_table(
        self,
        name: str,
        rows: Iterable[Mapping[str, Any] | Sequence[Any]],
        columns: Sequence[str] | None = None,
        *,
        run_id: str | None = None,
    ) -> None:
        """Log a ``wandb.Table`` under ``name`` at the run's current step.

        ``rows`` are mappings (``columns`` defaults to the first row's keys; a key outside the
        columns is an error, a missing one an empty cell) or sequences (``columns`` required).
        No rows log an empty table with ``columns``, or nothing without them.
        Cells become plain JSON data; credential-looking text in them is redacted.
        """
        key = sanitize_key(name)
        table_data = _table_data(rows, columns, self.config.redact_patterns)
        if table_data is None:
            return  # no rows and no columns: nothing to show (with columns: an empty table)
        columns, data = table_data
        with self._lock:
            run = self._resolve(run_id)
            step = max(run.last_step, 0)
            run.last_step = step
            table = self._wandb.Table(columns=columns, data=data)
            run.handle.log({key: table, STEP_METRIC: step})

    def watch_model(
        self, model: Any, log_freq: int = 100, *, run_id: str | None = None, **kwargs: Any
    ) -> None:
        """``run.watch(model, log_freq=..., **kwargs)`` on the run: gradient and parameter
        histograms of a PyTorch model (W&B raises if torch is missing)."""
        with self._lock:
            self._resolve(run_id).handle.watch(model, log_freq=log_freq, **kwargs)

    def run_location(self, run_id: str | None = None) -> str | None:
        """Online: the run's URL (or ``entity/project/run_id``). Offline: the run's directory
        and one ``wandb sync`` command naming the directory of every run of its tree (its
        top-level run and everything nested below, as opened so far). Also answers for ended
        runs."""
        with self._lock:
            key = self._resolve(None).run_id if run_id is None else run_id
            if key not in self._locations:
                self._open(key)  # raises the usual "no open run" error
            return self._locations.describe(key)

    # -- backend interface ------------------------------------------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: WandBRun | None) -> WandBRun:
        depth = 0 if parent is None else parent.depth + 1
        # The id is chosen here so that a root run can name its own group.
        wanted_id = run_id or _new_run_id()
        group = (self.group or wanted_id) if parent is None else parent.group
        job_type = self.job_type if parent is None and self.job_type else (
            self.job_types[min(depth, len(self.job_types) - 1)])
        kwargs: dict[str, Any] = {
            **self._init_kwargs,
            "project": self.project,
            "entity": self.entity,
            "name": name,
            "tags": list(self._tags),
            "notes": self.config.notes,
            "config": None if parent is None else {PARENT_KEY: parent.run_id},
            "group": group,
            "job_type": job_type,
            "id": wanted_id,
            "reinit": "create_new",
            "dir": str(self.dir),
            "settings": _new_settings(self._wandb, self._settings_overrides, self.finish_timeout),
        }
        if self.mode is not None:
            kwargs["mode"] = self.mode
        if run_id is not None:
            kwargs["resume"] = "allow"
        if self.mode != "disabled":
            self.dir.mkdir(parents=True, exist_ok=True)
        handle = self._wandb.init(**kwargs)
        hide_wandb_run(self._wandb, handle)
        handle.define_metric(STEP_METRIC)
        handle.define_metric("*", step_metric=STEP_METRIC)
        run = WandBRun(run_id=handle.id, name=name, parent=parent, handle=handle, group=group,
                       depth=depth, disabled=handle.settings.mode == "disabled")
        if run_id is not None:
            # An online resume brings the summary back: continue after its last step.
            run.last_step = _summary_step(handle, run.last_step)
        self._locations.add(run, parent)
        return run

    def _record_metrics(
        self, run: WandBRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        self._params.raise_error()
        run.handle.log({**metrics, STEP_METRIC: step})
        self._params.send_if_due(run)

    def _record_params(self, run: WandBRun, params: dict[str, Any]) -> None:
        self._params.raise_error()
        self._params.add(run, params)

    def flush(self) -> None:
        """Send every run's pending params to its config now."""
        with self._lock:
            self._params.raise_error()
            self._params.send_all()

    def _record_artifact(self, run: WandBRun, artifact: Artifact) -> None:
        if run.disabled:
            return  # W&B would still stage a copy of the files on disk
        run.handle.log_artifact(_new_artifact(self._wandb, run, artifact))

    def _close_run(self, run: WandBRun, status: str, ended_at: datetime) -> None:
        error = None
        try:
            self._params.send(run)
            run.handle.summary["status"] = status
        finally:
            _finish_within(self.finish_timeout, run, EXIT_CODES[status],
                           lambda: self._locations.describe(run.run_id))
            if not self._runs:
                error = self._params.stop_timer()
        if error is not None:
            raise error

class _ParamSender:
    """Gathers each run's params and sends them to its config at most every
    ``flush_interval`` seconds: by the next call, or by a daemon thread while the tracker is
    idle (a failure there is kept and raised by the next call)."""

    def __init__(
        self, flush_interval: float, lock: threading.RLock, runs: Mapping[str, WandBRun]
    ) -> None:
        self._flush_interval = flush_interval
        self._lock = lock
        self._runs = runs
        self._flusher: _ParamFlusher | None = None

    def add(self, run: WandBRun, params: dict[str, Any]) -> None:
        if not run.pending_params:
            run.pending_since = time.monotonic()
            if self._flusher is None:
                self._flusher = _ParamFlusher(self, self._flush_interval, self._lock)
        run.pending_params.update(params)
        self.send_if_due(run)

    def send_if_due(self, run: WandBRun) -> None:
        if run.pending_params and time.monotonic() - run.pending_since >= self._flush_interval:
            self.send(run)

    def send(self, run: WandBRun) -> None:
        params, run.pending_params = run.pending_params, {}
        if params:
            run.handle.config.update(params, allow_val_change=True)

    def send_all(self) -> None:
        first_error: Exception | None = None
        for run in list(self._runs.values()):
            try:
                self.send(run)
            except Exception as exc:  # noqa: BLE001 - the other runs still get theirs
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def raise_error(self) -> None:
        flusher = self._flusher
        if flusher is not None and flusher.error is not None:
            error, flusher.error = flusher.error, None
            raise error

    def stop_timer(self) -> Exception | None:
        """Stop the thread (the next param starts another); return what it failed with."""
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return None
        flusher.stop()
        return flusher.error


class _ParamFlusher:
    """A daemon thread that sends pending params every ``flush_interval`` seconds, so they
    reach W&B while the tracker is idle. A failure is kept and raised by the next call."""

    def __init__(self, sender: _ParamSender, flush_interval: float, lock: threading.RLock) -> None:
        self._sender = sender
        self._flush_interval = flush_interval
        self._lock = lock
        self._stop = threading.Event()
        self.error: Exception | None = None
        threading.Thread(target=self._run, name="insidellms-wandb-params", daemon=True).start()

    def stop(self) -> None:
        # No join: the caller holds the lock the thread may be waiting for; it sees the event
        # as soon as it gets the lock, and exits.
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._sender.send_all()
                except Exception as exc:  # noqa: BLE001 - no caller here; see the class docstring
                    self.error = self.error or exc


# -- helpers ----------------------------------------------------------------------------------


def _check_arguments(
    init_kwargs: Mapping[str, Any],
    job_types: Sequence[str],
    finish_timeout: float,
    flush_interval: float,
) -> None:
    """Reject :class:`WandBTracker` arguments it cannot use, before anything is set up."""
    clash = sorted(_OWN_INIT_KEYS.intersection(init_kwargs))
    if clash:
        raise TypeError(
            f"WandBTracker sets {', '.join(clash)} itself; use the tracker's arguments and"
            " TrackingConfig (project, tags, notes) instead of passing them to wandb.init"
        )
    if isinstance(job_types, str) or not job_types or not all(
        isinstance(j, str) and j for j in job_types
    ):
        raise TypeError(f"job_types must be a non-empty sequence of strings, got {job_types!r}")
    for what, seconds in (("finish_timeout", finish_timeout), ("flush_interval", flush_interval)):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"{what} must be a positive number of seconds, got {seconds!r}")


def _new_artifact(wandb: Any, run: WandBRun, artifact: Artifact) -> Any:
    """The ``wandb.Artifact`` of ``artifact``, named for ``run``."""
    # A second artifact of a taken name would become a new version of the first: number
    # it as the local backend does, so both stay visible in the run.
    logged = numbered_name(artifact.name, run.artifact_names)
    run.artifact_names.add(logged)
    name = wandb_artifact_name(logged)
    wb_artifact = wandb.Artifact(
        name, type=wandb_artifact_type(artifact.type, name),
        metadata={"source": artifact.origin or str(artifact.source), "name": logged})
    if artifact.source.is_dir():
        wb_artifact.add_dir(str(artifact.source))
    else:
        wb_artifact.add_file(str(artifact.source), name=PurePosixPath(logged).name)
    return wb_artifact


def _summary_step(handle: Any, default: int) -> int:
    last = handle.summary.get(STEP_METRIC)
    if isinstance(last, (int, float)) and not isinstance(last, bool):
        return int(last)
    return default


def _table_data(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    columns: Sequence[str] | None,
    redact_patterns: Sequence[str],
) -> tuple[list[str], list[list[Any]]] | None:
    """The columns and cells of a table (see :meth:`WandBTracker.log_table`); None for no
    rows and no columns."""
    row_list = list(rows)
    if not row_list and columns is None:
        return None
    if columns is None:
        if not row_list or not isinstance(row_list[0], Mapping):
            raise ValueError("log_table needs columns= unless rows are mappings")
        columns = [str(c) for c in row_list[0]]
    column_list = list(columns)
    return column_list, [_table_row(row, column_list, redact_patterns) for row in row_list]


def _table_row(
    row: Mapping[str, Any] | Sequence[Any], columns: list[str], redact_patterns: Sequence[str]
) -> list[Any]:
    if isinstance(row, Mapping):
        extra = [k for k in row if k not in columns]
        if extra:
            raise ValueError(f"table row has keys outside the columns {columns}: {extra}")
        cells = [row.get(c) for c in columns]
    elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
        if len(row) != len(columns):
            raise ValueError(f"table row has {len(row)} cells for {len(columns)} columns")
        cells = list(row)
    else:
        raise TypeError(f"table rows must be mappings or sequences, got {type(row).__name__}")
    return [redact_value(to_jsonable(c), redact_patterns) for c in cells]


def _finish_within(
    timeout: float, run: WandBRun, exit_code: int, where_is: Callable[[], str | None]
) -> None:
    """``run.handle.finish`` in a thread given ``timeout`` seconds; a hang becomes a
    :class:`TrackingWarning` naming where the run's data stays (``where_is()``)."""
    errors: list[Exception] = []

    def finish() -> None:
        try:
            run.handle.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=finish, name=f"wandb-finish-{run.run_id}", daemon=True)
    worker.start()
    worker.join(timeout)
    timed_out = worker.is_alive() or any(isinstance(e, TimeoutError) for e in errors)
    if timed_out:
        where = where_is()
        warnings.warn(
            f"W&B did not finish run {run.run_id} within {timeout:g} s; the"
            f" tracker moved on and the run's data stays on disk"
            + (f" ({where})" if where else ""),
            TrackingWarning,
            stacklevel=4,
        )
    elif errors:
        raise errors[0]


def _new_settings(wandb: Any, overrides: Mapping[str, Any], finish_timeout: float) -> Any:
    # wandb.init mutates the Settings it is given: every run gets its own.
    known = wandb.Settings.model_fields
    values = {k: v for k, v in _DEFAULT_SETTINGS.items() if k in known}
    # W&B's own bound on the end-of-run upload, so its finish returns rather than being
    # left hanging in the thread _finish_within gives up on.
    bound = {"finish_timeout": finish_timeout, "finish_timeout_raises": True}
    values.update({k: v for k, v in bound.items() if k in known})
    values.update(overrides)
    return wandb.Settings(**values)


def _settings_mapping(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return dict(settings)
    dump = getattr(settings, "model_dump", None)
    if dump is None:
        raise TypeError(
            f"settings must be a mapping or wandb.Settings, got {type(settings).__name__}"
        )
    values: dict[str, Any] = dump(exclude_unset=True)
    return values


def _new_run_id() -> str:
    """Eight lowercase letters and digits, the shape of W&B's own run ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class _RunLocations:
    """Where each run of the tracker is (also after it ended): its online URL, or its
    offline directory and the directories of its whole tree for ``wandb sync``."""

    def __init__(self) -> None:
        self._locations: dict[str, _Location] = {}
        #: Offline run directories by root run id: every directory of one run tree.
        self._offline_dirs: dict[str, list[str]] = {}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._locations

    def add(self, run: WandBRun, parent: WandBRun | None) -> None:
        handle = run.handle
        root = run.run_id if parent is None else self._locations[parent.run_id].root
        location = _Location(root=root)
        if run.disabled:
            pass
        elif handle.offline:
            location.offline_dir = str(handle.sync_dir)
            self._offline_dirs.setdefault(root, []).append(location.offline_dir)
        else:
            location.url = str(handle.url or handle.path)
        self._locations[run.run_id] = location

    def describe(self, run_id: str) -> str | None:
        found = self._locations.get(run_id)
        return found.describe(self._offline_dirs) if found else None


@dataclass
class _Location:
    """Where one run is: online, its URL; offline, its directory, and the ``wandb sync``
    command that uploads its whole tree (a module run's results are in its own directory, so
    the session run's directory alone would leave them offline)."""

    root: str
    url: str | None = None
    offline_dir: str | None = None

    def describe(self, offline_dirs: Mapping[str, list[str]]) -> str | None:
        if self.offline_dir is None:
            return self.url
        tree = offline_dirs.get(self.root, [self.offline_dir])
        command = shlex.join(["wandb", "sync", *dict.fromkeys(tree)])
        return f"{self.offline_dir} (upload with: {command})"
