"""``@pytest.mark.experiment``: checked the same way with or without tracking.

A marked test's cases form one experiment per module; :func:`experiment_info` turns the marker
into the :class:`~pytest_insidellms.cases.ExperimentInfo` that travels with each case.

Trials. ``trials=K`` (or ``--track-trials K``) makes each case K test items, through one more
parametrization added after every other one: ``test_x[case-1-trial0]`` ...
``test_x[case-1-trial{K-1}]`` (``test_x[trial0]`` for a test with no other parameters).
Parametrizing keeps pytest building the items (fixtures, async tests, xdist and ``-k`` all
see ordinary items). The replaying process folds the suffix back: the case of
``test_x[case-1-trial2]`` is ``test_x[case-1]`` with ``trial=2`` (:func:`as_attempt`), so trial
0 pairs with a session that ran each case once.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final

import pytest

from .cases import ExperimentInfo, FinishedCase
from .experiment_tracking.base import validate_params
from .options import MAX_TRIALS, trial_count
from .types import ModelInfo, ProbeCategory

KWARGS: Final = frozenset({"name", "prefix", "model_name", "model_provider", "model_id",
                           "probe_name", "probe_category", "params", "trials"})
#: The parameter the trial expansion adds (never a fixture a test can ask for).
TRIAL_PARAM: Final = "insidellms_trial"
_TRIAL_SUFFIX: Final = re.compile(r"(?:\[trial(?P<alone>[0-9]+)|-trial(?P<after>[0-9]+))\]$")
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
    trials = marker.kwargs.get("trials")
    if trials is not None and trial_count(trials) is None:
        raise MarkerError(f"@pytest.mark.experiment(trials={trials!r}): expected a whole "
                          f"number from 1 to {MAX_TRIALS}")
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
                    cases: int, trials: int = 1) -> ExperimentInfo:
    """``fields`` as :func:`check` returned them."""
    name = experiment_name(item, marker)
    return ExperimentInfo(name=name, prefix=marker.kwargs.get("prefix") or f"{name}/",
                          cases=cases, trials=trials, **fields)


# -- trials -------------------------------------------------------------------------------------


def trials_of(marker: pytest.Mark, default: int) -> int:
    """How many times the marked test's cases run: the marker's ``trials``, else ``default``
    (``--track-trials``). A bad ``trials`` counts as 1 here: :func:`check` fails the test."""
    if "trials" not in marker.kwargs:
        return default
    return trial_count(marker.kwargs["trials"]) or 1


def expand_trials(metafunc: pytest.Metafunc, trials: int) -> None:
    """Parametrize ``metafunc`` with the trial number, ids ``trial0`` ... (the last
    parametrization, so the id ends the node id's brackets)."""
    # A parameter must name something the test requests; the trial is requested by no one.
    metafunc.fixturenames.append(TRIAL_PARAM)
    metafunc.parametrize(TRIAL_PARAM, range(trials), ids=[f"trial{n}" for n in range(trials)])


def expanded_trial(item: pytest.Item) -> int | None:
    """The trial an item of :func:`expand_trials` is, None for an item it did not make."""
    callspec = getattr(item, "callspec", None)
    trial = getattr(callspec, "params", {}).get(TRIAL_PARAM)
    return trial if isinstance(trial, int) else None


def split_trial(nodeid: str) -> tuple[str, int | None]:
    """``x[case-1-trial2]`` -> (``x[case-1]``, 2); ``x[trial0]`` -> (``x``, 0); a node id
    without the suffix -> (itself, None)."""
    match = _TRIAL_SUFFIX.search(nodeid)
    if match is None:
        return nodeid, None
    alone = match.group("alone")
    head = nodeid[:match.start()]
    return (head, int(alone)) if alone is not None else (head + "]", int(match.group("after")))


def as_attempt(case: FinishedCase) -> FinishedCase:
    """A case of a test that runs in trials, under its case's node id with ``trial`` set."""
    if case.experiment is None or case.experiment.trials < 2:
        return case
    nodeid, trial = split_trial(case.nodeid)
    if trial is None:
        return case
    return dataclasses.replace(case, nodeid=nodeid, trial=trial)


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
