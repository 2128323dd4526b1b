"""pytest-insidellms: turn an LLM eval suite into tracked experiment runs.

The tracker library lives in :mod:`pytest_insidellms.experiment_tracking` (no pytest needed);
the pytest plugin in :mod:`pytest_insidellms.plugin`. pytest imports this package in every
run on a machine where the plugin is installed, so its names are loaded when first used:
``import pytest_insidellms`` costs almost nothing, and imports neither pytest nor any SDK.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from .experiment_tracking import (
        ExperimentTracker,
        LocalFileTracker,
        MLflowTracker,
        MultiTracker,
        TensorBoardTracker,
        TrackingConfig,
        TrackingError,
        TrackingWarning,
        WandBTracker,
        auto_track,
        create_tracker,
    )
    from .fixture import TrackerFixture
    from .plugin import InsideLLMsTrackingWarning
    from .types import (
        ExperimentResult,
        ModelInfo,
        ProbeCategory,
        ProbeExperimentResult,
        ProbeResult,
        ProbeScore,
        ResultStatus,
    )

__version__ = "0.1.0"

__all__ = [
    "ExperimentResult",
    "ExperimentTracker",
    "InsideLLMsTrackingWarning",
    "LocalFileTracker",
    "MLflowTracker",
    "ModelInfo",
    "MultiTracker",
    "ProbeCategory",
    "ProbeExperimentResult",
    "ProbeResult",
    "ProbeScore",
    "ResultStatus",
    "TensorBoardTracker",
    "TrackerFixture",
    "TrackingConfig",
    "TrackingError",
    "TrackingWarning",
    "WandBTracker",
    "__version__",
    "auto_track",
    "create_tracker",
]

_HOME = {
    "InsideLLMsTrackingWarning": "plugin",
    "TrackerFixture": "fixture",
    **dict.fromkeys(("ExperimentResult", "ModelInfo", "ProbeCategory", "ProbeExperimentResult",
                     "ProbeResult", "ProbeScore", "ResultStatus"), "types"),
}


def __getattr__(name: str) -> typing.Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = importlib.import_module(f".{_HOME.get(name, 'experiment_tracking')}", __name__)
    value = globals()[name] = getattr(home, name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
