"""summary.json from records alone, so that merged shards recompute every figure.

Definitions (all counts are of records unless said otherwise):

- an experiment is a module's ``@pytest.mark.experiment`` name (or the probe of a result a
  plain test returned); a module's plain tests form one group whose experiment is null;
- ``accuracy`` = successes / records that ran (status not ``skipped``), with a Wilson 95%
  interval; ``success_rate`` = successes / all records (insideLLMs' own definition);
  ``errors`` = records that ran and did not succeed;
- the session's ``pass_rate`` is over pytest cases (node id and trial), not records: passed
  (xpassed included) / cases that ran (neither skipped nor xfailed), as FinishedCase counts;
- trials: the attempts of one case are its records sharing node id and result index; a case
  with 0 < passes < attempts is flaky; pass@k and pass^k are averaged over the cases, for k
  up to the fewest attempts any case had. Skipped attempts are not attempts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..cases import OUTCOMES
from ..stats import pass_at_k, pass_hat_k, wilson_interval
from .build import SCHEMA_VERSION, STATUSES, natural_key
from .canonical import TIME_BASE, base_time, iso, run_times

CONFIDENCE: Final = 0.95
#: The k reported beside the largest one the attempts allow.
_KS: Final = (1, 2, 3, 5, 10, 20, 50, 100)

Record = Mapping[str, Any]


def build_summary(records: Sequence[Record]) -> dict[str, Any]:
    run_ids = sorted({str(r["run_id"]) for r in records})
    run_id = run_ids[0] if run_ids else None
    generated = run_times(base_time(run_id), len(records))[1] if run_id else iso(TIME_BASE)
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        custom = record["custom"]
        groups.setdefault((custom["module"], custom["experiment"] or ""), []).append(record)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated,
        "config": {"derived_from_records": True, "run_id": run_id,
                   "records_file": "records.jsonl"},
        "summary": {
            "session": session_stats(records),
            "experiments": [experiment_stats(groups[key]) for key in sorted(groups)],
        },
    }


def session_stats(records: Sequence[Record]) -> dict[str, Any]:
    outcomes: dict[str, int] = {outcome: 0 for outcome in OUTCOMES}
    for outcome in _case_outcomes(records).values():
        outcomes[outcome] += 1
    ran = sum(outcomes.values()) - outcomes["skipped"] - outcomes["xfailed"]
    passed = outcomes["passed"] + outcomes["xpassed"]
    return {
        "records": len(records),
        "cases": sum(outcomes.values()),
        "outcomes": outcomes,
        "statuses": _statuses(records),
        "ran": ran,
        "passed": passed,
        "pass_rate": passed / ran if ran else None,
        "pass_rate_ci": _interval(passed, ran),
    }


def _case_outcomes(records: Sequence[Record]) -> dict[tuple[str, int], str]:
    """One outcome per pytest case, however many records (results) it gave."""
    return {(r["custom"]["nodeid"], r["custom"]["trial"]): r["custom"]["outcome"]
            for r in records}


def experiment_stats(records: Sequence[Record]) -> dict[str, Any]:
    custom = records[0]["custom"]
    counted = status_stats(custom["module"], custom["experiment"], _statuses(records))
    return {
        "module": counted.pop("module"),
        "experiment": counted.pop("experiment"),
        "models": sorted({r["model"]["model_id"] for r in records}),
        "probes": sorted({r["probe"]["probe_id"] for r in records}),
        **counted,
        "scores": _score_means([r["scores"] for r in records]),
        "result_scores": _score_means(_result_scores(records)),
        "trials": trial_stats(records),
    }


def status_stats(module: str, experiment: str | None,
                 statuses: Mapping[str, int]) -> dict[str, Any]:
    """An experiment's figures that its records' statuses alone give."""
    cases = sum(statuses.values())
    ran = cases - statuses.get("skipped", 0)
    passes = statuses.get("success", 0)
    return {
        "module": module,
        "experiment": experiment,
        "cases": cases,
        "ran": ran,
        "passes": passes,
        "errors": ran - passes,
        "skipped": statuses.get("skipped", 0),
        "statuses": {status: statuses.get(status, 0) for status in STATUSES},
        "accuracy": passes / ran if ran else None,
        "accuracy_ci": _interval(passes, ran),
        "success_rate": passes / cases if cases else 0.0,
    }


class StatusCounts:
    """Statuses per experiment, counted as cases finish: the scores table of a session that
    writes no run files, at a fraction of the cost of its records."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], tuple[str | None, dict[str, int]]] = {}

    def add(self, module: str, experiment: str | None, status: str) -> None:
        self.add_groups(module, [(experiment, status)])

    def add_groups(self, module: str, groups: list[tuple[str | None, str]]) -> None:
        """Count one case's ``(experiment, status)`` pairs (its records') in."""
        for (experiment, status), n in Counter(groups).items():  # a case has few distinct
            key = (module, experiment or "")
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = (experiment, {})
            counts = group[1]
            counts[status] = counts.get(status, 0) + n

    def summary(self) -> dict[str, Any]:
        """The part of summary.json the table reads: its experiments, in summary order."""
        return {"summary": {"experiments": [
            status_stats(key[0], *self._groups[key]) for key in sorted(self._groups)]}}


