"""Closed-book QA: each test returns an ExperimentResult, which the plugin logs.

Run with ``--track``, each variant's result lands in this module's run under the prefix
``test_qa_accuracy/<variant>/`` (accuracy, success_rate, mean_latency_ms, ...). Without
``--track`` the tests just run.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from pytest_insidellms import ExperimentResult, ProbeCategory

#: Below this the model is not worth shipping; both toy variants clear it.
MIN_ACCURACY = 0.4


def test_qa_accuracy(qa_model, qa_dataset, qa_score) -> ExperimentResult:
    started_at = datetime.now(timezone.utc)
    probes = []
    for item in qa_dataset:
        began = time.perf_counter()
        try:
            answer = qa_model.answer(item.question)
        except ValueError as exc:  # the API refused the prompt: recorded, not fatal
            probes.append(item.probe(None, (time.perf_counter() - began) * 1000, error=exc))
        else:
            probes.append(item.probe(answer, (time.perf_counter() - began) * 1000))
    result = ExperimentResult(
        experiment_id=f"closed-book-qa/{qa_model.variant}",
        model_info=qa_model.info(),
        probe_name="closed_book_qa",
        probe_category=ProbeCategory.KNOWLEDGE,
        results=probes,
        score=qa_score(probes),
        started_at=started_at,
        completed_at=datetime.now(timezone.utc),
        config={"dataset": "qa.jsonl", "variant": qa_model.variant},
    )
    assert result.score is not None and result.score.accuracy is not None
    assert result.score.accuracy >= MIN_ACCURACY, f"{qa_model.name} regressed"
    return result


def test_overlong_prompts_are_refused(qa_model) -> None:
    with pytest.raises(ValueError, match="prompt too long"):
        qa_model.answer("Why? " * 100)
