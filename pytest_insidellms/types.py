"""Result types, field-for-field compatible with insideLLMs' ``insideLLMs.types``.

Plain dataclasses and enums. ``to_dict()`` gives plain JSON data and ``from_dict()`` reads it
back: datetimes travel as ISO strings, enums as their values, and any other value degrades to
a JSON-safe form (see :func:`to_jsonable`) instead of failing.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Final

__all__ = [
    "JSON_SCALARS",
    "ExperimentResult",
    "ModelInfo",
    "ProbeCategory",
    "ProbeExperimentResult",
    "ProbeResult",
    "ProbeScore",
    "ResultStatus",
    "to_jsonable",
]


class ProbeCategory(enum.Enum):
    LOGIC = "logic"
    FACTUALITY = "factuality"
    BIAS = "bias"
    ATTACK = "attack"
    SAFETY = "safety"
    REASONING = "reasoning"
    KNOWLEDGE = "knowledge"
    CUSTOM = "custom"

    @classmethod
    def _missing_(cls, value: object) -> ProbeCategory:
        raise ValueError(f"{value!r} is not a probe category; expected one of "
                         f"{', '.join(c.value for c in cls)}")


class ResultStatus(enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    SKIPPED = "skipped"

    @classmethod
    def _missing_(cls, value: object) -> ResultStatus:
        raise ValueError(f"{value!r} is not a result status; expected one of "
                         f"{', '.join(s.value for s in cls)}")


@dataclass
class ModelInfo:
    name: str
    provider: str
    model_id: str
    max_tokens: int | None = None
    supports_streaming: bool = False
    supports_chat: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        _require_keys(cls, data, ("name", "provider", "model_id"))
        return cls(
            name=data["name"],
            provider=data["provider"],
            model_id=data["model_id"],
            max_tokens=data.get("max_tokens"),
            supports_streaming=bool(data.get("supports_streaming", False)),
            supports_chat=bool(data.get("supports_chat", True)),
            extra=dict(data.get("extra") or {}),
        )


@dataclass
class ProbeResult:
    input: Any
    output: Any = None
    status: ResultStatus = ResultStatus.SUCCESS
    error: str | None = None
    latency_ms: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeResult:
        _require_keys(cls, data, ("input",))
        return cls(
            input=data["input"],
            output=data.get("output"),
            status=ResultStatus(data.get("status", "success")),
            error=data.get("error"),
            latency_ms=data.get("latency_ms"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass
class ProbeScore:
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1_score: float | None = None
    mean_latency_ms: float | None = None
    total_tokens: int | None = None
    error_rate: float = 0.0
    custom_metrics: dict[str, float | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeScore:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ExperimentResult:
    experiment_id: str
    model_info: ModelInfo
    probe_name: str
    probe_category: ProbeCategory
    results: list[ProbeResult]
    score: ProbeScore | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def success_count(self) -> int:
        return _count(self.results, ResultStatus.SUCCESS)

    @property
    def error_count(self) -> int:
        """ERROR results only, as in insideLLMs (timeouts are counted separately)."""
        return _count(self.results, ResultStatus.ERROR)

    @property
    def total_count(self) -> int:
        return len(self.results)

    @property
    def success_rate(self) -> float:
        return self.success_count / self.total_count if self.results else 0.0

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return _dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentResult:
        _require_keys(
            cls, data, ("experiment_id", "model_info", "probe_name", "probe_category", "results")
        )
        score = data.get("score")
        return cls(
            experiment_id=data["experiment_id"],
            model_info=ModelInfo.from_dict(data["model_info"]),
            probe_name=data["probe_name"],
            probe_category=ProbeCategory(data["probe_category"]),
            results=[ProbeResult.from_dict(r) for r in data["results"]],
            score=None if score is None else ProbeScore.from_dict(score),
            started_at=_parse_datetime(data.get("started_at")),
            completed_at=_parse_datetime(data.get("completed_at")),
            config=dict(data.get("config") or {}),
            metadata=dict(data.get("metadata") or {}),
        )


ProbeExperimentResult = ExperimentResult


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON data (dict, list, str, int, float, bool or None).

    Enums become their value, datetimes ISO strings, dataclasses dicts, sets sorted lists,
    bytes are decoded (undecodable bytes replaced), numpy-style scalars Python numbers and
    anything else ``str(value)`` (or ``repr``, or ``<TypeName>`` if those fail too). A
    container that contains itself is cut at the repeat with ``"<cycle>"``. Floats stay floats,
    NaN and infinities included; the writer decides how to spell them.
    """
    # The common cases first, without the cycle bookkeeping of the general walk.
    kind = type(value)
    if kind in JSON_SCALARS:
        return value
    if kind is dict and not value:
        return {}
    if isinstance(value, enum.Enum) and type(value.value) in JSON_SCALARS:
        return value.value
    return _jsonable(value, set())


#: Exact types that are already plain JSON: to_jsonable returns them as they are, and the
#: journal and redaction take dicts of them on their fast paths (subclasses such as enums
#: take the long way).
JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any, path: set[int]) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return float(value)  # numpy.float64 is a float subclass; hand out the plain type
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, path)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    is_container = (
        (dataclasses.is_dataclass(value) and not isinstance(value, type))
        or isinstance(value, (Mapping, list, tuple, set, frozenset))
    )
    if is_container:
        if id(value) in path:
            return "<cycle>"
        path.add(id(value))
        try:
            return _container(value, path)
        finally:
            path.discard(id(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, PurePath):
        return str(value)
    number = _as_number(value)
    if number is not None:
        return number
    return _text(value)


def _container(value: Any, path: set[int]) -> Any:
    if isinstance(value, Mapping):
        return {_text(k) if not isinstance(k, str) else k: _jsonable(v, path)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, path) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v, path) for v in value]
        return sorted(items, key=lambda v: (type(v).__name__, str(v)))
    return {f.name: _jsonable(getattr(value, f.name), path) for f in dataclasses.fields(value)}


def _text(value: Any) -> str:
    """``str(value)``, falling back to ``repr`` and then the type name: never raises."""
    for spell in (str, repr):
        try:
            return spell(value)
        except Exception:
            continue
    return f"<{type(value).__name__}>"


def _as_number(value: Any) -> int | float | None:
    """numpy and other scalar types that behave like numbers, as Python numbers."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        try:
            plain = item()
        except Exception:
            return None
        if isinstance(plain, bool):
            return None
        if isinstance(plain, (int, float)):
            return plain
    return None


def _dataclass_to_dict(obj: Any) -> dict[str, Any]:
    data = to_jsonable(obj)
    assert isinstance(data, dict)
    return data


def _count(results: list[ProbeResult], status: ResultStatus) -> int:
    return sum(1 for r in results if r.status == status)


def _require_keys(cls: type, data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{cls.__name__}.from_dict: missing field(s) {', '.join(missing)}")


def _parse_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
