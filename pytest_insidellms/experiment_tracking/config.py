"""Settings shared by every backend."""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrackingConfig:
    """Run metadata and switches that every tracker reads.

    ``log_artifacts=False`` turns every ``log_artifact`` call into a no-op (after validation).
    ``log_code`` and ``auto_log_metrics`` are for the pytest plugin: store each test module's
    source in its module run, and log the outcome metrics (on by default).
    ``redact_patterns`` adds regular expressions to the built-in secret patterns; matching
    param, tag and notes text is replaced before it reaches any backend.
    ``backends`` holds per-backend keyword arguments for ``create_tracker`` (the pytest plugin
    reads them), e.g. ``{"mlflow": {"tracking_uri": "http://127.0.0.1:5000"}}``.
    """

    project: str = "insideLLMs"
    experiment_name: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    log_artifacts: bool = True
    log_code: bool = False
    auto_log_metrics: bool = True
    redact_patterns: list[str] = field(default_factory=list)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> TrackingConfig:
        """Build a config from a mapping; unknown keys and wrong types raise ValueError/TypeError
        naming ``source`` and the key. Every registered backend (see
        :mod:`~pytest_insidellms.experiment_tracking.registry`) may have a section, at the top
        level or under ``backends``, whose keys are checked against its constructor; sections
        under ``backends`` for other names (a hook's backend) are kept unchecked."""
        from .registry import backend_names, find_backend

        if not isinstance(data, Mapping):
            raise TypeError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        backends: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key == "backends":
                if not isinstance(value, Mapping):
                    raise TypeError(f"{source}: 'backends' must be a mapping of backend name to settings")
                for name, section in value.items():
                    backends[str(name)] = _section(source, str(name), section)
            elif key in fields:
                values[key] = _checked(source, key, value)
            elif isinstance(key, str) and find_backend(key) is not None:
                backends[key] = _section(source, key, value)
            else:
                valid = sorted([*fields, *backend_names()])
                raise ValueError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        return cls(**values, backends=backends)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrackingConfig:
        """Load a config from a YAML file (see :meth:`from_dict` for the accepted keys)."""
        import yaml

        source = os.fspath(path)
        with open(path, encoding="utf-8") as handle:
            try:
                data = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise ValueError(f"{source}: not valid YAML: {exc}") from None
        return cls.from_dict({} if data is None else data, source=source)


_STRING_FIELDS = ("project", "experiment_name", "notes")
_BOOL_FIELDS = ("log_artifacts", "log_code", "auto_log_metrics")
_LIST_FIELDS = ("tags", "redact_patterns")


def _checked(source: str, key: str, value: Any) -> Any:
    if key in _STRING_FIELDS:
        if value is None and key != "project":
            return None
        if not isinstance(value, str) or (key == "project" and not value.strip()):
            raise TypeError(f"{source}: {key!r} must be a non-empty string, got {value!r}")
        return value
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise TypeError(f"{source}: {key!r} must be true or false, got {value!r}")
        return value
    if key in _LIST_FIELDS:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{source}: {key!r} must be a list of strings, got {value!r}")
        if key == "redact_patterns":
            for pattern in value:
                _check_pattern(source, pattern)
        return list(value)
    raise ValueError(f"{source}: {key!r} cannot be set here")


def _check_pattern(source: str, pattern: str) -> None:
    # A bad pattern would fail every redaction, and with it every param of the session. It
    # must compile alone and the way redaction joins the patterns (no global flags inside).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # 3.10: a misplaced global flag
            re.compile(pattern)
            re.compile(f"(?:{pattern})")
    except (re.error, DeprecationWarning) as exc:
        raise ValueError(
            f"{source}: 'redact_patterns': {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def _section(source: str, name: str, value: Any) -> dict[str, Any]:
    from .registry import find_backend

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{source}: backend section {name!r} must be a mapping, got {value!r}")
    spec = find_backend(name)
    if spec is None:
        return {str(k): v for k, v in value.items()}
    return spec.check_settings(value, source)
