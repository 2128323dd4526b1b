"""TensorBoardTracker: runs as TensorBoard event files, written with tensorboardX or torch.

Layout::

    <log_dir>/<run>/                     one TensorBoard run per tracker run
        events.out.tfevents.*            scalars, texts, histograms
        events.out.tfevents.*.hparams    the run's HParams session, written at end_run
        artifacts/<name>                 copies of logged files and directories
        <child run>/                     a nested run: same layout, one level down

The run id is the run directory relative to ``log_dir`` with ``/`` separators
(``session/test_a.py``). That is also the run's name in TensorBoard's run selector, and it
stays unique and addressable for nested runs. Directory names are made safe for every OS, so
the exact run name is written as the text ``run/name``.

What goes where:

- metrics: one scalar event per value (float32) at the given step with the call's wall time;
  the values of one ``log_metrics`` call share one event record, which costs far less than a
  record per value and reads back the same. Tags are cleaned as tensorboardX cleans them.
- params: a ``| param | value |`` markdown table under the text tag ``params``, one entry per
  ``log_params`` call; and, at ``end_run``, the final params as the run's HParams session in
  the run's own directory. TensorBoard's HParams plugin takes a session's metric values from
  the run's own scalars (the last value logged per tag), so no metric is written twice and
  no extra run appears. The trial name (session group) is the run's path leaf first
  (``test_a.py < session``): unique, and told apart where the dashboard cuts long names;
- artifacts: copied to ``artifacts/<name>`` (``_2``, ``_3``... when the name is taken) and
  described by a markdown table under the text tag ``artifacts``;
- at start: texts ``run/name``, ``run/project``, ``run/parent`` (nested runs), ``run/tags``,
  ``run/notes``;
- at end: text ``run/status`` and scalar ``run/status_code`` (0 finished, 1 failed, 2 killed).

Texts, status and artifact entries are written at the run's highest step so far (0 before any
metric). TensorBoard stores text under ``<tag>/text_summary``. Runs written by earlier
versions kept hparams in an ``hparams`` sub-run; resuming such a run reads its params from
there and removes it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from .base import Artifact, ExperimentTracker, Run, import_sdk, sanitize_key
from .config import TrackingConfig
from .local import claim_directory, free_path
from .names import run_path_parts, safe_dir_name

WRITERS: Final[tuple[str, ...]] = ("auto", "torch", "tensorboardX")

#: ``run/status_code`` values.
STATUS_CODES: Final[dict[str, int]] = {"finished": 0, "failed": 1, "killed": 2}
STATUS_CODE_TAG: Final = "run/status_code"
NAME_TAG: Final = "run/name"
ARTIFACTS_DIR: Final = "artifacts"
#: Where earlier versions wrote a run's hparams (a sub-run of its own).
LEGACY_HPARAMS_DIR: Final = "hparams"
#: Directory names a nested run may not take: its parent uses them (or did, in old runs).
_RESERVED_CHILD_NAMES: Final = frozenset({ARTIFACTS_DIR, LEGACY_HPARAMS_DIR})
#: Ends the name of the event file that holds a run's HParams session.
HPARAMS_FILE_SUFFIX: Final = ".hparams"
#: Joins the parts of a run id, leaf first, into its HParams trial name.
TRIAL_SEPARATOR: Final = " < "

#: What TensorBoard's HParams plugin reads (tensorboard/plugins/hparams/metadata.py).
_HPARAMS_PLUGIN: Final = "hparams"
_SESSION_START_TAG: Final = "_hparams_/session_start_info"
_SESSION_END_TAG: Final = "_hparams_/session_end_info"
#: tensorboardX's add_scalar replaces these in a tag (summary._clean_tag); so do we, so that
#: both writers name a metric alike.
_INVALID_TAG = re.compile(r"[^-/\w.]")


class _FileWriter(Protocol):
    def add_summary(
        self, summary: Any, global_step: int | None = ..., walltime: float | None = ...
    ) -> Any: ...


class _SummaryWriter(Protocol):
    """The part of tensorboardX's and torch's SummaryWriter the tracker uses."""

    file_writer: _FileWriter

    def add_text(
        self, tag: str, text_string: str, global_step: int | None = ..., walltime: float | None = ...
    ) -> Any: ...

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = ...,
        bins: str = ...,
        walltime: float | None = ...,
    ) -> Any: ...

    def flush(self) -> Any: ...

    def close(self) -> Any: ...


@dataclass(eq=False, kw_only=True)
class TensorBoardRun(Run):
    path: Path
    writer: _SummaryWriter
    #: Params merged over every log_params call; written as hparams at end_run.
    params: dict[str, Any] = field(default_factory=dict)
    #: Something was written since the writer was created or last flushed.
    unflushed: bool = True


class TensorBoardTracker(ExperimentTracker[TensorBoardRun]):
    """Writes each run to ``<log_dir>/<run>/`` as TensorBoard events (see the module docstring).

    ``writer="auto"`` uses ``torch.utils.tensorboard`` when torch (with tensorboard) imports,
    else tensorboardX; ``"torch"`` or ``"tensorboardX"`` force one. ``flush_secs`` is how often
    the writer's background thread puts pending events on disk while a run is open.
    """

    backend_name = "tensorboard"

    def __init__(
        self,
        log_dir: str | os.PathLike[str] = "./runs",
        config: TrackingConfig | None = None,
        flush_secs: float = 2.0,
        writer: str = "auto",
    ) -> None:
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, (int, float)) or not flush_secs > 0:
            raise ValueError(f"flush_secs must be a positive number of seconds, got {flush_secs!r}")
        self.writer_kind, self._writer_class = _load_writer(writer)
        self._protos = _Protos(self.writer_kind)
        super().__init__(config)
        # Absolute, so a later chdir (tests, user code) cannot move runs already under way.
        self.log_dir = Path(log_dir).absolute()
        self.flush_secs = float(flush_secs)

    # -- backend interface ------------------------------------------------------------------

    def _open_run(
        self, name: str, run_id: str | None, parent: TensorBoardRun | None
    ) -> TensorBoardRun:
        if run_id is not None:
            path = _path_for_id(self.log_dir, run_id, parent)
            if path.relative_to(self.log_dir).as_posix() in self._runs:
                raise RuntimeError(f"run {run_id!r} is already open in this tracker")
            if path.is_dir():
                return self._resume(path, name, parent)
            path.mkdir(parents=True)
        else:
            base = parent.path if parent is not None else self.log_dir
            base.mkdir(parents=True, exist_ok=True)
            path = claim_directory(base, safe_dir_name(name),
                                   _RESERVED_CHILD_NAMES if parent is not None else frozenset())
        run = TensorBoardRun(
            run_id=path.relative_to(self.log_dir).as_posix(), name=name, parent=parent,
            path=path, writer=self._new_writer(path),
        )
        try:
            run.writer.add_text(NAME_TAG, name, 0)
            run.writer.add_text("run/project", self.config.project, 0)
            if parent is not None:
                run.writer.add_text("run/parent", parent.run_id, 0)
            if self.config.tags:
                run.writer.add_text("run/tags", "\n".join(f"- {t}" for t in self.config.tags), 0)
            if self.config.notes:
                run.writer.add_text("run/notes", self.config.notes, 0)
        except BaseException:
            run.writer.close()
            raise
        return run

    def _resume(self, path: Path, name: str, parent: TensorBoardRun | None) -> TensorBoardRun:
        history = _read_history(path, self._protos)
        run = TensorBoardRun(
            run_id=path.relative_to(self.log_dir).as_posix(), name=history.name or name,
            parent=parent, path=path, writer=self._new_writer(path), params=history.params,
        )
        run.last_step = history.last_step
        return run

    def _record_metrics(
        self, run: TensorBoardRun, metrics: dict[str, float], step: int, timestamp: float
    ) -> None:
        # One event for the call: tensorboardX pickles, queues, frames and checksums (in pure
        # Python) each event, so an event per value costs that many times over.
        value = self._protos.Value
        summary = self._protos.Summary(
            value=[value(tag=scalar_tag(key), simple_value=v) for key, v in metrics.items()]
        )
        run.writer.file_writer.add_summary(summary, step, timestamp)
        run.unflushed = True

    def _record_params(self, run: TensorBoardRun, params: dict[str, Any]) -> None:
        run.params.update(params)
        rows = [(key, _display(value)) for key, value in params.items()]
        run.writer.add_text("params", _markdown_table(("param", "value"), rows), _text_step(run))
        run.unflushed = True

    def _record_artifact(self, run: TensorBoardRun, artifact: Artifact) -> None:
        table = _copy_artifact(run.path, artifact)
        run.writer.add_text("artifacts", table, _text_step(run))
        run.unflushed = True

    def _close_run(self, run: TensorBoardRun, status: str, ended_at: datetime) -> None:
        try:
            step = _text_step(run)
            run.writer.add_text("run/status", status, step)
            code = float(STATUS_CODES[status])
            self._record_metrics(run, {STATUS_CODE_TAG: code}, step, ended_at.timestamp())
            _write_session(run, status, ended_at, self._protos, self._new_writer)
        finally:
            run.writer.close()

    # -- extras -----------------------------------------------------------------------------

    def log_histogram(
        self, tag: str, values: Any, step: int | None = None, *, run_id: str | None = None
    ) -> None:
        """Log the distribution of ``values`` (a sequence or array of finite numbers).

        ``step=None`` continues after the highest step seen so far, as for metrics.
        """
        import numpy as np

        key = sanitize_key(tag)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise TypeError(f"step must be a non-negative int, got {step!r}")
        try:
            array = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise TypeError(f"histogram {key!r}: values must be numbers, got {values!r:.80}") from None
        if array.size == 0:
            raise ValueError(f"histogram {key!r}: no values")
        if not np.isfinite(array).all():
            raise ValueError(f"histogram {key!r}: values must be finite (NaN or infinity found)")
        with self._lock:
            run = self._resolve(run_id)
            if step is None:
                step = run.last_step + 1
            run.last_step = max(run.last_step, step)
            run.writer.add_histogram(key, array, global_step=step, walltime=time.time())
            run.unflushed = True

    def flush(self) -> None:
        """Put everything logged so far to every open run on disk.

        With tensorboardX this closes each run's event file and continues in a new one, so
        call it at milestones, not after every event; ``flush_secs`` keeps data visible in
        between.
        """
        with self._lock:
            for run in self._runs.values():
                if self.writer_kind == "torch":
                    run.writer.flush()  # torch's flush waits for its writer thread's queue
                elif run.unflushed:
                    # tensorboardX's flush() skips events still queued for its writer thread
                    # (measured: a scalar logged just before flush() was missing 20 times in
                    # 20); close() drains that queue. The new file is opened first, so the
                    # run always has a live writer, and sorts after the old one.
                    old, run.writer = run.writer, self._new_writer(run.path)
                    old.close()
                run.unflushed = False

    def run_location(self, run_id: str | None = None) -> str | None:
        """The command that shows this tracker's runs: ``tensorboard --logdir <log_dir>``.

        Every run, nested or not, appears in it under its run id.
        """
        command = ["tensorboard", "--logdir", str(self.log_dir)]
        return subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command)

    def run_dir(self, run_id: str | None = None) -> Path:
        """The directory of a run: the active one, an open one, or any run id under log_dir."""
        with self._lock:
            if run_id is None or run_id in self._runs:
                return self._resolve(run_id).path
        return self.log_dir / run_id

    # -- helpers ----------------------------------------------------------------------------

    def _new_writer(self, path: Path, kind: str = "") -> _SummaryWriter:
        # A unique file name: a run resumed within the same second would otherwise reopen,
        # and truncate, the file its previous writer wrote (tensorboardX names by the second).
        suffix = f".{time.time_ns()}.{uuid.uuid4().hex[:8]}{kind}"
        directory = str(path)
        if self.writer_kind == "torch":
            writer: _SummaryWriter = self._writer_class(
                log_dir=directory, flush_secs=self.flush_secs, filename_suffix=suffix
            )
        else:
            writer = self._writer_class(
                logdir=directory, flush_secs=self.flush_secs, filename_suffix=suffix
            )
        return writer

def _path_for_id(log_dir: Path, run_id: str, parent: TensorBoardRun | None) -> Path:
    """Where ``run_id`` lives: relative to log_dir, or to the parent's directory when a
    parent is given and the id does not already start with the parent's id."""
    parts = run_path_parts(run_id)
    base = log_dir
    if parent is not None and "/".join(parts[: parent.run_id.count("/") + 1]) != parent.run_id:
        base = parent.path
    path = base.joinpath(*parts)
    relative = path.relative_to(log_dir).parts
    if any(part.casefold() in _RESERVED_CHILD_NAMES for part in relative[1:]):
        raise ValueError(f"run_id {run_id!r} names a directory TensorBoardTracker reserves")
    return path


