"""SpoolingTracker: a remote backend off the caller's clock, and nothing lost when it fails.

Every call is appended to a local journal (a LocalFileTracker run tree, the *spool*), which is
the only I/O the caller waits for, and queued. One delivery thread feeds the queue, in order,
to the remote tracker's core. The run id a caller gets is the spool's; the remote's own id is
learnt on the delivery thread. The remote may be given as a zero-argument factory, built on
the delivery thread: a remote that cannot even be built (its server is down) is an outage like
any other, with everything spooled.

Each spooled run keeps, in ``sync.json``, the remote run's id and how many of its journal
entries are known to have been delivered: everything before the remote's last successful
flush; or, when delivery stopped while the remote was creating the run, ``start_in_doubt``
(the remote may have the run without our knowing its id). The first remote failure stops
delivery; what follows stays in the spool only, :meth:`SpoolingTracker.outage` says what
happened, and ``python -m pytest_insidellms sync`` replays the rest. A top-level run whose end
reached the remote is deleted from the spool.

The delivery thread runs only while something is queued or open on the remote. Warnings the
remote raises there follow the process's warning filters; one turned into an error there is a
remote failure like any other (nothing is lost).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from .base import CLOSE, FLUSH, Artifact, ExperimentTracker, Run, TrackingWarning
from .config import TrackingConfig
from .journal import (
    ArtifactEntry,
    JournalEntry,
    MetricsEntry,
    ParamsEntry,
    dispatch,
    result_entries,
    write_json_atomic,
)
from .local import LocalFileTracker, LocalRun
from .redaction import redact_text

SYNC_STATE = "sync.json"

RemoteFactory = Callable[[], ExperimentTracker[Any]]


def sync_key(tracker: ExperimentTracker[Any]) -> str:
    """Names the destination of a tracker, so a replay knows which remote ids are its own.
    Credentials in it (``https://user:token@host``) are masked: the key is written to disk,
    and the host and user still tell destinations apart."""
    parts = [tracker.backend_name]
    for attribute in ("tracking_uri", "experiment_name", "entity", "project"):
        value = getattr(tracker, attribute, None)
        if value:
            parts.append(f"{attribute}={redact_text(str(value))}")
    return " ".join(parts)


def read_sync_state(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        state: dict[str, dict[str, Any]] = json.loads((run_dir / SYNC_STATE).read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return state


def write_sync_state(run_dir: Path, key: str, **fields: Any) -> None:
    state = read_sync_state(run_dir)
    state[key] = {**state.get(key, {}), **fields}
    write_json_atomic(run_dir / SYNC_STATE, state)


@dataclass(eq=False, kw_only=True)
class SpoolRun(Run):
    local: LocalRun
    path: Path
    # Written by the delivery thread:
    remote: Run | None = None
    started: bool = False  #: the start was handled (delivered, or given up)
    sent: int = 0  #: journal entries handed to the remote
    delivered: int = 0  #: journal entries before the remote's last successful flush
    in_doubt: bool = False  #: its start was under way when delivery stopped


class SpoolingTracker(ExperimentTracker[SpoolRun]):
    """Wraps ``remote`` (see the module docstring). It never raises for the remote: the first
    failure is a :class:`TrackingWarning` on the caller's next call, and :meth:`outage`
    describes it afterwards.

    ``remote`` is a tracker or a factory of one; with a factory, pass ``backend_name`` and
    the ``config`` the remote is built with. ``flush()`` waits up to ``delivery_timeout``
    seconds for the queue to be delivered, ``close(timeout)`` as long as asked; a remote that
    takes longer is an outage. ``run_location`` waits up to ``location_timeout`` seconds for
    the remote to have opened the run and every run started before the call.
    """

    capabilities = frozenset({FLUSH, CLOSE})

    def __init__(
        self,
        remote: ExperimentTracker[Any] | RemoteFactory,
        spool_dir: str | Path,
        flush_interval: float = 2.0,
        *,
        backend_name: str | None = None,
        config: TrackingConfig | None = None,
        delivery_timeout: float = 30.0,
        location_timeout: float = 10.0,
    ) -> None:
        built, factory = (remote, None) if isinstance(remote, ExperimentTracker) else (None, remote)
        super().__init__(config or (built.config if built is not None else None))
        self.backend_name = backend_name or (built.backend_name if built else "remote")
        self.spool = LocalFileTracker(spool_dir, config=self.config)
        # What the spool is about to create; pruned again (when empty) after a clean session.
        self._created_top = _first_missing(Path(spool_dir).absolute())
        self.delivery_timeout = delivery_timeout
        self.location_timeout = location_timeout
        self._delivery = _Delivery(self, built, factory, flush_interval)
        self._warned = False

    @property
    def remote(self) -> ExperimentTracker[Any] | None:
        """The remote tracker; None while a factory has not built it yet (or failed to)."""
        return self._delivery.remote

    @property
    def key(self) -> str | None:
        return self._delivery.ledger.key

    @property
    def failure(self) -> BaseException | None:
        return self._delivery.failure

    @property
    def spooled_after_failure(self) -> int:
        return self._delivery.ledger.undelivered

    def outage(self) -> str | None:
        """One line for a person when the remote failed: what, where the spool is, what to run."""
        failure = self.failure
        if failure is None:
            return None
        return (f"{self.backend_name} failed ({type(failure).__name__}: {failure}); "
                f"{self.spooled_after_failure} call(s) after the failure kept in "
                f"{self.spool.project_dir}; replay with: {self._replay_command()}")

    def run_location(self, run_id: str | None = None) -> str | None:
        with self._lock:
            run = self._resolve(run_id)
        return self._delivery.location(run, self.location_timeout) or str(run.path)

    def flush(self) -> None:
        """Wait (up to ``delivery_timeout``) until everything spooled so far was delivered."""
        self._settle(self.delivery_timeout, close=False)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (waiting up to ``timeout``, default ``delivery_timeout``),
        close the remote and stop the delivery thread. Open runs stay open."""
        self._settle(self.delivery_timeout if timeout is None else timeout, close=True)

    def _settle(self, timeout: float, close: bool) -> None:
        if not self._delivery.wait(timeout, close):
            self._delivery.stop(TimeoutError(
                f"{self.backend_name} had not taken the spooled calls after {timeout:g} s"))
        self._warn_once()

    # -- backend interface: the spool's core, then the queue --------------------------------

    def _open_run(self, name: str, run_id: str | None, parent: SpoolRun | None) -> SpoolRun:
        self._warn_once()
        local = self.spool._core_start(name, None, None if parent is None else parent.local)
        run = SpoolRun(run_id=local.run_id, name=name, parent=parent, started_at=local.started_at,
                       local=local, path=local.path)
        self._delivery.put("start", run, (name, run_id))
        return run

    def _record_metrics(self, run: SpoolRun, metrics: dict[str, float], step: int,
                        timestamp: float) -> None:
        self._warn_once()
        self.spool._core_metrics(run.local, metrics, step, timestamp)
        self._delivery.put("entry", run, MetricsEntry.at(step, metrics, timestamp))

    def _record_params(self, run: SpoolRun, params: dict[str, Any]) -> None:
        self._warn_once()
        self.spool._core_params(run.local, params)
        self._delivery.put("entry", run, ParamsEntry(params))

    def _record_result(self, run: SpoolRun, metrics: dict[str, float], params: dict[str, Any],
                       step: int | None, timestamp: float) -> None:
        self._warn_once()
        self.spool._core_result(run.local, metrics, params, step, timestamp)
        for entry in result_entries(metrics, params, step, timestamp):
            self._delivery.put("entry", run, entry)

    def _record_artifact(self, run: SpoolRun, artifact: Artifact) -> None:
        self._warn_once()
        # The remote gets the spool's copy: the caller's file may change once we return.
        self._delivery.put("entry", run, self.spool.keep_artifact(run.local, artifact))

    def _close_run(self, run: SpoolRun, status: str, ended_at: datetime) -> None:
        self._warn_once()
        try:
            self.spool._core_end(run.local, status, ended_at)
        finally:
            self._delivery.put("end", run, (status, ended_at))

    # -- helpers ----------------------------------------------------------------------------

    def _warn_once(self) -> None:
        failure = self.failure
        if failure is None or self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{self.backend_name} failed: {failure!r}; this and every later call is kept in "
            f"{self.spool.project_dir} (replay with: {self._replay_command()})",
            TrackingWarning, stacklevel=5)

    def _replay_command(self) -> str:
        return (f"python -m pytest_insidellms sync {self.spool.project_dir} "
                f"--to {self.backend_name}")

    def _discard(self, run: SpoolRun) -> None:
        """Delete a delivered top-level run from the spool, and the empty directories the spool
        created above it. Under the lock: no run is being created there meanwhile."""
        with self._lock:
            shutil.rmtree(run.path, ignore_errors=True)
            top = self._created_top
            directory = run.path.parent.absolute()
            if top is None or not directory.is_relative_to(top):
                return
            for candidate in (directory, *directory.parents):
                try:
                    candidate.rmdir()
                except OSError:  # not empty: another run or backend still spools there
                    return
                if candidate == top:
                    return


