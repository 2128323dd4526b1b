"""Toy models and datasets for the example eval suite.

The "models" are deterministic and rule-based so the suite runs offline, without an API key,
and gives the same numbers on every machine. Swap them for real clients and the tests stay
the same: that is the point of the example.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import ModelInfo, ProbeResult, ProbeScore, ResultStatus

DATA_DIR = Path(__file__).parent / "data"
QA_VARIANTS = ("exact-v1", "overlap-v2")
IDK = "I don't know"


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with open(DATA_DIR / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


# -- closed-book QA -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    answer: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.subject, *self.aliases)


#: Words that point at a relation in a free-form question (overlap-v2 only).
RELATION_WORDS = {
    "capital": ("capital",),
    "currency": ("currency", "money"),
    "chemical symbol": ("symbol",),
    "author": ("author", "wrote", "written"),
}


class PromptTooLong(ValueError):
    """What a real API returns for a prompt over its context window."""


class ToyQAModel:
    """Answers questions from a fact table.

    ``exact-v1`` understands only "What/Who is the <relation> of <subject>?" with the subject's
    primary name. ``overlap-v2`` looks for any known subject (or alias) and relation word in
    the question; when it finds a subject but no relation it answers with the subject's first
    fact, which is how it gets some questions confidently wrong.
    """

    provider = "toy"

    def __init__(self, facts: Iterable[Fact], variant: str, max_prompt_chars: int = 160) -> None:
        if variant not in QA_VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {QA_VARIANTS}")
        self.facts = list(facts)
        self.variant = variant
        self.max_prompt_chars = max_prompt_chars
        self.name = f"toy-qa-{variant}"

    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, provider=self.provider, model_id=f"{self.name}@1",
                         max_tokens=self.max_prompt_chars, extra={"facts": len(self.facts)})

    def answer(self, question: str) -> str:
        if len(question) > self.max_prompt_chars:
            raise PromptTooLong(
                f"prompt too long: {len(question)} characters (limit {self.max_prompt_chars})")
        if self.variant == "exact-v1":
            return self._exact(question)
        return self._overlap(question)

    def _exact(self, question: str) -> str:
        match = re.fullmatch(r"(?:what|who) is the (.+) of (.+)\?", question.strip().lower())
        if match is None:
            return IDK
        relation, subject = match.groups()
        for fact in self.facts:
            if (fact.relation, fact.subject) == (relation, subject):
                return fact.answer
        return IDK

    def _overlap(self, question: str) -> str:
        text = " ".join(words(question))
        candidates = [f for f in self.facts
                      if any(re.search(rf"\b{re.escape(n)}\b", text) for n in f.names)]
        if not candidates:
            return IDK
        asked = set(text.split())
        for fact in candidates:
            if asked.intersection(RELATION_WORDS[fact.relation]):
                return fact.answer
        return candidates[0].answer


class AsyncQAClient:
    """Shaped like a team's async API client; each request yields to the event loop."""

    def __init__(self, model: ToyQAModel, delay_seconds: float = 0.002) -> None:
        self.model = model
        self.delay_seconds = delay_seconds

    async def answer(self, question: str) -> str:
        await asyncio.sleep(self.delay_seconds)
        return self.model.answer(question)


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: tuple[str, ...]

    def accepts(self, answer: str) -> bool:
        return _normalise(answer) in {_normalise(a) for a in self.answers}

    def probe(self, answer: str | None, latency_ms: float,
              error: Exception | None = None) -> ProbeResult:
        """The ProbeResult of asking this item: an error is a failed call, a wrong answer is
        a successful call that scores 0."""
        metadata: dict[str, Any] = {"id": self.id, "expected": self.answers[0]}
        if error is not None:
            return ProbeResult(input=self.question, status=ResultStatus.ERROR,
                               error=f"{type(error).__name__}: {error}", latency_ms=latency_ms,
                               metadata=metadata)
        assert answer is not None
        # "score" is what records (and `insidellms diff`) compare a case by.
        metadata.update(correct=self.accepts(answer), score=float(self.accepts(answer)),
                        abstained=answer == IDK,
                        tokens=len(self.question.split()) + len(answer.split()))
        return ProbeResult(input=self.question, output=answer, latency_ms=latency_ms,
                           metadata=metadata)


