"""The shortcuts of the per-result path give what the general rules give, for any input.

Each fast path (a prefix checked once, one redaction search over all params, params.json
from the C encoder, the guard that holds no warnings) is compared with the slow path it
skips, on generated names and values, so a shortcut can never change what gets logged.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ProbeScore
from pytest_insidellms import ResultStatus
from pytest_insidellms.experiment_tracking.base import (
    TrackingWarning,
    validate_metrics,
    validate_params,
    validate_result,
)
from pytest_insidellms.experiment_tracking.journal import _ENCODER, _encode, _indented
from pytest_insidellms.experiment_tracking.names import (
    FIXED_RESULT_NAMES,
    joins_cleanly,
    sanitize_key,
)
from pytest_insidellms.experiment_tracking.redaction import REDACTED, redact_params, redact_value
from pytest_insidellms.experiment_tracking.results import flatten_experiment_result

#: Characters that exercise every name rule: separators, dots, slashes, spaces, non-ASCII.
NAME_TEXT = st.text(alphabet=st.sampled_from(list("ab_-. :/\\x\u00e9+*\t")), max_size=12)


@settings(max_examples=400, deadline=None)
@given(prefix=NAME_TEXT, name=NAME_TEXT)
@example(prefix="a/.", name="x")
@example(prefix="a/", name="./b")
@example(prefix="a.", name=".b")
@example(prefix="a" * 240, name="success_rate")
def test_a_prefix_that_joins_cleanly_needs_no_rewrite(prefix: str, name: str) -> None:
    if joins_cleanly(prefix, [name]):
        assert sanitize_key(prefix + name) == prefix + name


def test_the_fixed_result_names_are_clean() -> None:
    for name in FIXED_RESULT_NAMES:
        assert sanitize_key(name) == name and name[0].isalpha()


def _result(custom: dict[str, Any], accuracy: float | None) -> ExperimentResult:
    return ExperimentResult(
        experiment_id="exp-1", model_info=ModelInfo(name="m", provider="p", model_id="m-1"),
        probe_name="probe", probe_category=ProbeCategory.REASONING,
        results=[ProbeResult(input="q", status=ResultStatus.SUCCESS),
                 ProbeResult(input="r", status=ResultStatus.TIMEOUT),
                 ProbeResult(input="s", status=ResultStatus.ERROR)],
        score=ProbeScore(accuracy=accuracy, custom_metrics=custom))


CUSTOM = st.dictionaries(
    NAME_TEXT.filter(bool),
    st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.text(max_size=8),
              st.sampled_from(["sk-" + "a" * 20, "api_key", "Bearer abcdefghijklmnop"])),
    max_size=4)


@settings(max_examples=300, deadline=None)
@given(prefix=NAME_TEXT, custom=CUSTOM, accuracy=st.one_of(st.none(), st.floats(0, 1)))
@example(prefix="test_api_key/", custom={}, accuracy=0.5)
@example(prefix="t/", custom={"token": "x", "bearer": "Bearer abcdefghijklmnop"}, accuracy=None)
def test_validate_result_is_validate_metrics_and_params_of_the_flattened_result(
    prefix: str, custom: dict[str, Any], accuracy: float | None
) -> None:
    result = _result(custom, accuracy)
    metrics, params = flatten_experiment_result(result, prefix)
    try:
        expected: Any = (validate_metrics(metrics), validate_params(params))
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            validate_result(result, prefix)
        return
    got = validate_result(result, prefix)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_the_status_counts_come_from_members_and_strings_alike() -> None:
    result = _result({}, None)
    result.results.append(ProbeResult(input="t", status="SKIPPED"))  # type: ignore[arg-type]
    metrics, _ = flatten_experiment_result(result)
    assert (metrics["total_count"], metrics["success_count"], metrics["timeout_count"],
            metrics["error_count"], metrics["skipped_count"]) == (4, 1, 1, 1, 1)
    assert metrics["success_rate"] == 0.25
    result.results.append(ProbeResult(input="u", status=3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"results\[4\]\.status"):
        flatten_experiment_result(result)


PARAM_NAMES = st.one_of(NAME_TEXT, st.sampled_from(
    ["api_key", "openaiKey", "auth_token", "token_count", "sort_key", "passphrase", "DSN"]))
PARAM_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10),
    st.sampled_from(["sk-" + "b" * 24, "https://u:pw@host/x", "Basic QWxhZGRpbjpvcGVu",
                     "ghp_" + "c" * 30, "risk-assessment-suite"]))


@settings(max_examples=400, deadline=None)
@given(params=st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=6))
def test_redacting_flat_params_in_one_search_redacts_what_each_would(
    params: dict[str, Any]
) -> None:
    assert redact_params(params) == redact_value(params)


def test_a_secret_is_still_redacted_when_every_other_param_is_clean() -> None:
    params = {"t/model_name": "m", "t/openai_key": "abc", "t/note": "use sk-" + "d" * 20}
    redacted = redact_params(params)
    assert redacted["t/openai_key"] == REDACTED
    assert redacted["t/note"] == f"use {REDACTED}"
    assert redacted["t/model_name"] == "m"


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(
    st.dictionaries(st.text(max_size=6), st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6)), max_size=6),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.lists(st.integers(), max_size=2), max_size=3)))
def test_run_files_are_indented_as_json_dumps_indents_them(data: Any) -> None:
    assert _indented(data) == json.dumps(data, indent=2, default=str, allow_nan=False)


def test_a_guard_that_holds_no_warnings_still_turns_an_exception_into_a_problem(
    pytester: pytest.Pytester,
) -> None:
    from pytest_insidellms.session.problems import ProblemSink

    sink = ProblemSink(pytester.parseconfig(), UserWarning, False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with sink.guard("journal", hold_warnings=False):
            raise OSError("disk full")
        with sink.guard("outer", hold_warnings=False), sink.guard("inner"):
            warnings.warn(TrackingWarning("held by the inner guard"))
    assert sink.problems["journal"][0].startswith("OSError")
    # The inner guard caught the library's warning and showed it as the plugin's own, once.
    shown = [str(w.message) for w in seen]
    assert any("held by the inner guard" in text for text in shown)
    assert any("disk full" in text for text in shown)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(data=JSON_VALUES)
def test_journal_lines_are_what_the_json_module_encodes(data: Any) -> None:
    assert _encode(data) == _ENCODER.encode(data)


@pytest.mark.parametrize("encode", [_indented, _encode], ids=["run file", "journal line"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_non_finite_float_is_refused_by_the_fast_encoders_too(
    encode: Callable[[Any], str], value: float
) -> None:
    with pytest.raises(ValueError):
        encode({"m": value})


def test_each_test_function_is_wrapped_once_and_every_case_keeps_its_own_result(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_cases="""
        import pytest
        from pytest_insidellms import plugin

        @pytest.mark.parametrize("n", range(3))
        def test_case(n):
            return {"n": float(n)}

        class TestMethods:
            def test_method(self):
                return {"m": 1.0}

        def test_wrappers():
            functions = [f for f in plugin._WRAPPERS
                         if (f.__module__, f.__name__) == ("test_cases", "test_case")]
            assert len(functions) == 1  # three cases, one wrapper
    """)
    result = pytester.runpytest("--track", "local", "--track-dir", "runs", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    metrics = {}
    for path in (pytester.path / "runs").rglob("metrics.json"):
        for point in json.loads(path.read_text()):
            metrics.update(point["metrics"])
    assert {k: v for k, v in metrics.items() if k.endswith(("/n", "/m"))} == {
        "test_case/0/n": 0.0, "test_case/1/n": 1.0, "test_case/2/n": 2.0,
        "TestMethods/test_method/m": 1.0}