def _load_writer(choice: str) -> tuple[Literal["torch", "tensorboardX"], Any]:
    """Import the SummaryWriter class ``choice`` asks for (the SDK import happens here)."""
    if choice not in WRITERS:
        raise ValueError(f"writer must be one of {', '.join(WRITERS)}; got {choice!r}")
    if choice in ("auto", "torch"):
        try:
            module = importlib.import_module("torch.utils.tensorboard")
            return "torch", module.SummaryWriter
        except ImportError as exc:
            if choice == "torch":
                raise ImportError(
                    "writer='torch' needs PyTorch and tensorboard: pip install torch tensorboard "
                    "(or use writer='tensorboardX')"
                ) from exc
    return "tensorboardX", import_sdk("tensorboardX", "tensorboard").SummaryWriter


# -- text and hparams formatting ---------------------------------------------------------------


def _text_step(run: Run) -> int:
    return max(run.last_step, 0)


def _display(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _markdown_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    def cell(text: str) -> str:
        # A pipe would end the cell, a newline the row.
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scalar_tag(key: str) -> str:
    """The tag a metric is written under: ``key`` as tensorboardX's ``add_scalar`` cleans it
    (characters outside letters, digits, ``- / _ .`` become ``_``; leading slashes go)."""
    if _INVALID_TAG.search(key) is None and not key.startswith("/"):
        return key
    return _INVALID_TAG.sub("_", key).lstrip("/")


def trial_name(run_id: str) -> str:
    """A run's HParams trial name: its id's parts leaf first, ``case < test_a.py < session``.

    Unique, as run ids are (no directory name holds ``<`` or starts or ends with a space),
    and runs differ in their first characters, where the dashboard cuts long names.
    """
    return TRIAL_SEPARATOR.join(reversed(run_id.split("/")))


def _hparam_value(value: Any) -> bool | int | float | str:
    """TensorBoard hparams hold bools, float64 numbers and strings: everything else (lists,
    dicts, None, integers a float64 would round) becomes its JSON text."""
    if isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int) and abs(value) <= 2**53:
        return value
    return json.dumps(value, ensure_ascii=False)


