"""Where each backend writes when given only a track directory.

Shared by the pytest plugin (``--track``) and the ``sync`` command, so that a replay lands
exactly where the tracked session would have written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .experiment_tracking.config import TrackingConfig
from .experiment_tracking.local import safe_id

#: Backends that talk to something that can be down; their calls are spooled first.
REMOTE_BACKENDS = ("mlflow", "wandb")


def backend_kwargs(name: str, tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    """Constructor arguments for built-in backend ``name``: embedded defaults under
    ``track_dir``, overridden by the config file's section for that backend."""
    section = dict(tracking.backends.get(name, {}))
    kwargs: dict[str, Any] = {"config": tracking}
    if name == "local":
        kwargs["output_dir"] = track_dir
    elif name == "mlflow":
        kwargs["experiment_name"] = tracking.project
        if not section.get("tracking_uri") and not os.environ.get("MLFLOW_TRACKING_URI"):
            kwargs["tracking_uri"] = embedded_mlflow_uri(track_dir)
            kwargs["artifact_location"] = str((track_dir / "mlartifacts").resolve())
    elif name == "wandb":
        kwargs["project"] = tracking.project
        kwargs["dir"] = str(track_dir)
        if "mode" not in section and not os.environ.get("WANDB_MODE"):
            kwargs["mode"] = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    elif name == "tensorboard":
        kwargs["log_dir"] = track_dir / "tensorboard" / safe_id(tracking.project)
    kwargs.update(section)
    return kwargs


def embedded_mlflow_uri(track_dir: Path) -> str:
    track_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(track_dir / 'mlflow.db').resolve()}"


def spool_dir(track_dir: Path, backend: str) -> Path:
    return track_dir / "spool" / backend