def _normalise(text: str) -> str:
    return " ".join(w for w in words(text) if w != "the")


def score_qa(probes: list[ProbeResult]) -> ProbeScore:
    """Accuracy over every item (errors count as wrong), latency, tokens and abstentions."""
    answered = [p for p in probes if p.status is ResultStatus.SUCCESS]
    latencies = [p.latency_ms for p in probes if p.latency_ms is not None]
    return ProbeScore(
        accuracy=sum(bool(p.metadata["correct"]) for p in answered) / len(probes),
        mean_latency_ms=statistics.fmean(latencies) if latencies else None,
        total_tokens=sum(int(p.metadata["tokens"]) for p in answered),
        error_rate=(len(probes) - len(answered)) / len(probes),
        custom_metrics={"abstain_rate": sum(bool(p.metadata["abstained"]) for p in answered)
                        / len(probes)},
    )


# -- sentiment --------------------------------------------------------------------------------

POSITIVE = frozenset({"love", "loved", "excellent", "helpful", "fast", "great", "recommend",
                      "wonderful", "lovely", "good", "happy", "joy"})
NEGATIVE = frozenset({"terrible", "broken", "worst", "refund", "rude", "awful", "slow", "buggy",
                      "disappointing", "crashed", "bad", "hate"})


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


@dataclass
class KeywordSentiment:
    """Counts lexicon words: score = (positive - negative) / matched words, in [-1, 1].

    Scores within ``neutral_band`` of 0 are neutral. 0.4 is what the calibration sweep in
    test_tracker_fixture.py picks. It knows nothing of negation or sarcasm, and it reads
    "Joy" the name as joy the feeling: the suite's failing cases show both.
    """

    neutral_band: float = 0.4
    positive: frozenset[str] = POSITIVE
    negative: frozenset[str] = NEGATIVE
    name: str = "keyword-sentiment"

    @property
    def lexicon_size(self) -> int:
        return len(self.positive) + len(self.negative)

    def score(self, text: str) -> float:
        tokens = words(text)
        pos = sum(t in self.positive for t in tokens)
        neg = sum(t in self.negative for t in tokens)
        return (pos - neg) / max(1, pos + neg)

    def classify(self, text: str, neutral_band: float | None = None) -> Prediction:
        band = self.neutral_band if neutral_band is None else neutral_band
        score = self.score(text)
        if abs(score) <= band:
            return Prediction("neutral", score)
        return Prediction("positive" if score > 0 else "negative", score)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def knowledge_base() -> list[Fact]:
    return [Fact(r["subject"], r["relation"], r["answer"], tuple(r.get("aliases", ())))
            for r in load_jsonl("knowledge.jsonl")]


@pytest.fixture(scope="session")
def qa_dataset() -> list[QAItem]:
    return [QAItem(r["id"], r["question"], tuple(r["answers"])) for r in load_jsonl("qa.jsonl")]


@pytest.fixture(params=QA_VARIANTS)
def qa_model(request: pytest.FixtureRequest, knowledge_base: list[Fact]) -> ToyQAModel:
    """Each test that uses it runs once per model variant (ids exact-v1, overlap-v2)."""
    return ToyQAModel(knowledge_base, request.param)


@pytest.fixture
def async_qa_client(knowledge_base: list[Fact]) -> AsyncQAClient:
    return AsyncQAClient(ToyQAModel(knowledge_base, "overlap-v2"))


@pytest.fixture(scope="session")
def qa_score() -> Callable[[list[ProbeResult]], ProbeScore]:
    """How the suite scores QA probes, shared by the sync and the async evals."""
    return score_qa


@pytest.fixture(scope="session")
def sentiment_model() -> KeywordSentiment:
    return KeywordSentiment()


@pytest.fixture(scope="session")
def sentiment_dataset() -> list[dict[str, Any]]:
    return load_jsonl("sentiment.jsonl")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One test case per dataset line, named by the line's id (test_label[pos-01], ...).
    if "sentiment_case" in metafunc.fixturenames:
        cases = load_jsonl("sentiment.jsonl")
        metafunc.parametrize("sentiment_case", cases, ids=[c["id"] for c in cases])
