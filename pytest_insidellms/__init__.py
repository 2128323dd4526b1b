"""pytest-insidellms: turn an LLM eval suite into tracked experiment runs.

The tracker library lives in :mod:`pytest_insidellms.experiment_tracking` (no pytest needed);
the pytest plugin in :mod:`pytest_insidellms.plugin`. Importing the package imports neither
pytest nor any backend SDK: ``InsideLLMsTrackingWarning`` (a pytest warning class) is loaded
when first asked for.
"""

from __future__ import annotations

import typing

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
from .types import (
    ExperimentResult,
    ModelInfo,
    ProbeCategory,
    ProbeExperimentResult,
    ProbeResult,
    ProbeScore,
    ResultStatus,
)

if typing.TYPE_CHECKING:
    from .plugin import InsideLLMsTrackingWarning

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


def __getattr__(name: str) -> typing.Any:
    if name == "InsideLLMsTrackingWarning":
        from .plugin import InsideLLMsTrackingWarning

        globals()[name] = InsideLLMsTrackingWarning
        return InsideLLMsTrackingWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
