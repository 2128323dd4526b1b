"""The ``tracker`` fixture: log what a returned result cannot hold.

Here a calibration sweep (a metric per step), the sweep's settings (params), a confusion
matrix (an artifact) and dataset fingerprints on the session run. Without ``--track`` every
call still checks its input and then does nothing.
"""

from __future__ import annotations

import hashlib
import json

#: Candidate widths of the band around 0 that the classifier calls neutral.
BANDS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
LABELS = ("negative", "neutral", "positive")


def test_neutral_band_calibration(sentiment_model, sentiment_dataset, tracker, tmp_path) -> None:
    cases = [c for c in sentiment_dataset if c["lang"] == "en"]
    tracker.log_params({"sweep": "neutral_band", "bands": BANDS, "cases": len(cases),
                        "lexicon_size": sentiment_model.lexicon_size})
    accuracy = {}
    for step, band in enumerate(BANDS):
        hits = sum(sentiment_model.classify(c["text"], neutral_band=band).label == c["label"]
                   for c in cases)
        accuracy[band] = hits / len(cases)
        tracker.log_metrics({"calibration/neutral_band": band,
                             "calibration/accuracy": accuracy[band]}, step=step)
    best = max(BANDS, key=lambda band: accuracy[band])  # the narrowest of equals
    tracker.log_metrics({"calibration/best_band": best,
                         "calibration/best_accuracy": accuracy[best]})

    matrix = {expected: dict.fromkeys(LABELS, 0) for expected in LABELS}
    for case in cases:
        matrix[case["label"]][sentiment_model.classify(case["text"], neutral_band=best).label] += 1
    path = tmp_path / "confusion_matrix.json"
    path.write_text(json.dumps({"neutral_band": best, "rows": "expected",
                                "columns": "predicted", "matrix": matrix}, indent=2))
    tracker.log_artifact(path, type="evaluation")

    # The classifier ships with the band this sweep picks; if the data moves, so must it.
    assert best == sentiment_model.neutral_band


def test_datasets_have_unique_ids(data_dir, tracker) -> None:
    fingerprints = {}
    for path in sorted(data_dir.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        ids = [row["id"] for row in rows if "id" in row]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate ids"
        fingerprints[f"dataset_sha256/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    # On the session run, so every module's results can be traced to the exact data.
    tracker.session.log_params(fingerprints)
