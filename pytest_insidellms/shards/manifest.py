"""``shard.json``: what one shard was, written beside its records.

It says which shard (group, index, total, attempt), of which collection (its fingerprint, and
the full list: the merge rebuilds the unsharded session's definition from it, so the merged
run id is the one an unsharded session gets), what the shard ran (its node ids and their
fingerprint) and what else the run files' definition holds (project, datasets, library
version). Canonical JSON like the records: two runs of the same shard give the same bytes but
for the attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..records import RecordsSession
from ..records.canonical import digest, plain, pretty_json, write_atomic
from .detect import ShardInfo

FILE: Final = "shard.json"
FORMAT: Final = "pytest-insidellms/shard/1"


@dataclass(frozen=True)
class ShardManifest:
    group: str
    index: int
    total: int
    attempt: int
    project: str
    #: Every node id the shard collected before any deselection, sorted.
    collected: tuple[str, ...]
    #: The node ids of the cases the shard ran, sorted.
    selected: tuple[str, ...]
    datasets: Mapping[str, str] = field(default_factory=dict)
    library_version: str | None = None
    run_completed: bool = True
    #: The run id of the shard's records (the unsharded session's, for a shard of it).
    run_id: str = ""
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def collection_sha256(self) -> str:
        return digest(list(self.collected))

    def session(self, *, run_completed: bool | None = None) -> RecordsSession:
        """The definition of the unsharded session this shard is a part of."""
        return RecordsSession(
            self.project, self.collected, datasets=dict(self.datasets),
            library_version=self.library_version,
            run_completed=self.run_completed if run_completed is None else run_completed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "group": self.group,
            "index": self.index,
            "total": self.total,
            "attempt": self.attempt,
            "source": self.source,
            "project": self.project,
            "run_id": self.run_id,
            "run_completed": self.run_completed,
            "library_version": self.library_version,
            "datasets": plain(dict(self.datasets)),
            "collection_sha256": self.collection_sha256,
            "collected_count": len(self.collected),
            "collected": list(self.collected),
            "selected_sha256": digest(list(self.selected)),
            "selected_count": len(self.selected),
            "selected": list(self.selected),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> ShardManifest:
        """Raises ValueError naming ``source`` when ``data`` is not a shard.json of this
        format, or contradicts itself (a fingerprint that does not match its list)."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"{source}: not a {FORMAT} file")
        try:
            manifest = cls(
                group=_typed(data, "group", str), index=_typed(data, "index", int),
                total=_typed(data, "total", int), attempt=_typed(data, "attempt", int),
                project=_typed(data, "project", str),
                collected=tuple(_strings(data, "collected")),
                selected=tuple(_strings(data, "selected")),
                datasets={str(k): str(v) for k, v in _typed(data, "datasets", dict).items()},
                library_version=data.get("library_version"),
                run_completed=_typed(data, "run_completed", bool),
                run_id=_typed(data, "run_id", str), source=str(data.get("source", "")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: {exc}") from None
        if manifest.collection_sha256 != data.get("collection_sha256"):
            raise ValueError(f"{source}: collection_sha256 does not match its collected ids")
        if not 1 <= manifest.index <= manifest.total:
            raise ValueError(f"{source}: shard {manifest.label} is not a shard of {manifest.total}")
        return manifest


def build_shard_manifest(shard: ShardInfo, session: RecordsSession,
                         records: Iterable[Mapping[str, Any]]) -> ShardManifest:
    """The manifest of a shard whose session is ``session`` and whose records are
    ``records`` (drafts or finalized: only their node ids are read)."""
    selected = sorted({str(r["custom"]["nodeid"]) for r in records})
    return ShardManifest(
        group=shard.group, index=shard.index, total=shard.total, attempt=shard.attempt,
        project=session.project, collected=tuple(sorted(set(session.collected))),
        selected=tuple(selected), datasets=dict(session.datasets),
        library_version=session.library_version, run_completed=session.run_completed,
        run_id=session.run_id, source=shard.source)


def write_shard_manifest(directory: Path, manifest: ShardManifest) -> Path:
    path = directory / FILE
    write_atomic(path, pretty_json(manifest.to_dict()).encode("utf-8"))
    return path


def read_shard_manifest(directory: Path) -> ShardManifest:
    """The manifest in a shard's records directory; ValueError (naming the directory) when it
    is missing or malformed."""
    path = directory / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{directory}: no {FILE}: not the records of a shard (was the session "
                         "run with --track-shard, or a splitter, and --track-records?)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable: {exc}") from None
    return ShardManifest.from_dict(data, str(path))


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    value = _typed(data, key, list)
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key!r} must be a list of strings")
    return list(value)
