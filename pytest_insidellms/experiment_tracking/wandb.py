"""Placeholder: the wandb backend lands with the backends issue."""

from __future__ import annotations

from typing import Any


class WandBTracker:
    backend_name = "wandb"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the wandb backend is not implemented yet")
