"""The tracker library: one contract, several backends. Knows nothing of pytest.

Backend SDKs (mlflow, wandb, tensorboardX/torch) are imported only when a tracker of that
backend is constructed, so importing this package is cheap.
"""

from .base import (
    RUN_STATUSES,
    Artifact,
    ExperimentTracker,
    Run,
    RunStatus,
    TrackingError,
    TrackingWarning,
    sanitize_key,
)
from .config import TrackingConfig
from .factory import BACKENDS, auto_track, create_tracker
from .local import LocalFileTracker
from .mlflow import MLflowTracker
from .multi import MultiTracker
from .reference import ReferenceTrackerAdapter
from .registry import ENTRY_POINT_GROUP, BackendLoadError, BackendSpec, backend, backend_names
from .tensorboard import TensorBoardTracker
from .wandb import WandBTracker

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "RUN_STATUSES",
    "Artifact",
    "BackendLoadError",
    "BackendSpec",
    "ExperimentTracker",
    "LocalFileTracker",
    "MLflowTracker",
    "MultiTracker",
    "ReferenceTrackerAdapter",
    "Run",
    "RunStatus",
    "TensorBoardTracker",
    "TrackingConfig",
    "TrackingError",
    "TrackingWarning",
    "WandBTracker",
    "auto_track",
    "backend",
    "backend_names",
    "create_tracker",
    "sanitize_key",
]
