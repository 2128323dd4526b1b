"""Records from cases: one per case (one per result), each in ResultRecord 1.0.1's shape."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy
import pytest
from records_cases import BATCH, QA, UTIL, batch_case, batch_result, qa_case, session, suite
from records_schema import validate_manifest, validate_record, validate_summary

from pytest_insidellms.cases import FinishedCase, LoggedResult
from pytest_insidellms.records import (
    RecordsSession,
    build_manifest,
    build_records,
    finalize_records,
    read_records,
    write_records,
)
from pytest_insidellms.records.canonical import canonical_json, plain


def by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["custom"]["replicate_key"]: r for r in records}


def test_every_record_and_the_manifest_conform_to_the_schema(tmp_path: Path) -> None:
    cases = suite()
    written = write_records(tmp_path, session(cases), cases)
    records = read_records(tmp_path / "records.jsonl")
    assert len(records) == written.records == 10  # 7 cases + 3 results of the batch case
    for record in records:
        assert validate_record(record) == [], record["custom"]["replicate_key"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert validate_manifest(manifest) == []
    assert validate_summary(json.loads((tmp_path / "summary.json").read_text())) == []


def test_the_validator_rejects_what_strict_insidellms_rejects() -> None:
    good = build_records(session(suite()), suite())[0]
    assert validate_record(good) == []
    assert validate_record({**good, "duration": 1.0}) == ["unknown field 'duration'"]
    assert validate_record({**good, "status": "failed"})
    assert validate_record({k: v for k, v in good.items() if k != "example_id"})
    assert validate_record({**good, "model": {**good["model"], "name": "x"}})
    assert validate_record({**good, "started_at": "yesterday"})
    assert validate_record({**good, "started_at": "2001-01-01T00:00:00Z"})  # 3.10 rejects Z
    assert validate_record({**good, "scores": None})
    assert validate_record({**good, "primary_metric": "bleu"})  # not a key of scores


def test_a_marker_case_is_one_record_named_by_its_experiment() -> None:
    records = by_key(build_records(session(suite()), suite()))
    passed = records[f"{QA}::test_answer[q1]"]
    assert passed["probe"] == {"probe_id": "qa_accuracy", "probe_version": None,
                               "params": {"temperature": 0.0}}
    assert passed["model"] == {"model_id": "gpt-4-0613", "provider": "openai", "params": {}}
    assert passed["example_id"] == "q1"
    assert passed["status"] == "success"
    assert (passed["error"], passed["error_type"]) == (None, None)
    assert passed["latency_ms"] is None  # a duration is not a result
    assert passed["primary_metric"] is None
    assert passed["custom"] | {"harness": None} == {
        "replicate_key": f"{QA}::test_answer[q1]", "nodeid": f"{QA}::test_answer[q1]",
        "module": QA, "outcome": "passed", "kind": "experiment", "experiment": "qa_accuracy",
        "trial": 0, "reruns": 0, "harness": None}
    assert passed["custom"]["harness"] == {
        "experiment_id": f"{QA}::qa_accuracy", "model_name": "GPT-4",
        "probe_name": "qa_accuracy", "probe_category": "factuality", "example_index": 0}
    failed = records[f"{QA}::test_answer[q2]"]
    assert failed["status"] == "error"
    assert failed["error_type"] == "AssertionError"
    assert "assert '5' == '4'" in failed["error"]
    assert failed["custom"]["harness"]["example_index"] == 1


@pytest.mark.parametrize(("outcome", "status"), [
    ("passed", "success"), ("failed", "error"), ("error", "error"), ("skipped", "skipped"),
    ("xfailed", "skipped"), ("xpassed", "success"),
])
def test_pytest_outcomes_map_onto_the_status_vocabulary(outcome: Any, status: str) -> None:
    case = qa_case("q", outcome)
    (record,) = build_records(session([case]), [case])
    assert record["status"] == status
    assert record["custom"]["outcome"] == outcome


def test_each_returned_probe_result_is_its_own_record() -> None:
    records = by_key(build_records(session(suite()), suite()))
    first, second, third = (records[f"{BATCH}::test_batch#result{i}"] for i in range(3))
    assert f"{BATCH}::test_batch" not in records  # the results stand for the case
    assert first["model"] == {"model_id": "claude-3", "provider": "anthropic", "params": {}}
    assert first["probe"]["probe_id"] == "arithmetic"
    assert (first["input"], first["output"], first["output_text"]) == ({"q": "2+2"}, "4", "4")
    assert first["scores"] == {"score": 1.0}
    assert second["output"] == {"answer": 6, "steps": ["3+3"]}
    assert second["output_text"] is None
    assert second["scores"] == {"exact": 0.0, "judge": 0.25}
    assert (third["status"], third["error"], third["error_type"]) == (
        "timeout", "timed out", "TimeoutError")
    assert [r["example_id"] for r in (first, second, third)] == ["0", "1", "2"]
    assert all(r["primary_metric"] is None for r in (first, second, third))
    assert first["custom"]["kind"] == "result"
    assert first["custom"]["result_index"] == 0
    assert first["custom"]["outcome"] == "passed"
    # The result's ProbeScore rides along, without its wall-time field.
    assert first["custom"]["result_score"]["accuracy"] == 0.5
    assert "mean_latency_ms" not in first["custom"]["result_score"]
    assert "uuid-that-changes-every-run" not in canonical_json(list(records.values()))


def test_a_returned_result_without_probe_results_keeps_the_case_record() -> None:
    result = batch_result()
    result.results = []
    empty = FinishedCase(f"{BATCH}::test_batch", BATCH, "passed",
                         results=(LoggedResult(result, "batch/", "returned"),))
    (record,) = build_records(session([empty]), [empty])
    assert record["custom"]["replicate_key"] == f"{BATCH}::test_batch"
    assert record["status"] == "success"


def test_plain_tests_are_probed_by_their_module() -> None:
    records = by_key(build_records(session(suite()), suite()))
    add = records[f"{UTIL}::test_add"]
    assert add["probe"]["probe_id"] == UTIL
    assert add["example_id"] == "test_add"
    assert add["model"]["model_id"] == "pytest"
    assert add["custom"]["experiment"] is None
    setup_error = records[f"{UTIL}::TestIO::test_open"]
    assert setup_error["example_id"] == "TestIO::test_open"
    assert setup_error["status"] == "error"
    assert setup_error["error_type"] == "FileNotFoundError"
    assert records[f"{UTIL}::test_later"]["status"] == "skipped"


def test_trials_after_the_first_carry_their_number_in_the_key() -> None:
    cases = [qa_case("q1", "passed", trial=t) for t in range(3)]
    keys = [r["custom"]["replicate_key"] for r in build_records(session(cases), cases)]
    assert keys == [f"{QA}::test_answer[q1]", f"{QA}::test_answer[q1]#trial1",
                    f"{QA}::test_answer[q1]#trial2"]


def test_two_cases_with_one_key_are_refused() -> None:
    cases = [qa_case("q1", "passed"), qa_case("q1", "failed")]
    with pytest.raises(ValueError, match="share the case key"):
        build_records(session(cases), cases)


def test_records_are_sorted_by_case_key_numbers_as_numbers() -> None:
    cases = [qa_case(f"q{i}", "passed") for i in (10, 2, 1)]
    keys = [r["example_id"] for r in build_records(session(cases), cases)]
    assert keys == ["q1", "q2", "q10"]


def test_the_run_id_hashes_what_defines_the_session_and_nothing_else() -> None:
    cases = suite()
    reference = session(cases).run_id
    assert len(reference) == 32 and int(reference, 16) >= 0
    assert session(cases, collected=list(reversed(session(cases).collected))).run_id == reference
    assert session(cases, library_version="9.9", run_completed=False,
                   hidden_paths=("/tmp/x",)).run_id == reference
    assert session(cases, project="other").run_id != reference
    assert session(cases, collected=session(cases).collected[1:]).run_id != reference
    assert session(cases, datasets={"qa.jsonl": "sha256:new"}).run_id != reference


def test_timestamps_derive_from_the_run_id() -> None:
    cases = suite()
    definition = session(cases)
    records = build_records(definition, cases)
    head = hashlib.sha256(definition.run_id.encode()).digest()[:8]
    base = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(
        seconds=int.from_bytes(head, "big") % (10 * 365 * 24 * 3600))
    for i, record in enumerate(records):
        assert datetime.fromisoformat(record["started_at"]) == base + timedelta(microseconds=2 * i)
        assert datetime.fromisoformat(record["completed_at"]) == base + timedelta(
            microseconds=2 * i + 1)
        assert record["run_id"] == definition.run_id
    manifest = build_manifest(definition, records)
    assert datetime.fromisoformat(manifest["completed_at"]) == base + timedelta(
        microseconds=2 * len(records) + 1)


def test_the_manifest_counts_and_leaves_host_facts_out() -> None:
    cases = suite()
    definition = session(cases)
    manifest = build_manifest(definition, build_records(definition, cases))
    # success: q1, q4 (xpassed), two results, test_add; error: q2, the setup error.
    assert (manifest["record_count"], manifest["success_count"], manifest["error_count"]) == (
        10, 5, 2)
    assert manifest["custom"]["statuses"] == {"success": 5, "error": 2, "timeout": 1,
                                              "skipped": 2, "rate_limited": 0}
    assert (manifest["python_version"], manifest["platform"], manifest["command"]) == (
        None, None, None)
    assert manifest["library_version"] == "0.1.0"
    assert manifest["model"]["model_id"] == manifest["probe"]["probe_id"] == "pytest"
    assert manifest["dataset"]["dataset_id"] == "qa.jsonl"
    assert manifest["dataset"]["dataset_hash"] == "sha256:0f1e2d"
    assert manifest["custom"]["collected_count"] == len(cases) + 1
    assert manifest["custom"]["project"] == "demo-evals"


def test_error_text_loses_checkout_paths_and_memory_addresses() -> None:
    case = qa_case("q", "failed", error_type="ValueError",
                   error="/home/ci/work/repo/evals/test_qa.py:3: bad <Thing at 0x7f3a9c0e1d30>")
    definition = session([case], hidden_paths=("/home/ci/work/repo/",))
    (record,) = build_records(definition, [case])
    assert record["error"] == "<path>/evals/test_qa.py:3: bad <Thing at 0x?>"


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: float


class Opaque:
    def __str__(self) -> str:
        return f"Opaque at {id(self):#x}"


def test_plain_json_is_strict_and_spelled_one_way() -> None:
    value = {
        "nan": math.nan, "inf": -math.inf, "set": {"b", "a", "c"}, "tuple": (1, 2),
        "enum": Colour.RED, "point": Point(1, 2.5), "path": PurePosixPath("a/b"),
        "bytes": b"caf\xc3\xa9", "np": numpy.float32(0.5), "npint": numpy.int64(3),
        "when": datetime(2024, 5, 6, 7, 8, 9), "opaque": Opaque(), 3: "int key",
    }
    assert plain(value) == {
        "nan": None, "inf": None, "set": ["a", "b", "c"], "tuple": [1, 2], "enum": "red",
        "point": {"x": 1, "y": 2.5}, "path": "a/b", "bytes": "café", "np": 0.5, "npint": 3,
        "when": "2024-05-06T07:08:09", "opaque": "<unserializable Opaque>", "3": "int key",
    }
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert plain(cyclic) == ["<cycle>"]
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == \
        '{"a":"\\u00e9","b":[1,{"c":2,"d":1}]}'


def test_unserializable_inputs_do_not_leak_addresses_into_records() -> None:
    case = batch_case()
    case.results[0].result.results[0].input = {"obj": Opaque()}
    (first, *_) = build_records(session([case]), [case])
    assert first["input"] == {"obj": "<unserializable Opaque>"}


def test_finalize_is_idempotent_so_shards_can_be_refinalized() -> None:
    definition = session(suite())
    records = build_records(definition, suite())
    again = finalize_records(reversed(records), definition.run_id)
    assert canonical_json(again) == canonical_json(records)


def test_a_session_definition_needs_no_cases() -> None:
    definition = RecordsSession("p", [])
    assert build_records(definition, []) == []
    assert validate_manifest(build_manifest(definition, [])) == []
