"""Signals end a tracked session's runs ``killed``, and only signals do.

While installed, SIGINT and SIGTERM (CI cancelling a job) raise KeyboardInterrupt, as Ctrl-C
does without the plugin, and are remembered: a session that stops itself (``-x``, ``--sw``,
``pytest.exit``, pytest-xdist's maxfail) raises KeyboardInterrupt subclasses too, but is not
killed. Once a signal arrived, further ones are held until pytest is done (a second Ctrl-C
must not leave runs ``running``, nor cut pytest's summary short), then the previous handlers
come back. A process the
test forks gets the handlers it would have had without the plugin.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType
from typing import Any, Final

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
#: What a process without the plugin has: Python's SIGINT handler, the default for SIGTERM.
_NATIVE: Final[dict[int, Any]] = {signal.SIGINT: signal.default_int_handler,
                                  signal.SIGTERM: signal.SIG_DFL}


class SignalWatch:
    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        #: The signals received while installed, in order.
        self.received: list[int] = []

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> None:
        """Take SIGINT and SIGTERM where they have their native handlers (a handler of the
        user's or another plugin is left alone)."""
        _reset_in_forked_children()
        for signum in _SIGNALS:
            try:
                if signal.getsignal(signum) is _NATIVE[signum]:
                    self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                return

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            raise KeyboardInterrupt(f"signal {signum}")
        # A second signal while pytest unwinds the first: the runs are being ended; held.

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            with contextlib.suppress(ValueError):
                signal.signal(signum, previous)
        self._previous.clear()


_fork_hook_registered = False


def _reset_in_forked_children() -> None:
    # os.register_at_fork cannot be undone, so it is registered once per process; the child
    # resets only handlers that are ours, whichever SignalWatch installed them.
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_native_handlers_in_child)
        _fork_hook_registered = True


def _native_handlers_in_child() -> None:
    for signum in _SIGNALS:
        handler = signal.getsignal(signum)
        if getattr(handler, "__func__", None) is SignalWatch._handle:
            signal.signal(signum, _NATIVE[signum])
