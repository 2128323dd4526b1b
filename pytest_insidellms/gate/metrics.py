"""What the gate measures: a session's records as named metrics, each with its per-case values.

A metric is a point value plus the per-case sample behind it, keyed by a case key, so the
engine can pair two sessions case by case. Two kinds: a :class:`RateSample` (pass/fail per
case) and a :class:`MeanSample` (a number per case). Names and definitions:

- ``<experiment>/accuracy``: records with status ``success`` / records that ran (not
  ``skipped``), keyed by the record's case key;
- ``<experiment>/success_rate``: ``success`` / all records (skipped ones count as not passed);
- ``<experiment>/<score>``: the mean of a numeric ``scores[<score>]`` over the records that
  have it (a score named like a built-in metric is ``scores.<score>``);
- with repeated trials, ``<experiment>/pass@k`` and ``<experiment>/pass^k`` for every k that
  summary.json reports: the mean over cases of each case's pass@k (pass^k), keyed by case (its
  node id, plus ``#result<i>`` for a returned result), not by attempt;
- ``pass_rate``: the session's pytest cases (node id and trial) that passed / that ran.

These equal summary.json's figures. An experiment is named by its marker name (or a returned
result's probe). When two modules use the same name, in either session, both sessions name
those experiments ``<module>::<name>`` (``evals/test_a.py::qa/accuracy``), the way
summary.json keeps them apart: pooling would hide an accidental clash and make the figures
differ from summary.json's. A module's plain tests (no experiment) give no experiment
metrics: ``pass_rate`` and the case counts cover them. A metric is present, with value None,
when its experiment exists but no case of it ran.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union

from ..records.build import case_key
from ..records.summary import trial_stats
from ..stats import pass_at_k, pass_hat_k

__all__ = ["MeanSample", "RateSample", "Sample", "collect_metrics", "experiment_names",
           "flaky_cases", "session_case_key"]

Record = Mapping[str, Any]
BUILT_IN: Final = ("accuracy", "success_rate")
_TRIAL_METRIC: Final = re.compile(r"pass[@^]\d+")


@dataclass(frozen=True)
class RateSample:
    """Pass (True) or fail per case, for the cases that count towards the rate."""

    outcomes: Mapping[str, bool]

    @property
    def value(self) -> float | None:
        return self.successes / len(self.outcomes) if self.outcomes else None

    @property
    def successes(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class MeanSample:
    """A number per case; the metric is their mean."""

    values: Mapping[str, float]

    @property
    def value(self) -> float | None:
        # fsum is exact, so the mean does not depend on the order of the cases.
        return math.fsum(self.values.values()) / len(self.values) if self.values else None


Sample = Union[RateSample, MeanSample]


def experiment_names(*sessions: Sequence[Record] | None) -> dict[tuple[str, str], str]:
    """(module, experiment) -> the name metrics use, one naming for all the sessions given."""
    modules: dict[str, set[str]] = {}
    for records in sessions:
        for record in records or ():
            custom = record["custom"]
            if custom.get("experiment") is not None:
                modules.setdefault(str(custom["experiment"]), set()).add(str(custom["module"]))
    return {(module, name): name if len(found) == 1 else f"{module}::{name}"
            for name, found in modules.items() for module in found}


def collect_metrics(records: Sequence[Record],
                    names: Mapping[tuple[str, str], str]) -> dict[str, Sample]:
    """Every metric of one session, by name (``names`` from :func:`experiment_names`)."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        custom = record["custom"]
        if custom.get("experiment") is not None:
            name = names[(str(custom["module"]), str(custom["experiment"]))]
            groups.setdefault(name, []).append(record)
    metrics: dict[str, Sample] = {"pass_rate": _session_pass_rate(records)}
    for experiment, group in groups.items():
        metrics.update((f"{experiment}/{metric}", sample)
                       for metric, sample in _experiment_metrics(group).items())
    return metrics


def _experiment_metrics(records: Sequence[Record]) -> dict[str, Sample]:
    metrics: dict[str, Sample] = {
        "accuracy": RateSample({case_key(r): r["status"] == "success" for r in records
                                if r["status"] != "skipped"}),
        "success_rate": RateSample({case_key(r): r["status"] == "success" for r in records}),
    }
    scores: dict[str, dict[str, float]] = {}
    for record in records:
        for score, value in (record.get("scores") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scores.setdefault(str(score), {})[case_key(record)] = float(value)
    for score, values in scores.items():
        clash = score in BUILT_IN or _TRIAL_METRIC.fullmatch(score) is not None
        metrics[f"scores.{score}" if clash else score] = MeanSample(values)
    metrics.update(_trial_metrics(records))
    return metrics


def _trial_metrics(records: Sequence[Record]) -> dict[str, Sample]:
    trials = trial_stats(records)
    if trials is None:
        return {}
    metrics: dict[str, Sample] = {}
    for entry in trials["by_k"]:
        k = int(entry["k"])
        # per_case's own k list depends on each case's attempts; recompute at the shared k.
        metrics[f"pass@{k}"] = MeanSample({
            case["case"]: pass_at_k(case["attempts"], case["passes"], k)
            for case in trials["per_case"]})
        metrics[f"pass^{k}"] = MeanSample({
            case["case"]: pass_hat_k(case["attempts"], case["passes"], k)
            for case in trials["per_case"]})
    return metrics


def session_case_key(record: Record) -> str:
    """One pytest case (node id and trial), however many records its results gave."""
    custom = record["custom"]
    trial = int(custom.get("trial") or 0)
    return str(custom["nodeid"]) if trial == 0 else f"{custom['nodeid']}#trial{trial}"


def _session_pass_rate(records: Sequence[Record]) -> RateSample:
    outcomes = {session_case_key(r): str(r["custom"]["outcome"]) for r in records}
    return RateSample({key: outcome in ("passed", "xpassed")
                       for key, outcome in outcomes.items()
                       if outcome not in ("skipped", "xfailed")})


def flaky_cases(records: Sequence[Record]) -> list[str]:
    """Cases with 0 < passes < attempts over their trials, in every group (plain tests too),
    as summary.json lists them per experiment."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        custom = record["custom"]
        groups.setdefault((str(custom["module"]), str(custom.get("experiment") or "")),
                          []).append(record)
    flaky: set[str] = set()
    for group in groups.values():
        trials = trial_stats(group)
        if trials is not None:
            flaky.update(trials["flaky"])
    return sorted(flaky)
