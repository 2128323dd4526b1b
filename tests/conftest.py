from __future__ import annotations

import pytest

#: Written into every pytester project so the inner runs are as strict as ours.
INNER_INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with strict warnings and no tracking settings from our environment."""
    for name in ("INSIDELLMS_TRACK", "INSIDELLMS_TRACK_DIR", "INSIDELLMS_TRACK_PROJECT",
                 "INSIDELLMS_NO_TRACK", "INSIDELLMS_TRACK_STRICT", "MLFLOW_TRACKING_URI",
                 "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INNER_INI)
    return pytester
