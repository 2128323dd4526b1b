from __future__ import annotations

from importlib.metadata import version

import pytest


def _inner_ini() -> str:
    lines = ["[pytest]", "filterwarnings = error"]
    # The loop-scope option exists from pytest-asyncio 0.24 on (0.23 is what pytest 8.0 gets);
    # newer releases warn when it is missing, older ones when it is present.
    major, minor = (int(part) for part in version("pytest-asyncio").split(".")[:2])
    if (major, minor) >= (0, 24):
        lines.append("asyncio_default_fixture_loop_scope = function")
    return "\n".join(lines) + "\n"


#: Written into every pytester project so the inner runs are as strict as ours.
INNER_INI = _inner_ini()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with strict warnings and no tracking settings from our environment."""
    for name in ("INSIDELLMS_TRACK", "INSIDELLMS_TRACK_DIR", "INSIDELLMS_TRACK_PROJECT",
                 "INSIDELLMS_NO_TRACK", "INSIDELLMS_TRACK_STRICT", "MLFLOW_TRACKING_URI",
                 "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INNER_INI)
    return pytester
