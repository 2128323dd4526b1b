"""pytest-insidellms: turn an LLM eval suite into tracked experiment runs.

The tracker library lives in :mod:`pytest_insidellms.experiment_tracking` (no pytest needed);
the pytest plugin in :mod:`pytest_insidellms.plugin`.
"""

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
    "TrackingConfig",
    "TrackingError",
    "TrackingWarning",
    "WandBTracker",
    "__version__",
    "auto_track",
    "create_tracker",
]
