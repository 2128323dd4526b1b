"""FinishedCase -> ResultRecord dicts, and the manifest that describes them.

A case gives one record, or one per ProbeResult when it returned an ExperimentResult (an
empty result falls back to the case's own record). :func:`finalize_records` then orders the
records by case key and stamps what depends on the whole set (run id, clock, index within the
experiment), so shards' records concatenated and finalized again equal one session's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..cases import ExperimentInfo, FinishedCase, LoggedResult, Outcome
from ..types import ProbeResult, ResultStatus
from .canonical import base_time, digest, plain, record_times, run_times

SCHEMA_VERSION: Final = "1.0.1"
#: Bumped when the same session would give different files, so old run ids stop matching.
RECORDS_FORMAT: Final = "pytest-insidellms/records/1"
STATUSES: Final = ("success", "error", "timeout", "rate_limited", "skipped")

STATUS_OF_OUTCOME: Final[Mapping[Outcome, str]] = {
    "passed": "success",
    "xpassed": "success",
    "failed": "error",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "skipped",
}

#: The model of a record that names none (plain tests, a session spanning several).
NO_MODEL: Final = "pytest"
_EMPTY_DATASET: Final[Mapping[str, Any]] = {
    "dataset_id": None, "dataset_version": None, "dataset_hash": None, "provenance": None,
    "params": {},
}
#: ProbeScore fields that are wall time, not a measure of the answers.
_VOLATILE_SCORE_FIELDS: Final = frozenset({"mean_latency_ms"})
_ADDRESS: Final = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


@dataclass(frozen=True)
class RecordsSession:
    """What defines a session's run files; everything else about the session stays out."""

    project: str
    #: Every node id collected, before deselection or sharding (order does not matter).
    collected: Sequence[str]
    #: Declared datasets: name -> content fingerprint. New data, new run id.
    datasets: Mapping[str, str] = field(default_factory=dict)
    #: The plugin's version, written to the manifest (not part of the run id).
    library_version: str | None = None
    #: False when the session was interrupted before every case finished.
    run_completed: bool = True
    #: Absolute paths (root dir, temp dirs) replaced by ``<path>`` in error text, so that
    #: another checkout or temp directory gives the same bytes. Not part of the run id.
    hidden_paths: Sequence[str] = ()

    def definition(self) -> dict[str, Any]:
        return {
            "format": RECORDS_FORMAT,
            "project": self.project,
            "collected": sorted(set(self.collected)),
            "datasets": plain(dict(self.datasets)),
        }

    @property
    def run_id(self) -> str:
        return digest(self.definition())[:32]


def build_records(session: RecordsSession, cases: Iterable[FinishedCase]) -> list[dict[str, Any]]:
    """The session's records, ordered and stamped (see :func:`finalize_records`)."""
    scrub = _Scrubber(session.hidden_paths)
    drafts = [record for case in cases for record in _case_records(case, scrub)]
    return finalize_records(drafts, session.run_id)


