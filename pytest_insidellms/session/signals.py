"""SIGTERM (CI cancelling a job) ends the session's runs as killed, as Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Any


class SigtermAsInterrupt:
    """Turns SIGTERM into KeyboardInterrupt while installed, if nobody else handles it."""

    def __init__(self) -> None:
        self._previous: Any = None
        self.installed = False

    def install(self) -> None:
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                self._previous = signal.signal(signal.SIGTERM, _raise_interrupt)
                self.installed = True
        except ValueError:  # not the main thread: leave signals alone
            pass

    def restore(self) -> None:
        if self.installed:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._previous)
            self.installed = False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
