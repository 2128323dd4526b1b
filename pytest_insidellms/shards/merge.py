"""Shards' records -> the unsharded session's run files.

:func:`load_shard` reads a shard's records directory, :func:`choose_shards` checks that a set
belongs together and picks, for each index, the latest attempt; :func:`merge_shards` writes
one run directory from their records. Records are a function of the cases alone and the run
id of the full collection (each shard already wrote its records under it), so concatenated and
finalized again they give the unsharded session's four files byte for byte; the summary
(every accuracy, interval and pass rate) is computed again from them, so an experiment whose
cases ran on several machines gets one figure.

Every refusal names the shard at fault, so that a CI log says which job to look at.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import RecordsWritten, case_key, read_records, write_run_directory
from .manifest import ShardManifest, read_shard_manifest


class MergeError(ValueError):
    """The shards given cannot be merged; the message names the shard at fault."""


@dataclass(frozen=True)
class Shard:
    directory: Path
    manifest: ShardManifest
    records: list[dict[str, Any]] = field(repr=False)
    #: The shard's tracking.json (its backends' run ids and locations), {} if absent.
    tracking: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return f"shard {self.manifest.label} (attempt {self.manifest.attempt}, {self.directory})"


@dataclass(frozen=True)
class MergeResult:
    group: str
    total: int
    #: The shards merged, by index.
    shards: tuple[Shard, ...]
    #: Earlier attempts of an index, left out.
    superseded: tuple[Shard, ...]
    written: RecordsWritten

    @property
    def run_id(self) -> str:
        return self.written.run_id


def load_shard(directory: Path) -> Shard:
    """A shard's records directory; MergeError naming it when it is not one."""
    try:
        manifest = read_shard_manifest(directory)
        records = read_records(directory)
    except FileNotFoundError as exc:
        raise MergeError(f"{directory}: {exc.strerror or 'missing'}: {exc.filename}") from None
    except ValueError as exc:
        raise MergeError(str(exc)) from None
    if manifest.session().run_id != manifest.run_id:
        raise MergeError(f"{directory}: its shard.json describes another session than its "
                         f"run id {manifest.run_id} (edited by hand?)")
    strays = sorted({str(r.get("run_id")) for r in records} - {manifest.run_id})
    if strays:
        raise MergeError(f"{directory}: records.jsonl holds records of another run "
                         f"({', '.join(strays)}) than its shard.json ({manifest.run_id})")
    tracking: dict[str, Any] = {}
    path = directory / "tracking.json"
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}  # only locates backend runs: a merge of the records does not need it
        tracking = loaded if isinstance(loaded, dict) else {}
    return Shard(directory, manifest, records, tracking)


def choose_shards(shards: Sequence[Shard]) -> tuple[list[Shard], list[Shard]]:
    """The shards to merge (one per index, the latest attempt, by index) and the earlier
    attempts left out; MergeError when the set is not one logical run."""
    if not shards:
        raise MergeError("no shard given")
    _check_same_run(shards)
    total = shards[0].manifest.total
    chosen: list[Shard] = []
    superseded: list[Shard] = []
    for index in range(1, total + 1):
        attempts = sorted((s for s in shards if s.manifest.index == index),
                          key=lambda s: s.manifest.attempt, reverse=True)
        if not attempts:
            given = ", ".join(sorted({s.manifest.label for s in shards}))
            raise MergeError(f"shard {index}/{total} of group {shards[0].manifest.group!r} is "
                             f"missing (given: {given})")
        if len(attempts) > 1 and attempts[0].manifest.attempt == attempts[1].manifest.attempt:
            raise MergeError(f"shard {index}/{total} is given twice with attempt "
                             f"{attempts[0].manifest.attempt}: {attempts[0].directory} and "
                             f"{attempts[1].directory}")
        chosen.append(attempts[0])
        superseded.extend(attempts[1:])
    _check_disjoint(chosen)
    return chosen, superseded


def merge_shards(directories: Sequence[Path], out: Path) -> MergeResult:
    """Check the shards in ``directories`` and write their merged run files into ``out``."""
    loaded = [load_shard(Path(d)) for d in directories]
    chosen, superseded = choose_shards(loaded)
    reference = chosen[0].manifest
    session = reference.session(run_completed=all(s.manifest.run_completed for s in chosen))
    records = [record for shard in chosen for record in shard.records]
    written = write_run_directory(out, session, records)
    return MergeResult(reference.group, reference.total, tuple(chosen), tuple(superseded),
                       written)


def _check_same_run(shards: Sequence[Shard]) -> None:
    """Every shard of the group, project, collection and shard count most of them share
    (the first given on a tie); a shard that differs is named with how it differs."""
    def identity(shard: Shard) -> tuple[str, str, str, int]:
        m = shard.manifest
        return m.group, m.project, m.collection_sha256, m.total

    counts = Counter(identity(s) for s in shards)
    best = max(counts.values())
    reference = next(s for s in shards if counts[identity(s)] == best)
    ref = reference.manifest
    for shard in shards:
        m = shard.manifest
        if m.group != ref.group:
            raise MergeError(f"{shard.name} is of group {m.group!r}, the others of "
                             f"{ref.group!r}: a shard of another run")
        if m.project != ref.project:
            raise MergeError(f"{shard.name} is of project {m.project!r}, the others of "
                             f"{ref.project!r}")
        if m.collection_sha256 != ref.collection_sha256:
            raise MergeError(
                f"{shard.name} collected other tests ({len(m.collected)}, "
                f"{_difference(m.collected, ref.collected)}) than the others "
                f"({len(ref.collected)}): shards must run the same code and options")
        if m.total != ref.total:
            raise MergeError(f"{shard.name} is one of {m.total} shards, the others of "
                             f"{ref.total}")


def _check_disjoint(shards: Sequence[Shard]) -> None:
    owner: dict[str, Shard] = {}
    for shard in shards:
        for record in shard.records:
            key = case_key(record)
            first = owner.setdefault(key, shard)
            if first is not shard:
                raise MergeError(f"the case {key} is in {first.name} and in {shard.name}: "
                                 "the shards overlap (split by different rules?)")


def _difference(these: Sequence[str], those: Sequence[str]) -> str:
    extra, missing = sorted(set(these) - set(those)), sorted(set(those) - set(these))
    parts = [f"{len(extra)} more, e.g. {extra[0]}" if extra else "",
             f"{len(missing)} fewer, e.g. {missing[0]}" if missing else ""]
    return "; ".join(p for p in parts if p)
