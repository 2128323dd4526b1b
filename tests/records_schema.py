"""insideLLMs' output contract 1.0.1, written down from its schemas as a test-side validator.

insideLLMs is not installable here, so the tests check the shapes themselves: the field names
(extra fields are rejected at every level, as its strict models do), the types, the required
fields and the status vocabulary. ``validate_record`` / ``validate_manifest`` /
``validate_summary`` return the list of problems (empty when the value conforms).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

STATUSES = ("success", "error", "timeout", "rate_limited", "skipped")

Check = Callable[[Any], bool]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _object(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _any(value: Any) -> bool:
    return True


def _datetime(value: Any) -> bool:
    """An ISO-8601 string that Python 3.10's ``datetime.fromisoformat`` reads too."""
    if not isinstance(value, str) or not _ISO.fullmatch(value) or value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _status(value: Any) -> bool:
    return value in STATUSES


def _str_list_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


# name -> (check, required)
Shape = Mapping[str, tuple[Check, bool]]

MODEL_SPEC: Shape = {"model_id": (_str, True), "provider": (_opt_str, False),
                     "params": (_object, False)}
PROBE_SPEC: Shape = {"probe_id": (_str, True), "probe_version": (_opt_str, False),
                     "params": (_object, False)}
DATASET_SPEC: Shape = {"dataset_id": (_opt_str, False), "dataset_version": (_opt_str, False),
                       "dataset_hash": (_opt_str, False), "provenance": (_opt_str, False),
                       "params": (_object, False)}
CHAT_MESSAGE: Shape = {"role": (_str, True), "content": (_any, True)}


def _nested(shape: Shape) -> Check:
    return lambda value: not problems(value, shape)


def _messages(value: Any) -> bool:
    return value is None or (isinstance(value, list)
                             and all(not problems(m, CHAT_MESSAGE) for m in value))


RESULT_RECORD: Shape = {
    "schema_version": (_str, True),
    "run_id": (_str, True),
    "started_at": (_datetime, True),
    "completed_at": (_datetime, True),
    "model": (_nested(MODEL_SPEC), True),
    "probe": (_nested(PROBE_SPEC), True),
    "example_id": (_str, True),
    "dataset": (_nested(DATASET_SPEC), False),
    "input": (_any, False),
    "messages": (_messages, False),
    "messages_hash": (_opt_str, False),
    "messages_storage": (_opt_str, False),
    "output": (_any, False),
    "output_text": (_opt_str, False),
    "scores": (_object, False),
    "primary_metric": (_opt_str, False),
    "usage": (_object, False),
    "latency_ms": (_number_or_none, False),
    "status": (_status, True),
    "error": (_opt_str, False),
    "error_type": (_opt_str, False),
    "custom": (_object, False),
}

RUN_MANIFEST: Shape = {
    "schema_version": (_str, False),
    "run_id": (_str, True),
    "created_at": (_datetime, True),
    "started_at": (_datetime, True),
    "completed_at": (_datetime, True),
    "run_completed": (lambda v: isinstance(v, bool), False),
    "library_version": (_opt_str, False),
    "python_version": (_opt_str, False),
    "platform": (_opt_str, False),
    "command": (_str_list_or_none, False),
    "model": (_nested(MODEL_SPEC), True),
    "probe": (_nested(PROBE_SPEC), True),
    "dataset": (_nested(DATASET_SPEC), False),
    "record_count": (_int, False),
    "success_count": (_int, False),
    "error_count": (_int, False),
    "records_file": (_str, False),
    "schemas": (_object, False),
    "custom": (_object, False),
}

HARNESS_SUMMARY: Shape = {
    "schema_version": (_str, False),
    "generated_at": (_datetime, True),
    "summary": (_object, True),
    "config": (_object, True),
}


def problems(value: Any, shape: Shape) -> list[str]:
    if not isinstance(value, dict):
        return [f"expected an object, got {type(value).__name__}"]
    found = [f"unknown field {name!r}" for name in sorted(set(value) - set(shape))]
    for name, (check, required) in shape.items():
        if name not in value:
            if required:
                found.append(f"missing required field {name!r}")
        elif not check(value[name]):
            found.append(f"bad value for {name!r}: {value[name]!r}")
    return found


def validate_record(record: Any) -> list[str]:
    found = problems(record, RESULT_RECORD)
    if not found:
        if record["schema_version"] != "1.0.1":
            found.append(f"schema_version {record['schema_version']!r} is not 1.0.1")
        metric = record.get("primary_metric")
        if metric is not None and metric not in record.get("scores", {}):
            found.append(f"primary_metric {metric!r} is not a key of scores")
    return found


def validate_manifest(manifest: Any) -> list[str]:
    found = problems(manifest, RUN_MANIFEST)
    if not found and manifest.get("schema_version", "1.0.1") != "1.0.1":
        found.append(f"schema_version {manifest['schema_version']!r} is not 1.0.1")
    return found


def validate_summary(summary: Any) -> list[str]:
    return problems(summary, HARNESS_SUMMARY)