_Item = tuple[str, Any, Any]  # (kind, SpoolRun or None, payload)


class _Delivery:
    """The queue between callers and the remote, and the thread that empties it in order.

    Callers only append under ``_cond``; the thread holds ``_cond`` for bookkeeping (the
    :class:`_Ledger`), never while it talks to the remote.
    """

    def __init__(self, owner: SpoolingTracker, remote: ExperimentTracker[Any] | None,
                 factory: RemoteFactory | None, flush_interval: float) -> None:
        self.owner = owner
        self.remote = remote
        self.factory = factory
        self.flush_interval = flush_interval
        self.failure: BaseException | None = None
        self._items: deque[_Item] = deque()
        self._cond = threading.Condition()
        self.ledger = _Ledger(self._cond, None if remote is None else sync_key(remote))
        self._thread: threading.Thread | None = None
        self._current: _Item | None = None  # being delivered
        self._last_flush = time.monotonic()

    # -- caller side --------------------------------------------------------------------------

    def put(self, kind: str, run: SpoolRun | None, payload: Any) -> None:
        with self._cond:
            if self.failure is not None:
                self.ledger.drop((kind, run, payload), queued=False)
                return
            self._items.append((kind, run, payload))
            if kind == "start":
                self.ledger.pending_starts += 1
            if self._thread is None:
                self._start_thread()
            self._cond.notify_all()

    def wait(self, timeout: float, close: bool) -> bool:
        """Flush (and with ``close``, close) the remote after everything queued so far; True
        if that happened, or delivery had stopped, within ``timeout`` seconds."""
        done = threading.Event()
        self.put("close" if close else "flush", None, done)
        return done.wait(timeout)

    def stop(self, failure: BaseException) -> None:
        with self._cond:
            self._stop(failure)

    def location(self, run: SpoolRun, timeout: float) -> str | None:
        """The remote's location of ``run`` once every run started so far is open there: a
        remote may describe a run by its whole tree (W&B's one sync command for a session)."""
        with self._cond:
            self._cond.wait_for(lambda: (run.started and self.ledger.pending_starts == 0)
                                or self.failure is not None, timeout)
            remote, remote_run = self.remote, run.remote
            if self.failure is not None or remote is None or remote_run is None:
                return None
        try:
            return remote.run_location(remote_run.run_id)
        except Exception:  # noqa: BLE001 - a location is a courtesy
            return None

    # -- the thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                item = self._current = self._next()
                if item is None:
                    self._thread = None
                    return
            try:
                last = self._handle(item)
            except Exception as exc:  # noqa: BLE001 - the remote failed: stop delivering
                with self._cond:
                    self._stop(exc)
                    self.ledger.drop(item)
                last = item[0] == "close"
            finally:
                with self._cond:
                    self._current = None
                if isinstance(item[2], threading.Event):
                    item[2].set()
            if last:
                with self._cond:
                    self._thread = None
                    if self._items:  # queued meanwhile: someone must deliver it
                        self._start_thread()
                return

    def _start_thread(self) -> None:
        """Called under ``_cond``."""
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"insidellms-spool-{self.owner.backend_name}")
        self._thread.start()

    def _next(self) -> _Item | None:
        """The next item; a periodic ("tick") flush when idle; None when there is nothing
        left to do. Called under ``_cond``."""
        while not self._items:
            if not self.ledger.live or self.failure is not None:
                return None
            wait = self.flush_interval - (time.monotonic() - self._last_flush)
            if wait <= 0:
                return ("tick", None, None)
            self._cond.wait(wait)
        return self._items.popleft()

    def _handle(self, item: _Item) -> bool:
        """Deliver one item; True when the thread is to end after it."""
        kind, run, payload = item
        if self.failure is not None:
            with self._cond:
                self.ledger.drop(item)
            return kind == "close"
        if kind == "start":
            self._start(run, *payload)
        elif kind == "entry":
            self._send(run, payload)
        elif kind == "end":
            self._end(run, *payload)
        elif kind == "tick":
            if self.ledger.unflushed:
                self._flush()
            self._last_flush = time.monotonic()
        elif kind in ("flush", "close") and self.remote is not None:
            self._flush()
            if kind == "close":
                self.remote.close()
        if kind == "entry" and time.monotonic() - self._last_flush >= self.flush_interval:
            self._flush()
        return kind == "close"

    def _start(self, run: SpoolRun, name: str, requested_id: str | None) -> None:
        remote = self._built_remote()
        parent = cast("SpoolRun | None", run.parent)
        if parent is not None and parent.remote is None:
            raise RuntimeError(f"the parent of run {run.run_id!r} never reached the remote")
        remote_run = remote._core_start(name, requested_id, parent.remote if parent else None)
        with self._cond:
            # Recorded even if delivery stopped meanwhile: the remote has this run now.
            self.ledger.opened(run, remote_run)

    def _send(self, run: SpoolRun, entry: JournalEntry) -> None:
        assert self.remote is not None and run.remote is not None
        dispatch(entry, _RemoteSink(self.remote, run.remote))
        with self._cond:
            self.ledger.sent(run)

    def _end(self, run: SpoolRun, status: str, ended_at: datetime) -> None:
        assert self.remote is not None and run.remote is not None
        self.remote._core_end(run.remote, status, ended_at)
        with self._cond:
            discard = self.ledger.ended(run, failed=self.failure is not None)
        if discard:
            self.owner._discard(run)

    def _flush(self) -> None:
        """A successful remote flush delivers everything sent before it: move the watermarks."""
        assert self.remote is not None
        with self._cond:
            pending = self.ledger.flush_begins()
        self.remote.flush()
        with self._cond:
            self._last_flush = time.monotonic()
            self.ledger.flushed(pending)

    def _built_remote(self) -> ExperimentTracker[Any]:
        if self.remote is None:
            assert self.factory is not None
            built = self.factory()
            with self._cond:
                self.remote, self.ledger.key = built, sync_key(built)
        return self.remote

    # -- stopping (under _cond) ---------------------------------------------------------------

    def _stop(self, failure: BaseException) -> None:
        """The first failure stops delivery; every run open on the remote records where it
        stands, so that a replay sends only the rest."""
        if self.failure is not None:
            return
        self.failure = failure
        self.ledger.record_stop(self._current)
        while self._items:
            self.ledger.drop(self._items.popleft())
        self._cond.notify_all()


