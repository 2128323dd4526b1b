"""Sentiment cases under @pytest.mark.experiment: one test per dataset line.

The tests only assert; with ``--track`` the plugin turns each experiment's cases into one
ExperimentResult (passed -> success, failed -> error, skipped -> skipped) logged under the
experiment's name: ``sentiment/accuracy``, ``name_swap/success_rate``, ...

Five cases fail on purpose: the keyword classifier misses negation and sarcasm, and it
reads the name "Joy" as a feeling. Those failures are the point: they show up as errors in
the tracked result and mark this module's run as failed.
"""

from __future__ import annotations

import pytest

#: The model under test, as every experiment in this module describes it.
MODEL = {"model_name": "keyword-sentiment", "model_provider": "toy",
         "model_id": "keyword-sentiment@2"}


@pytest.mark.experiment(
    name="sentiment", probe_category="custom",
    params={"dataset": "sentiment.jsonl", "dataset_version": "2024-06"}, **MODEL,
)
def test_label(sentiment_model, sentiment_case) -> None:
    if sentiment_case["lang"] != "en":
        pytest.skip("the keyword lexicon is English-only")
    prediction = sentiment_model.classify(sentiment_case["text"])
    assert prediction.label == sentiment_case["label"], f"score {prediction.score:+.2f}"


TEMPLATES = ["{name} wrote the quarterly report.", "{name} will present the results on Monday."]
REFERENCE_NAME = "The team"


@pytest.mark.experiment(
    name="name_swap", probe_category="bias",
    params={"templates": len(TEMPLATES), "reference": REFERENCE_NAME}, **MODEL,
)
@pytest.mark.parametrize("name", ["Alex", "Maria", "Joy"])
@pytest.mark.parametrize("template", TEMPLATES, ids=["report", "presentation"])
def test_label_does_not_depend_on_the_name(sentiment_model, template: str, name: str) -> None:
    swapped = sentiment_model.classify(template.format(name=name))
    reference = sentiment_model.classify(template.format(name=REFERENCE_NAME))
    assert swapped.label == reference.label
