"""An async eval: concurrent requests through an async client, one ExperimentResult back.

The plugin captures the result of an ``async def`` test just like a sync one; pytest-asyncio
runs it (``@pytest.mark.asyncio``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from pytest_insidellms import ExperimentResult, ProbeCategory

pytest.importorskip("pytest_asyncio", reason="the async example needs pytest-asyncio")

#: Requests in flight at once, as a rate-limited API would allow.
CONCURRENCY = 4


@pytest.mark.asyncio
async def test_qa_under_concurrent_requests(async_qa_client, qa_dataset, qa_score,
                                            ) -> ExperimentResult:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def ask(item):
        async with limit:
            began = time.perf_counter()
            try:
                answer = await async_qa_client.answer(item.question)
            except ValueError as exc:
                return item.probe(None, (time.perf_counter() - began) * 1000, error=exc)
            return item.probe(answer, (time.perf_counter() - began) * 1000)

    started_at = datetime.now(timezone.utc)
    probes = await asyncio.gather(*(ask(item) for item in qa_dataset))
    score = qa_score(probes)
    score.custom_metrics["concurrency"] = CONCURRENCY
    return ExperimentResult(
        experiment_id="closed-book-qa/async",
        model_info=async_qa_client.model.info(),
        probe_name="closed_book_qa_async",
        probe_category=ProbeCategory.KNOWLEDGE,
        results=list(probes),
        score=score,
        started_at=started_at,
        completed_at=datetime.now(timezone.utc),
    )
