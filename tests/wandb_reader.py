"""Read W&B offline run files (``run-<id>.wandb``) back, for tests.

W&B 0.31 keeps an offline run only in ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``.
The file format (measured, not documented by W&B):

* a 7-byte header: ``b":W&B"``, the uint16 ``0xBEE1`` (little-endian) and a version byte 0;
* then LevelDB-log style 32 KiB blocks (the header counts towards the first block). A block
  holds chunks ``checksum(uint32 LE) length(uint16 LE) type(uint8) payload``; a block tail
  shorter than a chunk header is zero padding. Types: 1 full, 2 first, 3 middle, 4 last (a
  record larger than the rest of a block is split across blocks).
* the checksum is the IEEE CRC-32 (``zlib.crc32``, not CRC-32C) of the type byte followed by
  the payload;
* each reassembled payload is one ``wandb.proto.wandb_internal_pb2.Record``.

``run.finish()`` can return before W&B's service has written the ``exit`` record, so
:func:`read_run_file` polls for it.

API: :func:`read_run_file` (one file), :func:`read_runs` (every run file under a directory),
:func:`iter_records` (the raw protobuf records), and the :class:`WandbRunFile` they return.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

#: The generated protobuf module (untyped for mypy).
pb: Any = wandb_internal_pb2

MAGIC = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbRunFile:
    """What one ``run-<id>.wandb`` file says about its run.

    ``config`` omits W&B's own ``_wandb`` entry. ``history`` has one dict per logged row, with
    W&B's ``_step``/``_runtime``/``_timestamp`` included and nested keys as nested dicts.
    ``summary`` is the merged result of every summary update. ``exit_code`` is None when the
    file has no ``exit`` record (the run never finished). ``artifacts`` are dicts with
    ``name``, ``type`` and ``files`` (paths inside the artifact). ``metric_steps`` maps each
    ``define_metric`` name or glob to its step metric ("" when it has none).
    """

    path: Path
    run_id: str = ""
    entity: str = ""
    project: str = ""
    display_name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    resumed: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    metric_steps: dict[str, str] = field(default_factory=dict)

    def values(self, key: str) -> list[Any]:
        """Every logged value of history key ``key``, in logging order."""
        return [row[key] for row in self.history if key in row]


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield each complete record of a run file. A chunk cut short at the end of the file (a
    file still being written) ends the iteration; a checksum mismatch raises ValueError."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not a W&B run file (header {data[:7]!r})")
    offset, pending = len(MAGIC), bytearray()
    while True:
        room = BLOCK_SIZE - offset % BLOCK_SIZE
        if room < CHUNK_HEADER.size:
            offset += room  # zero padding at the end of a block
            continue
        if offset + CHUNK_HEADER.size > len(data):
            return
        checksum, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        start = offset + CHUNK_HEADER.size
        payload = data[start : start + length]
        if len(payload) < length:
            return
        if kind == 0 and length == 0:
            offset += room  # the writer padded the rest of this block
            continue
        if zlib.crc32(bytes([kind]) + payload) != checksum:
            raise ValueError(f"{path}: checksum mismatch in the chunk at byte {offset}")
        offset = start + length
        if kind in (FULL, FIRST):
            pending = bytearray()
        pending += payload
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(bytes(pending))
            yield record


def read_run_file(path: str | Path, *, wait_for_exit: float = 5.0) -> WandbRunFile:
    """Parse one run file. With ``wait_for_exit`` > 0, re-read it until it holds the ``exit``
    record, raising TimeoutError after that many seconds; with 0, return what is there."""
    deadline = time.monotonic() + wait_for_exit
    while True:
        run = _parse(Path(path))
        if run.exit_code is not None or wait_for_exit <= 0:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {wait_for_exit} s")
        time.sleep(0.01)


def read_runs(directory: str | Path, *, wait_for_exit: float = 5.0) -> list[WandbRunFile]:
    """Parse every ``run-*.wandb`` file under ``directory`` (recursively), sorted by path (run
    directories are named ``offline-run-<start time>-<id>``). W&B's ``latest-run`` link is
    skipped so each file is read once."""
    files = sorted(p for p in Path(directory).rglob("run-*.wandb") if "latest-run" not in p.parts)
    return [read_run_file(p, wait_for_exit=wait_for_exit) for p in files]


def _parse(path: Path) -> WandbRunFile:
    run = WandbRunFile(path=path)
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            _read_run_record(run, record.run)
        elif kind == "config":
            _apply_updates(run.config, record.config.update, record.config.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, _key_path(item), json.loads(item.value_json))
            run.history.append(row)
        elif kind == "summary":
            _apply_updates(run.summary, record.summary.update, record.summary.remove)
        elif kind == "metric":
            name = record.metric.name or record.metric.glob_name
            run.metric_steps[name] = record.metric.step_metric
        elif kind == "artifact":
            art = record.artifact
            run.artifacts.append({
                "name": art.name,
                "type": art.type,
                "files": sorted(entry.path for entry in art.manifest.contents),
                "metadata": json.loads(art.metadata) if art.metadata else {},
            })
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def _read_run_record(run: WandbRunFile, record: Any) -> None:
    run.run_id, run.entity, run.project = record.run_id, record.entity, record.project
    run.display_name, run.group = record.display_name, record.run_group
    run.job_type = record.job_type
    run.tags, run.notes = list(record.tags), record.notes
    run.resumed = record.resume or record.resumed
    _apply_updates(run.config, record.config.update, record.config.remove)


def _apply_updates(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        _set(target, _key_path(item), json.loads(item.value_json))
    for item in removes:
        path = _key_path(item)
        node = target
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)


def _key_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _set(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
