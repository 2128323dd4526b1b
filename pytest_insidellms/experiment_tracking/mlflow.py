"""Placeholder: the mlflow backend lands with the backends issue."""

from __future__ import annotations

from typing import Any


class MLflowTracker:
    backend_name = "mlflow"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the mlflow backend is not implemented yet")