def _statuses(records: Sequence[Record]) -> dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for record in records:
        counts[record["status"]] += 1
    return counts


def _interval(successes: int, n: int) -> dict[str, float]:
    lower, upper = wilson_interval(successes, n, CONFIDENCE)
    return {"lower": lower, "upper": upper, "confidence": CONFIDENCE}


def _score_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    values: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault(name, []).append(float(value))
    # fsum: the mean does not depend on the order records were summed in.
    return {name: {"mean": math.fsum(v) / len(v), "n": len(v)}
            for name, v in sorted(values.items())}


def _result_scores(records: Sequence[Record]) -> list[Mapping[str, Any]]:
    """Each returned result's ProbeScore once (every record of the result carries it)."""
    seen: dict[tuple[str, int], Mapping[str, Any]] = {}
    for record in records:
        score = record["custom"].get("result_score")
        if isinstance(score, Mapping):
            flat = {k: v for k, v in score.items() if k != "custom_metrics"}
            extra = score.get("custom_metrics")
            if isinstance(extra, Mapping):
                flat.update((f"custom_metrics.{k}", v) for k, v in extra.items())
            seen.setdefault((record["custom"]["nodeid"], record["custom"]["trial"]), flat)
    return [seen[key] for key in sorted(seen)]


def trial_stats(records: Sequence[Record]) -> dict[str, Any] | None:
    """pass rate, pass@k, pass^k and flaky cases when some case ran more than once."""
    attempts: dict[str, list[bool]] = {}
    for record in records:
        if record["status"] == "skipped":
            continue
        custom = record["custom"]
        case = custom["nodeid"] if custom.get("result_index") is None \
            else f"{custom['nodeid']}#result{custom['result_index']}"
        attempts.setdefault(case, []).append(record["status"] == "success")
    if not attempts or max(len(a) for a in attempts.values()) < 2:
        return None
    names = sorted(attempts, key=natural_key)
    counts = [(len(attempts[name]), sum(attempts[name])) for name in names]
    fewest = min(n for n, _ in counts)
    total = sum(n for n, _ in counts)
    by_k = [{"k": k,
             "pass_at_k": math.fsum(pass_at_k(n, c, k) for n, c in counts) / len(counts),
             "pass_hat_k": math.fsum(pass_hat_k(n, c, k) for n, c in counts) / len(counts)}
            for k in _ks(fewest)]
    return {
        "cases": len(counts),
        "attempts": total,
        "fewest_attempts": fewest,
        "pass_rate": sum(c for _, c in counts) / total,
        "by_k": by_k,
        "flaky": [name for name, (n, c) in zip(names, counts) if 0 < c < n],
        "per_case": [{"case": name, "attempts": n, "passes": c, "pass_rate": c / n,
                      "by_k": _by_k(n, c, _ks(n)), "flaky": 0 < c < n}
                     for name, (n, c) in zip(names, counts)],
    }


def _ks(n: int) -> list[int]:
    return sorted({k for k in _KS if k <= n} | {n})


def _by_k(n: int, c: int, ks: Sequence[int]) -> list[dict[str, Any]]:
    return [{"k": k, "pass_at_k": pass_at_k(n, c, k), "pass_hat_k": pass_hat_k(n, c, k)}
            for k in ks]
