"""The regression gate: rules that compare a session's per-case records with a baseline's.

:mod:`.rules` parses what users write; the statistics live in :mod:`pytest_insidellms.stats`.
"""

from __future__ import annotations

from . import rules
from .rules import *  # noqa: F403 - the package exports what its modules export

__all__: list[str] = []
__all__ += rules.__all__
