"""A session's cases as an insideLLMs run directory (output contract 1.0.1).

:func:`write_records` turns :class:`~pytest_insidellms.cases.FinishedCase` objects into
``records.jsonl``, ``manifest.json``, ``summary.json`` and ``report.html``, which insideLLMs'
``validate --mode strict``, ``diff`` and ``report`` read as their own. The four files are a
function of the session's definition and its results only: canonical JSON, records sorted by
case key, a run id hashed from the project, the collected node ids and the dataset
fingerprints, timestamps derived from the run id, no durations and no host facts. What
cannot be deterministic goes to ``tracking.json`` (:func:`write_tracking`). Nothing here
imports pytest.

Records. A marker case gives one record (probe = the experiment name, model from the
marker, ``example_id`` = the parametrization id). A case that returned an ExperimentResult
gives one per ProbeResult instead (model and probe from the result, ``input``/``output`` as
plain JSON, the result's own status, ``scores`` from a numeric ``metadata["scores"]`` mapping
and ``metadata["score"]``, the result's ProbeScore in ``custom.result_score``). Any other
test gives one record (model ``pytest``, probe = its module, ``example_id`` = its name).
``custom.replicate_key`` is the node id, plus ``#trial<n>`` for trials after the first (so
trial 0 pairs with a session that ran each case once) and ``#result<i>`` for results;
``custom`` also carries the node id, module, pytest outcome, experiment, trial, reruns, and
a ``harness`` block by which ``insidellms report`` groups records per experiment.
``primary_metric`` is never set: insidellms diff treats any drop of it as a regression, and
a 0/1 pass score would count every flip twice. A ``scores["score"]`` is compared by it.

Statuses (insideLLMs' vocabulary, nothing else):

- passed -> ``success``; xpassed (non-strict xfail; strict ones arrive as failed) ->
  ``success``, the case did pass;
- failed -> ``error``, and an error in setup or teardown -> ``error``; ``error_type`` is the
  exception class;
- skipped -> ``skipped``; xfailed -> ``skipped``: a known failure is no evidence either way,
  so it is not counted in accuracy, and it neither regresses nor improves in a diff against
  a baseline where it was also xfailed (``error`` would count it as a failure every run).
  ``custom.outcome`` keeps pytest's word.

Summary figures are defined in :mod:`.summary`; it is computed from the records alone.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..cases import FinishedCase
from .build import (
    RECORDS_FORMAT,
    SCHEMA_VERSION,
    STATUS_OF_OUTCOME,
    RecordsSession,
    build_manifest,
    build_records,
    case_key,
    finalize_records,
    replicate_key,
)
from .canonical import canonical_json, plain, pretty_json, write_atomic
from .html import render_report
from .summary import build_summary
from .table import scores_table

__all__ = [
    "FILES",
    "RECORDS_FORMAT",
    "SCHEMA_VERSION",
    "STATUS_OF_OUTCOME",
    "RecordsSession",
    "RecordsWritten",
    "build_manifest",
    "build_records",
    "build_summary",
    "case_key",
    "finalize_records",
    "read_records",
    "render_report",
    "scores_table",
    "write_records",
    "write_run_directory",
    "write_tracking",
]

RECORDS: Final = "records.jsonl"
MANIFEST: Final = "manifest.json"
SUMMARY: Final = "summary.json"
REPORT: Final = "report.html"
TRACKING: Final = "tracking.json"
#: The deterministic files, in the order they are written (the manifest last, as a run
#: directory with a manifest is a complete one).
FILES: Final = (RECORDS, SUMMARY, REPORT, MANIFEST)


@dataclass(frozen=True)
class RecordsWritten:
    directory: Path
    run_id: str
    records: int
    files: tuple[Path, ...]
    #: summary.json's content, for the terminal table.
    summary: dict[str, Any] = field(repr=False)


def write_records(directory: Path, session: RecordsSession, cases: Iterable[FinishedCase], *,
                  comparison_html: str | None = None) -> RecordsWritten:
    """Write the four run files for ``cases`` into ``directory`` (created if needed)."""
    return write_run_directory(directory, session, build_records(session, cases),
                               comparison_html=comparison_html)


def write_run_directory(directory: Path, session: RecordsSession,
                        records: Iterable[Mapping[str, Any]], *,
                        comparison_html: str | None = None) -> RecordsWritten:
    """Write records built elsewhere (e.g. shards' records read back and concatenated):
    they are finalized again under ``session``'s run id, then summarized."""
    finished = finalize_records(records, session.run_id)
    summary = build_summary(finished)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        RECORDS: "".join(canonical_json(r) + "\n" for r in finished),
        SUMMARY: pretty_json(summary),
        REPORT: render_report(summary, finished, title=f"{session.project}: eval report",
                              comparison_html=comparison_html),
        MANIFEST: pretty_json(build_manifest(session, finished)),
    }
    paths = []
    for name in FILES:
        path = directory / name
        write_atomic(path, contents[name].encode("utf-8", errors="replace"))
        paths.append(path)
    return RecordsWritten(directory, session.run_id, len(finished), tuple(paths), summary)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``records.jsonl`` (or of the run directory holding one)."""
    if path.is_dir():
        path = path / RECORDS
    records = []
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: a record must be a JSON object")
            records.append(record)
    return records


def write_tracking(directory: Path, run_id: str, *, backends: Mapping[str, Any] | None = None,
                   cases: Sequence[FinishedCase] = (), started: float | None = None,
                   stopped: float | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """``tracking.json``: the facts that differ every run, beside the deterministic files.

    ``backends`` maps a backend name to what locates its runs (run ids, URLs, directories);
    ``cases`` give their wall-clock bounds and durations, keyed like the records.
    """
    timings = {}
    for case in cases:
        timings[replicate_key(case)] = {"started": case.started, "stopped": case.stopped,
                        "latency_ms": case.latency_ms}
    content = {
        "run_id": run_id,
        "written_at": time.time(),
        "session": {"started": started, "stopped": stopped},
        "host": {"python_version": platform.python_version(), "platform": platform.platform()},
        "backends": plain(dict(backends or {})),
        "cases": plain(timings),
        "extra": plain(dict(extra or {})),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TRACKING
    write_atomic(path, pretty_json(content).encode("utf-8"))
    return path
