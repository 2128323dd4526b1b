"""Records pair the way ``insidellms diff`` pairs them: one key per case, one-to-one.

The key rule and the regression rule below are insideLLMs', written from the spec
(records.md): group by model and probe label, then the first of custom.replicate_key, a hash
of messages or input, example_id, "0".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from typing import Any

from records_cases import QA, QA_INFO, qa_case, session, suite
from test_records_summary import trial_cases

from pytest_insidellms.cases import FinishedCase
from pytest_insidellms.records import build_records

Key = tuple[str, str, str]


def diff_key(record: dict[str, Any]) -> Key:
    custom: dict[str, Any] = record["custom"] if isinstance(record.get("custom"), dict) else {}
    harness: dict[str, Any] = custom["harness"] if isinstance(custom.get("harness"), dict) else {}
    model = harness.get("model_id") or record["model"].get("model_id") \
        or harness.get("model_name") or "model"
    probe = harness.get("probe_type") or record["probe"].get("probe_id") \
        or harness.get("probe_name") or "probe"
    hashed = None
    if record.get("messages_hash"):
        hashed = record["messages_hash"]
    elif record.get("input") is not None:
        spelled = json.dumps(record["input"], sort_keys=True, separators=(",", ":"))
        hashed = hashlib.sha256(spelled.encode()).hexdigest()[:12]
    chosen = custom.get("replicate_key") or hashed or record.get("example_id") or "0"
    return str(model), str(probe), str(chosen)


def primary_score(record: dict[str, Any]) -> float | None:
    scores = record.get("scores") or {}
    metric = record.get("primary_metric")
    name = metric if metric else "score"
    value = scores.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def regressions(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> list[Key]:
    """Success in the baseline and anything else in the candidate; any drop of the primary
    score (no tolerance). A case can count twice, once per rule."""
    a = {diff_key(r): r for r in baseline}
    b = {diff_key(r): r for r in candidate}
    found = []
    for key in sorted(a.keys() & b.keys()):
        if a[key]["status"] == "success" and b[key]["status"] != "success":
            found.append(key)
        before, after = primary_score(a[key]), primary_score(b[key])
        if before is not None and after is not None and after < before:
            found.append(key)
    return found


def test_every_record_has_its_own_diff_key() -> None:
    cases = suite() + trial_cases()
    records = build_records(session(cases), cases)
    counts = Counter(diff_key(r) for r in records)
    assert len(counts) == len(records) == 30
    assert max(counts.values()) == 1


def test_two_sessions_pair_one_to_one_whatever_the_order() -> None:
    cases = suite() + trial_cases()
    baseline = build_records(session(cases), cases)
    candidate_cases = cases.copy()
    random.Random(7).shuffle(candidate_cases)
    candidate = build_records(session(candidate_cases), candidate_cases)
    a = Counter(diff_key(r) for r in baseline)
    b = Counter(diff_key(r) for r in candidate)
    assert a == b and set(a.values()) == {1}


def test_a_flipped_case_is_exactly_one_regression() -> None:
    cases = suite()
    baseline = build_records(session(cases), cases)
    flipped = [dataclasses.replace(c, outcome="failed", error_type="AssertionError")
               if c.nodeid.endswith("[q1]") else c for c in cases]
    candidate = build_records(session(flipped), flipped)
    # No 0/1 primary metric beside the status: the flip is counted once, not twice.
    assert regressions(baseline, candidate) == [("gpt-4-0613", "qa_accuracy",
                                                 f"{QA}::test_answer[q1]")]
    assert regressions(candidate, baseline) == []


def test_a_lower_result_score_is_a_regression_as_insidellms_judges_it() -> None:
    cases = suite()
    baseline = build_records(session(cases), cases)
    candidate = [dict(r) for r in baseline]
    worse = next(r for r in candidate if r["scores"].get("score") == 1.0)
    worse["scores"] = {"score": 0.5}
    assert regressions(baseline, candidate) == [diff_key(worse)]


def test_trial_zero_pairs_with_a_session_that_ran_each_case_once() -> None:
    once = [qa_case("q1", "passed")]
    thrice = [qa_case("q1", "passed", trial=t, info=dataclasses.replace(QA_INFO, trials=3))
              for t in range(3)]
    single = {diff_key(r) for r in build_records(session(once), once)}
    repeated = {diff_key(r) for r in build_records(session(thrice), thrice)}
    assert single < repeated and len(repeated) == 3


def test_without_the_replicate_key_cases_of_two_modules_would_collide() -> None:
    """Why every record carries custom.replicate_key: the same experiment name and
    parametrization in two modules leave insidellms diff nothing else to tell them apart."""
    cases = [qa_case("q1", "passed"),
             FinishedCase("evals/test_qa_hard.py::test_answer[q1]", "evals/test_qa_hard.py",
                          "failed", experiment=QA_INFO)]
    records = build_records(session(cases), cases)
    assert len({diff_key(r) for r in records}) == 2
    for record in records:
        record["custom"] = {k: v for k, v in record["custom"].items() if k != "replicate_key"}
    assert len({diff_key(r) for r in records}) == 1