class _Protos:
    """The protobuf classes of the writer's stack (tensorboardX ships its own copies, torch
    writes with tensorboard's), and the HParams records built from them."""

    def __init__(self, writer_kind: str) -> None:
        if writer_kind == "torch":
            names = ("tensorboard.compat.proto.event_pb2", "tensorboard.compat.proto.summary_pb2",
                     "tensorboard.plugins.hparams.plugin_data_pb2",
                     "tensorboard.plugins.hparams.api_pb2")
        else:
            names = ("tensorboardX.proto.event_pb2", "tensorboardX.proto.summary_pb2",
                     "tensorboardX.proto.plugin_hparams_pb2", "tensorboardX.proto.api_pb2")
        event, summary, hparams, api = (importlib.import_module(name) for name in names)
        self.Event: Any = event.Event
        self.Summary: Any = summary.Summary
        self.Value: Any = summary.Summary.Value
        self._metadata: Any = summary.SummaryMetadata
        self.HParamsPluginData: Any = hparams.HParamsPluginData
        # The plugin's statuses have no "killed": it did not succeed.
        self._status = {"finished": api.STATUS_SUCCESS, "failed": api.STATUS_FAILURE,
                        "killed": api.STATUS_FAILURE}

    def session_summary(
        self, trial: str, params: dict[str, Any], started_at: datetime, status: str,
        ended_at: datetime,
    ) -> Any:
        """A Summary with a session's start record (params, trial name) and end record.

        No experiment record: the plugin builds the experiment from every session's params
        and every session run's scalar tags, where one record would be taken for all runs.
        """
        start = self.HParamsPluginData(version=0)
        info = start.session_start_info
        info.group_name = trial
        info.start_time_secs = started_at.timestamp()
        for key, raw in params.items():
            value = _hparam_value(raw)
            if isinstance(value, bool):
                info.hparams[key].bool_value = value
            elif isinstance(value, str):
                info.hparams[key].string_value = value
            else:
                info.hparams[key].number_value = float(value)
        end = self.HParamsPluginData(version=0)
        end.session_end_info.status = self._status[status]
        end.session_end_info.end_time_secs = ended_at.timestamp()
        return self.Summary(value=[self._plugin_value(_SESSION_START_TAG, start),
                                   self._plugin_value(_SESSION_END_TAG, end)])

    def _plugin_value(self, tag: str, data: Any) -> Any:
        plugin = self._metadata.PluginData(plugin_name=_HPARAMS_PLUGIN,
                                           content=data.SerializeToString())
        return self.Value(tag=tag, metadata=self._metadata(plugin_data=plugin))


