"""The regression gate: rules that compare a session's per-case records with a baseline's.

:mod:`.rules` parses what users write, :mod:`.metrics` says what the records measure,
:mod:`.engine` judges (the statistics live in :mod:`pytest_insidellms.stats`), :mod:`.render`
shows the verdict, :mod:`.cli` runs it offline (``python -m pytest_insidellms compare``).
"""

from __future__ import annotations

from . import engine, render, rules
from .engine import *  # noqa: F403 - the package exports what its modules export
from .render import *  # noqa: F403
from .rules import *  # noqa: F403

__all__: list[str] = []
__all__ += rules.__all__
__all__ += engine.__all__
__all__ += render.__all__
