"""Seeded fake models answering a fixed eval set, as records, for the gate's tests."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_insidellms.cases import ExperimentInfo, FinishedCase, LoggedResult, Outcome
from pytest_insidellms.records import RecordsSession, build_records
from pytest_insidellms.types import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

QA = "evals/test_qa.py"
MATH = "evals/test_math.py"
Records = list[dict[str, Any]]


def model_answers(n: int, accuracy: float, seed: int) -> list[bool]:
    """Which of n questions a model of this accuracy gets right (the same every run)."""
    rng = random.Random(seed)
    return [rng.random() < accuracy for _ in range(n)]


def flipped(answers: Sequence[bool], regressions: int, improvements: int = 0) -> list[bool]:
    """The answers with the first ``regressions`` right ones now wrong and the first
    ``improvements`` wrong ones now right."""
    changed = list(answers)
    right = [i for i, ok in enumerate(answers) if ok][:regressions]
    wrong = [i for i, ok in enumerate(answers) if not ok][:improvements]
    assert len(right) == regressions and len(wrong) == improvements
    for i in right + wrong:
        changed[i] = not changed[i]
    return changed


def case_id(index: int) -> str:
    return f"q{index}"


def experiment_cases(outcomes: Iterable[Outcome | bool], *, experiment: str = "qa",
                     module: str = QA, ids: Sequence[str] | None = None, trial: int = 0,
                     trials: int = 1) -> list[FinishedCase]:
    info = ExperimentInfo(name=experiment, prefix=f"{experiment}/", model_name="fake",
                          trials=trials)
    cases = []
    for index, outcome in enumerate(outcomes):
        word: Outcome = ("passed" if outcome else "failed") if isinstance(outcome, bool) \
            else outcome
        name = ids[index] if ids is not None else case_id(index)
        cases.append(FinishedCase(f"{module}::test_answer[{name}]", module, word,
                                  experiment=info, trial=trial))
    return cases


def scored_cases(scores: Sequence[dict[str, float]], *, experiment: str = "judge",
                 module: str = MATH) -> list[FinishedCase]:
    """Tests that each return one result carrying ``scores`` (keys: ``...#result0``)."""
    info = ExperimentInfo(name=experiment, prefix=f"{experiment}/")
    cases = []
    for index, named in enumerate(scores):
        result = ExperimentResult(experiment_id="x", model_info=ModelInfo("fake", "test", "fake-1"),
                                  probe_name=experiment, probe_category=ProbeCategory.CUSTOM,
                                  results=[ProbeResult(input=index, output="a",
                                                       metadata={"scores": dict(named)})])
        cases.append(FinishedCase(f"{module}::test_judged[{case_id(index)}]", module,
                                  "passed", experiment=info,
                                  results=(LoggedResult(result, f"{experiment}/",
                                                        "returned"),)))
    return cases


def records_of(cases: Sequence[FinishedCase]) -> Records:
    return build_records(RecordsSession("gate-tests", [c.nodeid for c in cases]), cases)


def qa_session(answers: Sequence[bool]) -> Records:
    return records_of(experiment_cases(answers))


def score_values(n: int, mean: float, spread: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(mean, spread))) for _ in range(n)]