# -- what a run writes besides its events ----------------------------------------------------


def _copy_artifact(run_path: Path, artifact: Artifact) -> str:
    """Copy ``artifact`` into the run's artifacts directory (numbered when the name is
    taken); return the markdown table that describes it."""
    target = free_path(run_path / ARTIFACTS_DIR / artifact.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if artifact.source.is_dir():
        # Links inside a directory are copied as links: their targets may lie outside it.
        shutil.copytree(artifact.source, target, symlinks=True)
    else:
        shutil.copy2(artifact.source, target)
    return _markdown_table(
        ("name", "type", "path", "source"),
        [(target.relative_to(run_path / ARTIFACTS_DIR).as_posix(), artifact.type,
          str(target), artifact.origin or str(artifact.source))],
    )


def _write_session(
    run: TensorBoardRun,
    status: str,
    ended_at: datetime,
    protos: _Protos,
    new_writer: Callable[[Path, str], _SummaryWriter],
) -> None:
    """The run's HParams session, in an event file of its own in the run directory.

    Its own file, so that a resumed run can replace it: TensorBoard keeps the first
    session record it reads in a directory, and the params it held were loaded on resume.
    """
    for earlier in run.path.glob(f"events.out.tfevents.*{HPARAMS_FILE_SUFFIX}"):
        earlier.unlink()
    if (run.path / LEGACY_HPARAMS_DIR).is_dir():
        shutil.rmtree(run.path / LEGACY_HPARAMS_DIR, ignore_errors=True)
    summary = protos.session_summary(
        trial_name(run.run_id), run.params, run.started_at, status, ended_at
    )
    writer = new_writer(run.path, HPARAMS_FILE_SUFFIX)
    try:
        writer.file_writer.add_summary(summary, _text_step(run), ended_at.timestamp())
    finally:
        writer.close()


# -- reading a run back (for resume) -----------------------------------------------------------


@dataclass
class _History:
    name: str | None = None
    last_step: int = -1
    params: dict[str, Any] = field(default_factory=dict)


def _read_history(path: Path, protos: _Protos) -> _History:
    """What a resumed run needs from its earlier events: name, highest step, and the params of
    its last HParams session (in an old run's ``hparams`` sub-run, or its own directory)."""
    history = _History()
    for directory in (path / LEGACY_HPARAMS_DIR, path):
        for event in _read_events(directory, protos.Event):
            for value in event.summary.value:
                if value.tag == f"{NAME_TAG}/text_summary" and value.tensor.string_val:
                    history.name = value.tensor.string_val[0].decode("utf-8")
                elif value.tag == _SESSION_START_TAG:
                    content = value.metadata.plugin_data.content
                    history.params = _session_params(protos.HParamsPluginData.FromString(content))
                elif directory == path and value.tag != STATUS_CODE_TAG and (
                        value.HasField("simple_value") or value.HasField("histo")):
                    history.last_step = max(history.last_step, event.step)
    return history


def _session_params(data: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, hparam in data.session_start_info.hparams.items():
        kind = hparam.WhichOneof("kind")
        if kind in ("number_value", "string_value", "bool_value"):
            params[key] = getattr(hparam, kind)
    return params


def _read_events(directory: Path, event_class: Any) -> Iterator[Any]:
    """Events of the event files directly in ``directory`` (TFRecord framing: length, length
    CRC, data, data CRC). A record cut short by a crash ends that file."""
    # protobuf ships without type stubs; it is installed with either writer.
    decode_error: type[Exception] = importlib.import_module("google.protobuf.message").DecodeError

    for file in sorted(directory.glob("events.out.tfevents.*")):
        data = file.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            start, end = offset + 12, offset + 12 + length
            if end + 4 > len(data):
                break
            try:
                event = event_class.FromString(data[start:end])
            except decode_error:
                break
            yield event
            offset = end + 4
