"""What ``log_experiment_result`` logs, computed from any object shaped like an ExperimentResult."""

from __future__ import annotations

import numbers
from collections import Counter
from typing import Any, Final

from ..types import ResultStatus

_SCORE_FIELDS = ("accuracy", "precision", "recall", "f1_score", "mean_latency_ms", "total_tokens",
                 "error_rate")
#: What insideLLMs reads from a result that carries no ``results`` list, in logging order.
_SUMMARY_FIELDS = ("success_rate", "total_count", "success_count", "error_count", "timeout_count",
                   "rate_limited_count", "skipped_count", "duration_seconds")
_STATUS_COUNTS = {
    "success": "success_count",
    "error": "error_count",
    "timeout": "timeout_count",
    "rate_limited": "rate_limited_count",
    "skipped": "skipped_count",
}


def flatten_experiment_result(result: Any, prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(metrics, params)`` for ``result``, every name prefixed with ``prefix`` as given.

    Metrics: success_rate, total_count and one count per status (success, error, timeout,
    rate_limited, skipped), the score fields that are set, numeric ``custom_metrics`` and
    duration_seconds when both timestamps exist. Params: experiment_id, model_name,
    model_provider, model_id, probe_name, probe_category and non-numeric ``custom_metrics``.
    An object with no ``results`` attribute but the summary attributes (``success_rate``,
    ``total_count``, the ``*_count`` ones, ``duration_seconds``), as insideLLMs reads them,
    gives the metrics of those it has. Everything is checked before anything is returned: a
    wrong-typed field raises TypeError naming it.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
    # ``results=None`` is a broken result, not a summary: _statuses names the field.
    metrics = (_counted_metrics(result) if hasattr(result, "results")
               else _summary_metrics(result))
    params: dict[str, Any] = {}

    score = getattr(result, "score", None)
    if score is not None:
        custom = getattr(score, "custom_metrics", None) or {}
        if not isinstance(custom, dict):
            raise TypeError(f"score.custom_metrics must be a dict, got {type(custom).__name__}")
        for name, value in custom.items():
            if _is_number(value):
                # A custom metric never replaces a computed one (success_rate, the counts).
                metrics.setdefault(str(name), float(value))
            elif value is not None:
                params[str(name)] = value
        for name in _SCORE_FIELDS:
            value = getattr(score, name, None)
            if value is None:
                continue
            if not _is_number(value):
                raise TypeError(f"score.{name} must be a number or None, got {value!r}")
            metrics[name] = float(value)

    duration = _duration(result) if "duration_seconds" not in metrics else None
    if duration is not None:
        metrics["duration_seconds"] = duration

    model = getattr(result, "model_info", None)
    category = getattr(result, "probe_category", None)
    for name, value in (
        ("experiment_id", getattr(result, "experiment_id", None)),
        ("model_name", getattr(model, "name", None)),
        ("model_provider", getattr(model, "provider", None)),
        ("model_id", getattr(model, "model_id", None)),
        ("probe_name", getattr(result, "probe_name", None)),
        ("probe_category", getattr(category, "value", category)),
    ):
        if value is not None and value != "":
            params[name] = value

    if not prefix:
        return metrics, params
    return (
        {f"{prefix}{k}": v for k, v in metrics.items()},
        {f"{prefix}{k}": v for k, v in params.items()},
    )


def _counted_metrics(result: Any) -> dict[str, Any]:
    statuses = _statuses(result)
    # A member's _value_ is a plain attribute: its value property costs a call, and so does
    # hashing the member.
    texts = Counter([status._value_ if type(status) is ResultStatus else _status_text(status, i)
                     for i, status in enumerate(statuses)])
    counts = {name: texts.get(text, 0) for text, name in _STATUS_COUNTS.items()}
    total = len(statuses)
    return {
        "success_rate": counts["success_count"] / total if total else 0.0,
        "total_count": float(total),
        **{name: float(n) for name, n in counts.items()},
    }


def _summary_metrics(result: Any) -> dict[str, Any]:
    """The summary attributes ``result`` has, for an object without a ``results`` list."""
    metrics: dict[str, Any] = {}
    for name in _SUMMARY_FIELDS:
        value = getattr(result, name, None)
        if value is None:
            continue
        if not _is_number(value):
            raise TypeError(f"{name} must be a number or None, got {value!r}")
        metrics[name] = float(value)
    if not metrics:
        raise TypeError(
            f"{type(result).__name__} has neither 'results' nor the summary attributes "
            f"({', '.join(_SUMMARY_FIELDS)}); expected an ExperimentResult-like object")
    return metrics


def _statuses(result: Any) -> list[Any]:
    """The status objects of ``result.results`` (each checked by :func:`_status_text`)."""
    results: Any = result.results
    if isinstance(results, (str, bytes)) or not hasattr(results, "__iter__"):
        raise TypeError(f"results must be a list of ProbeResult, got {type(results).__name__}")
    items = results if type(results) is list else list(results)
    try:
        return [item.status for item in items]
    except AttributeError:  # an item without one: named by _status_text
        return [getattr(item, "status", None) for item in items]


def _status_text(status: Any, index: int) -> str:
    value = getattr(status, "value", status)
    if not isinstance(value, str):
        raise TypeError(f"results[{index}].status must be a ResultStatus, got {status!r}")
    return value.lower()


def _duration(result: Any) -> float | None:
    started = getattr(result, "started_at", None)
    completed = getattr(result, "completed_at", None)
    if started is None or completed is None:
        return None
    try:
        return float((completed - started).total_seconds())
    except (TypeError, AttributeError):
        raise TypeError(
            f"started_at/completed_at must be datetimes, got {started!r} and {completed!r}"
        ) from None


def _is_number(value: Any) -> bool:
    if type(value) in _EXACT_NUMBERS:
        return True  # numbers.Real is an ABC: its isinstance costs three calls
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_EXACT_NUMBERS: Final = frozenset({float, int})
