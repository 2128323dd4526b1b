"""Placeholder: the tensorboard backend lands with the backends issue."""

from __future__ import annotations

from typing import Any


class TensorBoardTracker:
    backend_name = "tensorboard"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the tensorboard backend is not implemented yet")
