"""``@pytest.mark.experiment``: checked the same way with or without tracking.

A marked test's cases form one experiment per module; :func:`experiment_info` turns the marker
into the :class:`~pytest_insidellms.cases.ExperimentInfo` that travels with each case.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from .cases import ExperimentInfo
from .experiment_tracking.base import validate_params
from .types import ModelInfo, ProbeCategory

KWARGS: Final = frozenset({"name", "prefix", "model_name", "model_provider", "model_id",
                           "probe_name", "probe_category", "params"})
_MODEL_FIELDS: Final = ("model_name", "model_provider", "model_id", "probe_name")


class MarkerError(ValueError):
    """A malformed experiment marker: errors the test that carries it, with a plain message
    (no traceback into the plugin)."""


def check(marker: pytest.Mark) -> dict[str, Any]:
    """The marker's fields, validated; raises MarkerError naming what is wrong.

    ``params`` are coerced exactly as ``log_params`` coerces them (a Path, an enum or a numpy
    scalar becomes plain JSON), so they can travel to an xdist controller.
    """
    unknown = set(marker.kwargs) - KWARGS
    if marker.args or unknown:
        raise MarkerError(
            f"@pytest.mark.experiment takes only keyword arguments {sorted(KWARGS)}; "
            f"got {', '.join(sorted(unknown)) or 'positional arguments'}")
    fields: dict[str, Any] = {k: str(marker.kwargs[k]) for k in _MODEL_FIELDS
              if marker.kwargs.get(k) is not None}
    category = marker.kwargs.get("probe_category")
    if category is not None:
        value = getattr(category, "value", category)
        valid = [c.value for c in ProbeCategory]
        if value not in valid:
            raise MarkerError(f"@pytest.mark.experiment(probe_category={category!r}): "
                              f"expected one of {', '.join(valid)}")
        fields["probe_category"] = value
    params = marker.kwargs.get("params")
    if params is not None:
        if not isinstance(params, dict):
            raise MarkerError(f"@pytest.mark.experiment(params=...) must be a dict, got {params!r}")
        try:
            fields["params"] = validate_params(params)
        except (TypeError, ValueError) as exc:
            raise MarkerError(f"@pytest.mark.experiment(params=...): {exc}") from None
    return fields


def experiment_name(item: pytest.Item, marker: pytest.Mark) -> str:
    name = marker.kwargs.get("name")
    if name:
        return str(name)
    return str(getattr(item, "originalname", item.name))


def experiment_info(item: pytest.Item, marker: pytest.Mark, fields: dict[str, Any],
                    cases: int) -> ExperimentInfo:
    """``fields`` as :func:`check` returned them."""
    name = experiment_name(item, marker)
    return ExperimentInfo(name=name, prefix=marker.kwargs.get("prefix") or f"{name}/",
                          cases=cases, **fields)


def fill_metadata(result: Any, fields: dict[str, Any]) -> None:
    """The marker fills what a returned result leaves empty; it never overwrites."""
    model = getattr(result, "model_info", None)
    if isinstance(model, ModelInfo):
        for attr, key in (("name", "model_name"), ("provider", "model_provider"),
                          ("model_id", "model_id")):
            if not getattr(model, attr) and key in fields:
                setattr(model, attr, fields[key])
    if not getattr(result, "probe_name", None) and "probe_name" in fields:
        result.probe_name = fields["probe_name"]
    if getattr(result, "probe_category", None) is None and "probe_category" in fields:
        result.probe_category = ProbeCategory(fields["probe_category"])
