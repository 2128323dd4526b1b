"""Result types: insideLLMs-compatible fields, derived counts and a lossless JSON round-trip."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_insidellms import (
    ExperimentResult,
    ModelInfo,
    ProbeCategory,
    ProbeExperimentResult,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)
from pytest_insidellms.types import to_jsonable

UTC = timezone.utc


def make_result(**overrides: Any) -> ExperimentResult:
    fields: dict[str, Any] = {
        "experiment_id": "exp-1",
        "model_info": ModelInfo(name="gpt-4", provider="openai", model_id="gpt-4-0613",
                                max_tokens=4096, supports_streaming=True, extra={"region": "eu"}),
        "probe_name": "arithmetic",
        "probe_category": ProbeCategory.LOGIC,
        "results": [
            ProbeResult(input="1+1", output="2", latency_ms=12.5),
            ProbeResult(input="2+2", output=None, status=ResultStatus.ERROR, error="boom"),
            ProbeResult(input={"q": "3+3"}, output=["6"], status=ResultStatus.TIMEOUT,
                        metadata={"attempt": 2}),
        ],
        "score": ProbeScore(accuracy=0.5, f1_score=0.4, total_tokens=321,
                            custom_metrics={"bleu": 0.3, "grade": "B"}),
        "started_at": datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        "completed_at": datetime(2024, 5, 1, 12, 0, 42, 500000, tzinfo=UTC),
        "config": {"temperature": 0.2},
        "metadata": {"suite": "smoke"},
    }
    fields.update(overrides)
    return ExperimentResult(**fields)


def test_enum_values_are_the_lowercase_names() -> None:
    assert [c.value for c in ProbeCategory] == [
        "logic", "factuality", "bias", "attack", "safety", "reasoning", "knowledge", "custom"]
    assert [s.value for s in ResultStatus] == [
        "success", "error", "timeout", "rate_limited", "skipped"]
    for member in [*ProbeCategory, *ResultStatus]:
        assert member.value == member.name.lower()


def test_field_names_and_defaults_match_insidellms() -> None:
    def defaults(cls: type) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = "<required>"
        return out

    assert defaults(ModelInfo) == {
        "name": "<required>", "provider": "<required>", "model_id": "<required>",
        "max_tokens": None, "supports_streaming": False, "supports_chat": True, "extra": {}}
    assert defaults(ProbeResult) == {
        "input": "<required>", "output": None, "status": ResultStatus.SUCCESS, "error": None,
        "latency_ms": None, "metadata": {}}
    assert defaults(ProbeScore) == {
        "accuracy": None, "precision": None, "recall": None, "f1_score": None,
        "mean_latency_ms": None, "total_tokens": None, "error_rate": 0.0, "custom_metrics": {}}
    assert defaults(ExperimentResult) == {
        "experiment_id": "<required>", "model_info": "<required>", "probe_name": "<required>",
        "probe_category": "<required>", "results": "<required>", "score": None,
        "started_at": None, "completed_at": None, "config": {}, "metadata": {}}


def test_probe_experiment_result_is_an_alias() -> None:
    assert ProbeExperimentResult is ExperimentResult


def test_mutable_defaults_are_not_shared_between_instances() -> None:
    a, b = ProbeResult(input="a"), ProbeResult(input="b")
    a.metadata["x"] = 1
    assert b.metadata == {}


def test_counts_follow_insidellms_error_counts_error_only() -> None:
    result = make_result(results=[
        ProbeResult(input=1), ProbeResult(input=2),
        ProbeResult(input=3, status=ResultStatus.ERROR),
        ProbeResult(input=4, status=ResultStatus.TIMEOUT),
        ProbeResult(input=5, status=ResultStatus.RATE_LIMITED),
    ])
    assert result.success_count == 2
    assert result.error_count == 1
    assert result.total_count == 5
    assert result.success_rate == pytest.approx(0.4)


def test_success_rate_is_zero_when_there_are_no_results() -> None:
    assert make_result(results=[]).success_rate == 0.0


def test_duration_needs_both_timestamps() -> None:
    result = make_result()
    assert result.duration_seconds == pytest.approx(42.5)
    assert make_result(started_at=None).duration_seconds is None
    assert make_result(completed_at=None).duration_seconds is None


def test_round_trip_through_json_text_is_lossless() -> None:
    result = make_result()
    text = json.dumps(result.to_dict())
    back = ExperimentResult.from_dict(json.loads(text))
    assert back == result
    assert back.started_at is not None and back.started_at.tzinfo is not None
    assert back.started_at.utcoffset() == timedelta(0)
    assert back.probe_category is ProbeCategory.LOGIC
    assert back.results[1].status is ResultStatus.ERROR
    assert isinstance(back.model_info, ModelInfo) and isinstance(back.score, ProbeScore)


def test_round_trip_keeps_a_non_utc_offset() -> None:
    tz = timezone(timedelta(hours=5, minutes=30))
    result = make_result(started_at=datetime(2024, 1, 1, 9, 0, tzinfo=tz), completed_at=None)
    back = ExperimentResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.started_at == result.started_at
    assert back.started_at is not None and back.started_at.utcoffset() == timedelta(hours=5.5)


def test_to_dict_is_plain_json_with_enum_values_and_iso_datetimes() -> None:
    data = make_result().to_dict()
    assert data["probe_category"] == "logic"
    assert data["results"][1]["status"] == "error"
    assert data["started_at"] == "2024-05-01T12:00:00+00:00"
    assert data["model_info"]["extra"] == {"region": "eu"}
    # Round-trips through a strict encoder: nothing but JSON types inside.
    assert json.loads(json.dumps(data)) == data


def test_arbitrary_inputs_and_outputs_degrade_to_json_safe_values() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    loop: list[Any] = [1]
    loop.append(loop)
    result = make_result(results=[
        ProbeResult(input=Opaque(), output={"b", "a"}),
        ProbeResult(input=(1, Path("/tmp/x")), output=b"\xffbytes"),
        ProbeResult(input=np.float32(0.5), output=np.int64(7)),
        ProbeResult(input=loop, output=Unprintable()),
        ProbeResult(input={1: datetime(2024, 1, 1, tzinfo=UTC)}, output=np.array([1, 2])),
    ])
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    inputs = [r["input"] for r in data["results"]]
    outputs = [r["output"] for r in data["results"]]
    assert inputs == ["opaque!", [1, "/tmp/x"], 0.5, [1, "<cycle>"],
                      {"1": "2024-01-01T00:00:00+00:00"}]
    assert outputs[:4] == [["a", "b"], "\ufffdbytes", 7, "<Unprintable>"]
    assert outputs[4] == "[1 2]"
    back = ExperimentResult.from_dict(data)
    assert back.results[0].input == "opaque!"


def test_nan_floats_survive_a_python_json_round_trip() -> None:
    result = make_result(score=ProbeScore(accuracy=math.nan, mean_latency_ms=math.inf))
    back = ExperimentResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.score is not None
    assert back.score.accuracy is not None and math.isnan(back.score.accuracy)
    assert back.score.mean_latency_ms == math.inf


def test_to_jsonable_keeps_numbers_and_drops_numpy_bool_to_text() -> None:
    assert to_jsonable(np.float64(1.5)) == 1.5 and type(to_jsonable(np.float64(1.5))) is float
    assert type(to_jsonable(np.int32(3))) is int
    assert to_jsonable(np.bool_(True)) == "True"
    assert to_jsonable(ResultStatus.SKIPPED) == "skipped"


def test_from_dict_names_missing_fields() -> None:
    data = make_result().to_dict()
    del data["probe_name"]
    del data["results"]
    with pytest.raises(ValueError, match="probe_name, results"):
        ExperimentResult.from_dict(data)
    with pytest.raises(TypeError, match="mapping"):
        ExperimentResult.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_from_dict_accepts_minimal_data_with_defaults() -> None:
    back = ExperimentResult.from_dict({
        "experiment_id": "e", "probe_name": "p", "probe_category": "custom", "results": [],
        "model_info": {"name": "m", "provider": "p", "model_id": "m1"},
    })
    assert back == ExperimentResult(
        experiment_id="e", model_info=ModelInfo(name="m", provider="p", model_id="m1"),
        probe_name="p", probe_category=ProbeCategory.CUSTOM, results=[])