class _Ledger:
    """Where delivery stands: the runs open on the remote, what each was sent and what is
    known delivered (kept in each run's ``sync.json`` for a replay), the starts still to
    come, and the calls kept only in the spool. Used under the delivery's condition, which
    it notifies when a waiter may care."""

    def __init__(self, cond: threading.Condition, key: str | None) -> None:
        self._cond = cond
        self.key = key  #: :func:`sync_key` of the remote, once there is one
        self.undelivered = 0  # calls kept only in the spool since the failure
        self.live: list[SpoolRun] = []  # open on the remote
        self.pending_starts = 0  # run starts queued or being delivered
        self.unflushed = False  # something was sent since the last remote flush

    def opened(self, run: SpoolRun, remote_run: Run) -> None:
        run.remote, run.started = remote_run, True
        self.pending_starts -= 1
        self.live.append(run)
        settled = {"start_in_doubt": False} if run.in_doubt else {}
        self._write_state(run, run_id=remote_run.run_id, delivered=0, **settled)
        self._cond.notify_all()

    def sent(self, run: SpoolRun) -> None:
        run.sent += 1
        self.unflushed = True

    def ended(self, run: SpoolRun, failed: bool) -> bool:
        """Record the end of ``run`` on the remote; True if the spool may discard it."""
        self.live.remove(run)
        run.delivered = run.sent  # ending a run delivers what it buffered
        discard = run.parent is None and not failed
        if not discard:
            self._write_state(run, delivered=run.delivered, ended=True)
        return discard

    def flush_begins(self) -> list[tuple[SpoolRun, int]]:
        """What a remote flush about to start will deliver, run by run."""
        self.unflushed = False
        return [(run, run.sent) for run in self.live]

    def flushed(self, pending: list[tuple[SpoolRun, int]]) -> None:
        """A successful remote flush delivers everything sent before it: move the watermarks."""
        for run, sent in pending:
            run.delivered = max(run.delivered, sent)

    def record_stop(self, current: _Item | None) -> None:
        """Delivery stopped while ``current`` was being delivered: every run open on the
        remote records where it stands, so that a replay sends only the rest."""
        if current is not None and current[0] == "start":
            # The remote may have created the run without our hearing back: sync looks
            # for it before creating another.
            in_doubt: SpoolRun = current[1]
            in_doubt.in_doubt = True
            self._write_state(in_doubt, start_in_doubt=True)
        for run in self.live:
            assert run.remote is not None
            self._write_state(run, run_id=run.remote.run_id, delivered=run.delivered)

    def drop(self, item: _Item, queued: bool = True) -> None:
        """``item`` will not be delivered (``queued``: it was in the queue)."""
        kind, run, payload = item
        if kind in ("start", "entry"):
            self.undelivered += 1
        if kind == "start":
            run.started = True
            if queued:
                self.pending_starts -= 1
        if isinstance(payload, threading.Event):
            payload.set()
        self._cond.notify_all()

    def _write_state(self, run: SpoolRun, **fields: Any) -> None:
        if self.key is not None and run.path.is_dir():
            write_sync_state(run.path, self.key, **fields)


class _RemoteSink:
    """Replays journal entries into one run of the remote, through its core."""

    def __init__(self, remote: ExperimentTracker[Any], run: Run) -> None:
        self.remote, self.run = remote, run

    def on_metrics(self, entry: MetricsEntry) -> None:
        self.remote._core_metrics(self.run, entry.metrics, entry.step, entry.timestamp)

    def on_params(self, entry: ParamsEntry) -> None:
        self.remote._core_params(self.run, entry.params)

    def on_artifact(self, entry: ArtifactEntry) -> None:
        self.remote._core_artifact(self.run, Artifact(Path(entry.path), entry.name, entry.type,
                                                          entry.original_path))


def _first_missing(path: Path) -> Path | None:
    """The highest ancestor of ``path`` (or ``path`` itself) that does not exist yet."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