def finalize_records(records: Iterable[Mapping[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """Order records by case key; set run id, timestamps and each one's index in its
    experiment. Raises ValueError when two records share a case key."""
    ordered = sorted((dict(r) for r in records), key=lambda r: natural_key(case_key(r)))
    base = base_time(run_id)
    per_experiment: dict[str, int] = {}
    finished: list[dict[str, Any]] = []
    previous: str | None = None
    for index, record in enumerate(ordered):
        key = case_key(record)
        if key == previous:
            raise ValueError(f"two records share the case key {key!r}")
        previous = key
        custom = dict(record["custom"])
        harness = dict(custom["harness"])
        experiment = str(harness["experiment_id"])
        harness["example_index"] = per_experiment.get(experiment, 0)
        per_experiment[experiment] = harness["example_index"] + 1
        custom["harness"] = harness
        record["custom"] = custom
        record["run_id"] = run_id
        record["started_at"], record["completed_at"] = record_times(base, index)
        finished.append(record)
    return finished


def case_key(record: Mapping[str, Any]) -> str:
    return str(record["custom"]["replicate_key"])


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """``test[2]`` before ``test[10]``; ties broken by the exact text."""
    parts = re.split(r"(\d+)", text)
    return (*((1, int(p), p) if p.isdigit() else (0, 0, p) for p in parts), (2, 0, text))


def build_manifest(session: RecordsSession, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    run_id = session.run_id
    started, completed = run_times(base_time(run_id), len(records))
    statuses = {status: 0 for status in STATUSES}
    for record in records:
        statuses[record["status"]] += 1
    datasets = plain(dict(session.datasets))
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": started,
        "started_at": started,
        "completed_at": completed,
        "run_completed": session.run_completed,
        "library_version": session.library_version,
        # Host facts would make two machines' files differ; tracking.json has them.
        "python_version": None,
        "platform": None,
        "command": None,
        "model": _common(records, "model") or _model(NO_MODEL, None),
        "probe": _common(records, "probe") or _probe(NO_MODEL),
        "dataset": _manifest_dataset(datasets),
        "record_count": len(records),
        "success_count": statuses["success"],
        "error_count": statuses["error"],
        "records_file": "records.jsonl",
        "schemas": {"ResultRecord": SCHEMA_VERSION, "RunManifest": SCHEMA_VERSION},
        "custom": {
            "generator": RECORDS_FORMAT,
            "project": session.project,
            "collected_count": len(set(session.collected)),
            "collected_sha256": digest(sorted(set(session.collected))),
            "datasets": datasets,
            "statuses": statuses,
        },
    }


def _manifest_dataset(datasets: Mapping[str, Any]) -> dict[str, Any]:
    spec = dict(_EMPTY_DATASET)
    if len(datasets) == 1:
        (name, fingerprint), = datasets.items()
        spec.update(dataset_id=name, dataset_hash=fingerprint)
    return spec


def _common(records: Sequence[Mapping[str, Any]], field_name: str) -> dict[str, Any] | None:
    """The one model (probe) every record shares, or None when they differ."""
    spelled = {digest(r[field_name]): r[field_name] for r in records}
    return dict(next(iter(spelled.values()))) if len(spelled) == 1 else None


# -- one case ---------------------------------------------------------------------------------


def _case_records(case: FinishedCase, scrub: _Scrubber) -> list[dict[str, Any]]:
    results = _returned_results(case)
    if not results:
        return [_case_record(case, scrub)]
    return [_result_record(case, logged, result, index, scrub)
            for index, (logged, result) in enumerate(results)]


def record_groups(case: FinishedCase) -> list[tuple[str | None, str]]:
    """The ``(custom.experiment, status)`` of each record ``case`` gives, without building
    the records: all the scores table counts, for a session that writes no run files."""
    groups: list[tuple[str | None, str]] = []
    for logged in case.results:
        if logged.origin == "returned":
            name = _experiment_name(case, logged)
            groups += [(name, _status(result.status)) for result in logged.result.results]
    if not groups:
        info = case.experiment
        return [(info.name if info else None, STATUS_OF_OUTCOME[case.outcome])]
    return groups


def _returned_results(case: FinishedCase) -> list[tuple[LoggedResult, ProbeResult]]:
    return [(logged, result) for logged in case.results if logged.origin == "returned"
            for result in logged.result.results]


def _experiment_name(case: FinishedCase, logged: LoggedResult) -> str:
    """A returned result's experiment: the marker's name, else the result's probe."""
    info = case.experiment
    return info.name if info else (logged.result.probe_name or case.test_name)


def _case_record(case: FinishedCase, scrub: _Scrubber) -> dict[str, Any]:
    info = case.experiment
    if info is not None:
        model_id = info.model_id or info.model_name or NO_MODEL
        model = _model(model_id, info.model_provider or None)
        probe = _probe(info.name, info.params)
        harness = _harness(case, info.name, info.model_name or model_id, info.name,
                           info.probe_category)
        example_id, kind = case.example_id, "experiment"
    else:
        model, probe = _model(NO_MODEL, None), _probe(case.module)
        harness = _harness(case, None, NO_MODEL, case.module, "custom")
        example_id, kind = case.test_name, "test"
    return _record(
        case, model=model, probe=probe, example_id=example_id,
        status=STATUS_OF_OUTCOME[case.outcome], error=scrub(case.error),
        error_type=case.error_type,
        custom=_custom(case, kind, replicate_key(case), info.name if info else None, harness),
    )


def _result_record(case: FinishedCase, logged: LoggedResult, result: ProbeResult, index: int,
                   scrub: _Scrubber) -> dict[str, Any]:
    experiment = logged.result
    info: ExperimentInfo | None = case.experiment
    model_info = experiment.model_info
    model_id = model_info.model_id or model_info.name or (
        (info.model_id or info.model_name) if info else "") or NO_MODEL
    probe_id = experiment.probe_name or (info.name if info else case.test_name)
    name = _experiment_name(case, logged)
    metadata = result.metadata if isinstance(result.metadata, Mapping) else {}
    harness = _harness(case, name, model_info.name or model_id, probe_id,
                       plain(experiment.probe_category) or "custom")
    custom = _custom(case, "result", f"{replicate_key(case)}#result{index}", name, harness)
    custom["result_index"] = index
    custom["metadata"] = plain(metadata)
    if experiment.score is not None:
        score = plain(experiment.score)
        custom["result_score"] = {k: v for k, v in score.items()
                                  if k not in _VOLATILE_SCORE_FIELDS}
    example = metadata.get("example_id")
    error_type = metadata.get("error_type")
    return _record(
        case, model=_model(model_id, model_info.provider or None),
        probe=_probe(probe_id, logged.params),
        example_id=example if isinstance(example, str) and example else str(index),
        status=_status(result.status),
        error=scrub(result.error if isinstance(result.error, str) else None),
        error_type=error_type if isinstance(error_type, str) else None,
        custom=custom, input=plain(result.input), output=plain(result.output),
        scores=_scores(metadata),
    )


def _record(case: FinishedCase, *, model: dict[str, Any], probe: dict[str, Any],
            example_id: str, status: str, error: str | None, error_type: str | None,
            custom: dict[str, Any], input: Any = None, output: Any = None,
            scores: dict[str, float] | None = None) -> dict[str, Any]:
    # Every optional field is spelled out: the schema's own defaults, written down.
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": "",
        "started_at": "",
        "completed_at": "",
        "model": model,
        "probe": probe,
        "example_id": example_id,
        "dataset": dict(_EMPTY_DATASET),
        "input": input,
        "messages": None,
        "messages_hash": None,
        "messages_storage": None,
        "output": output,
        "output_text": output if isinstance(output, str) else None,
        "scores": scores or {},
        # Never set: insidellms diff counts any decrease of a primary metric as a
        # regression, so a 0/1 pass score there would count each flip twice.
        "primary_metric": None,
        "usage": {},
        "latency_ms": None,
        "status": status,
        "error": error,
        "error_type": error_type,
        "custom": custom,
    }


def replicate_key(case: FinishedCase) -> str:
    # Trial 0 keeps the bare node id, so it pairs with a session that ran each case once.
    # Under --dist each every worker runs every test: each copy is a case of its own.
    key = case.nodeid if case.trial == 0 else f"{case.nodeid}#trial{case.trial}"
    return key if case.worker is None else f"{key}@{case.worker}"


def _custom(case: FinishedCase, kind: str, key: str, experiment: str | None,
            harness: dict[str, Any]) -> dict[str, Any]:
    return {
        "replicate_key": key,
        "nodeid": case.nodeid,
        "module": case.module,
        "outcome": case.outcome,
        "kind": kind,
        "experiment": experiment,
        "trial": case.trial,
        "reruns": case.reruns,
        **({} if case.worker is None else {"worker": case.worker}),
        "harness": harness,
    }


def _harness(case: FinishedCase, experiment: str | None, model_name: str, probe_name: str,
             category: Any) -> dict[str, Any]:
    """What ``insidellms report`` groups by: one experiment per module and marker name."""
    return {
        "experiment_id": case.module if experiment is None else f"{case.module}::{experiment}",
        "model_name": model_name,
        "probe_name": probe_name,
        "probe_category": str(category) if category else "custom",
        "example_index": 0,
    }


def _model(model_id: str, provider: str | None) -> dict[str, Any]:
    return {"model_id": model_id, "provider": provider, "params": {}}


def _probe(probe_id: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"probe_id": probe_id, "probe_version": None, "params": plain(dict(params or {}))}


#: ResultStatus by value, as a dict: the enum's own lookup costs a call per probe.
_STATUS_VALUES: Final = {s.value: s.value for s in ResultStatus}


def _status(status: Any) -> str:
    if type(status) is ResultStatus:
        member_value: str = status._value_  # a plain attribute; .value costs a call
        return member_value
    value = getattr(status, "value", status)
    try:
        return _STATUS_VALUES.get(value, "error")
    except TypeError:  # unhashable: no status
        return "error"


def _scores(metadata: Mapping[str, Any]) -> dict[str, float]:
    """Numeric ``metadata["scores"]`` entries, and ``metadata["score"]`` as ``score``."""
    scores: dict[str, float] = {}
    named = metadata.get("scores")
    if isinstance(named, Mapping):
        scores.update((str(k), v) for k, v in named.items() if _is_number(v))
    if "score" not in scores and _is_number(metadata.get("score")):
        scores["score"] = metadata["score"]
    return {k: plain(v) for k, v in scores.items()}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value == value and value not in (float("inf"), float("-inf"))


class _Scrubber:
    """Error text without what differs between two checkouts of the same results."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = sorted({p.rstrip("/\\") for p in paths if len(p.rstrip("/\\")) > 1},
                            key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for path in self.paths:
            text = text.replace(path, "<path>")
        return _ADDRESS.sub("0x?", text)
