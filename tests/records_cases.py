"""Hand-made FinishedCase objects of every kind, shared by the records tests."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_insidellms.cases import ExperimentInfo, FinishedCase, LoggedResult, Outcome
from pytest_insidellms.records import RecordsSession
from pytest_insidellms.types import (
    ExperimentResult,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)

QA = "evals/test_qa.py"
BATCH = "evals/test_batch.py"
UTIL = "tests/test_util.py"

QA_INFO = ExperimentInfo(name="qa_accuracy", prefix="qa_accuracy/", model_name="GPT-4",
                         model_provider="openai", model_id="gpt-4-0613",
                         probe_category="factuality", params={"temperature": 0.0}, cases=4)


def qa_case(case: str, outcome: Outcome, *, error_type: str | None = None,
            error: str | None = None, trial: int = 0,
            info: ExperimentInfo = QA_INFO) -> FinishedCase:
    return FinishedCase(f"{QA}::test_answer[{case}]", QA, outcome, error_type=error_type,
                        error=error, latency_ms=812.345, started=1_700_000_000.0 + trial,
                        stopped=1_700_000_000.5 + trial, experiment=info, trial=trial)


def batch_result() -> ExperimentResult:
    return ExperimentResult(
        experiment_id="uuid-that-changes-every-run",
        model_info=ModelInfo(name="Claude", provider="anthropic", model_id="claude-3"),
        probe_name="arithmetic",
        probe_category=ProbeCategory.LOGIC,
        results=[
            ProbeResult(input={"q": "2+2"}, output="4", latency_ms=31.0,
                        metadata={"score": 1.0}),
            ProbeResult(input={"q": "3*3"}, output={"answer": 6, "steps": ["3+3"]},
                        metadata={"scores": {"exact": 0.0, "judge": 0.25}}),
            ProbeResult(input={"q": "10/0"}, status=ResultStatus.TIMEOUT, error="timed out",
                        metadata={"error_type": "TimeoutError"}),
        ],
        score=ProbeScore(accuracy=0.5, error_rate=1 / 3, mean_latency_ms=31.0),
    )


def batch_case() -> FinishedCase:
    return FinishedCase(f"{BATCH}::test_batch", BATCH, "passed", latency_ms=99.0,
                        results=(LoggedResult(batch_result(), "batch/", "returned"),))


def suite() -> list[FinishedCase]:
    """One case of each kind: marker (passed, failed, xfailed, xpassed), returned results,
    plain tests (passed, error in setup, skipped)."""
    return [
        qa_case("q1", "passed"),
        qa_case("q2", "failed", error_type="AssertionError",
                error="E   assert '5' == '4'\n\nevals/test_qa.py:14: AssertionError"),
        qa_case("q3", "xfailed", error_type="AssertionError", error="known to fail"),
        qa_case("q4", "xpassed"),
        batch_case(),
        FinishedCase(f"{UTIL}::test_add", UTIL, "passed", latency_ms=0.1),
        FinishedCase(f"{UTIL}::TestIO::test_open", UTIL, "error", error_type="FileNotFoundError",
                     error="E   FileNotFoundError: fixture could not open data.json"),
        FinishedCase(f"{UTIL}::test_later", UTIL, "skipped", error="Skipped: not today"),
    ]


def session(cases: Sequence[FinishedCase], **overrides: object) -> RecordsSession:
    fields: dict[str, object] = {
        "project": "demo-evals",
        "collected": [c.nodeid for c in cases] + [f"{UTIL}::test_deselected"],
        "datasets": {"qa.jsonl": "sha256:0f1e2d"},
        "library_version": "0.1.0",
    }
    fields.update(overrides)
    return RecordsSession(**fields)  # type: ignore[arg-type]
