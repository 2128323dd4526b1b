"""Canonical JSON, deterministic clocks and atomic files: what makes the run files byte-stable.

:func:`plain` is :func:`pytest_insidellms.types.to_jsonable` made strict: a value that has
no JSON meaning of its own becomes ``"<unserializable TypeName>"`` rather than its ``str()``
(which may carry a memory address, a clock or a path), floats that JSON cannot spell become
null, and set members and non-string keys are ordered by their canonical spelling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path, PurePath
from typing import Any, Final

#: insideLLMs' clock for runs that must not read one: a base instant per run id.
TIME_BASE: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)
TIME_RANGE_SECONDS: Final = 10 * 365 * 24 * 60 * 60


def plain(value: Any) -> Any:
    """``value`` as plain JSON data, with no spelling that can change between two runs."""
    return _plain(value, set())


def _plain(value: Any, path: set[int]) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    # Enums first: IntEnum and StrEnum members are ints and strs too.
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    container = isinstance(value, (Mapping, list, tuple, set, frozenset)) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type))
    if container:
        if id(value) in path:
            return "<cycle>"
        path.add(id(value))
        try:
            return _container(value, path)
        finally:
            path.discard(id(value))
    number = _scalar(value)
    if number is not None:
        return _plain(number, path)
    return f"<unserializable {type(value).__name__}>"


def _container(value: Any, path: set[int]) -> Any:
    if isinstance(value, Mapping):
        items = [(_key(k), _plain(v, path)) for k, v in value.items()]
        if len({k for k, _ in items}) == len(items):
            items.sort(key=lambda kv: kv[0])  # distinct keys: nothing to break a tie on
        else:
            # Two keys spelled alike ({1: .., "1": ..}) keep the one that sorts last, whatever
            # the insertion order.
            items.sort(key=lambda kv: (kv[0], canonical_json(kv[1])))
        return dict(items)
    if isinstance(value, (list, tuple)):
        return [_plain(v, path) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v, path) for v in value), key=canonical_json)
    return {f.name: _plain(getattr(value, f.name), path) for f in dataclasses.fields(value)}


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    spelled = _plain(key, set())
    return spelled if isinstance(spelled, str) else canonical_json(spelled)


def _scalar(value: Any) -> int | float | bool | None:
    """numpy-style scalars (``.item()`` on a zero-dimensional value) as Python numbers."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        try:
            number = item()
        except Exception:
            return None
        if isinstance(number, (bool, int, float)):
            return number
    return None


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only; ``value`` must already be :func:`plain`."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def pretty_json(value: Any) -> str:
    """How insideLLMs writes manifest and summary: sorted keys, a 2-space indent."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def digest(value: Any) -> str:
    """sha256 hex of the canonical spelling of a plain value."""
    return hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()


def base_time(run_id: str) -> datetime:
    """The run's base instant: 2000-01-01 plus the run id's hash modulo ten years."""
    head = hashlib.sha256(run_id.encode("utf-8")).digest()[:8]
    return TIME_BASE + timedelta(seconds=int.from_bytes(head, "big") % TIME_RANGE_SECONDS)


def record_times(base: datetime, index: int) -> tuple[str, str]:
    """Record ``index`` starts at base + 2i and completes at base + 2i + 1 microseconds."""
    return (iso(base + timedelta(microseconds=2 * index)),
            iso(base + timedelta(microseconds=2 * index + 1)))


def run_times(base: datetime, records: int) -> tuple[str, str]:
    """The run spans its records: base to base + 2n + 1 microseconds."""
    return iso(base), iso(base + timedelta(microseconds=2 * records + 1))


def iso(moment: datetime) -> str:
    # Always with microseconds and "+00:00": one spelling per instant, and one that
    # datetime.fromisoformat reads on Python 3.10 too (it rejects a "Z" suffix there).
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a temp file beside it, fsync, rename."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)

