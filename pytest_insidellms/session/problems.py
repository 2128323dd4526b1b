"""Every tracking problem goes to one :class:`ProblemSink`.

Tracking is best effort: a failure is counted per backend for the summary (and
``--track-strict``), warned once, and never raised into pytest (that would be an INTERNALERROR)
nor leaked as a warning pytest could turn into an error under ``-W error``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

import pytest

from ..experiment_tracking.base import TrackingWarning
from ..experiment_tracking.redaction import redact_text


class ProblemSink:
    def __init__(self, config: pytest.Config, warning: type[Warning], strict: bool,
                 redact_patterns: Iterable[str] = ()) -> None:
        self.config = config
        self.warning = warning
        self.strict = strict
        self._redact_patterns = tuple(redact_patterns)
        #: Backend (or "tracking") -> one line per problem, oldest first.
        self.problems: dict[str, list[str]] = {}
        self._warned: set[str] = set()
        self._pending: list[str] = []
        self._depth = 0
        #: A guard's catch_warnings is in effect.
        self._catching = False

    def __bool__(self) -> bool:
        return bool(self.problems)

    def mask(self, text: str) -> str:
        """``text`` as the plugin may print or write it outside a backend: credentials (a
        tracking URI's password, API keys) and the session's redaction patterns masked. CI
        logs are often public."""
        return redact_text(text, self._redact_patterns)

    # -- recording --------------------------------------------------------------------------

    def add(self, name: str, problem: str, *, first: bool = False) -> None:
        """Count a problem without warning (it was warned elsewhere or will be summarised)."""
        problem = self.mask(problem)
        lines = self.problems.setdefault(name, [])
        lines.insert(0, problem) if first else lines.append(problem)

    def failure(self, name: str, error: BaseException) -> None:
        """A tracking failure: counted, and warned the first time for ``name``."""
        first = name not in self.problems
        self.add(name, f"{type(error).__name__}: {error}")
        if first:
            self.warn(f"insidellms tracking ({name}): {type(error).__name__}: {error}")

    def disable(self, name: str, message: str, problem: str) -> None:
        """Leave backend ``name`` out at configure time, or stop pytest with --track-strict."""
        if self.strict:
            raise pytest.UsageError(message)
        self.config_time_warning(message + " (backend disabled)")
        self.add(name, problem)

    def config_time_warning(self, text: str) -> None:
        try:
            self.config.issue_config_time_warning(self.warning(self.mask(text)), stacklevel=3)
        except self.warning:
            pass  # warnings are errors (-W error) and pytest would crash: the summary says it

    def warn(self, text: str) -> None:
        """Show ``text`` once, as a warning, when the outermost guard ends (or now)."""
        text = self.mask(text)
        if text in self._warned:
            return
        self._warned.add(text)
        self._pending.append(text)
        if self._depth == 0:
            self._show()

    def call_hook(self, name: str, **kwargs: Any) -> list[Any]:
        """Call one of the plugin's hooks; an implementation that raises is a problem, not
        a crash (what it would have returned is left out)."""
        try:
            results: list[Any] = getattr(self.config.hook, name)(**kwargs)
        except Exception as exc:
            self.failure("hooks", RuntimeError(f"{name} failed: {type(exc).__name__}: {exc}"))
            return []
        return results

    # -- the guard --------------------------------------------------------------------------

    def guard(self, name: str = "tracking", *, hold_warnings: bool = True) -> _Guard:
        """Run tracking code: exceptions become problems of ``name``; warnings raised inside
        are held and shown once the outermost guard ends, outside every catch_warnings.
        Only the outermost guard records warnings (catch_warnings is not cheap), and only
        one that holds them: ``hold_warnings=False`` for code that calls no library (a
        journal append, counting), where a guard is entered per test."""
        return _Guard(self, name, hold_warnings)

    def _show(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            try:
                warnings.warn(self.warning(text), stacklevel=4)
            except Warning:
                pass  # warnings are errors here; the summary still reports failures

    # -- the end ----------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        return [f"  {name}: {len(lines)} problem(s), first: {lines[0]}"
                for name, lines in self.problems.items()]

    def apply_strict(self, session: pytest.Session) -> None:
        """--track-strict: any problem turns an otherwise passing session into exit 4."""
        if self.strict and self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


_ALWAYS: Final = ("always", None, Warning, None, 0)


class _Guard:
    """ProblemSink.guard as a plain context manager (a generator-based one costs several
    calls more each time). The outermost guard that holds warnings records them; one that
    does not (``hold_warnings=False``: code that calls no library) only catches exceptions."""

    __slots__ = ("sink", "name", "hold", "catcher", "caught")

    def __init__(self, sink: ProblemSink, name: str, hold_warnings: bool) -> None:
        self.sink = sink
        self.name = name
        self.hold = hold_warnings
        self.catcher: warnings.catch_warnings[list[warnings.WarningMessage]] | None = None
        self.caught: list[warnings.WarningMessage] = []

    def __enter__(self) -> None:
        sink = self.sink
        sink._depth += 1
        if self.hold and not sink._catching:
            sink._catching = True
            self.catcher = warnings.catch_warnings(record=True)
            self.caught = self.catcher.__enter__()
            # What simplefilter("always") leaves in effect, without its scan of pytest's
            # filters (half the cost of a guard); the list is the copy catch_warnings restores
            # from, and entering it already invalidated every warning registry.
            warnings.filters = [_ALWAYS]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        sink = self.sink
        swallowed = isinstance(exc, Exception)
        try:
            if swallowed:
                assert exc is not None
                sink.failure(self.name, exc)
        finally:
            if self.catcher is not None:
                self.catcher.__exit__(None, None, None)
                sink._catching = False
            sink._depth -= 1
        if not swallowed and exc is not None:
            return False
        for message in self.caught:
            # Our library's notices (a truncated param, a backend that went down) are shown
            # once each; other libraries' warnings raised while logging (SQLAlchemy
            # deprecations inside MLflow, ...) are theirs, not the user's: left out.
            if isinstance(message.message, TrackingWarning):
                sink.warn(str(message.message))
        if sink._depth == 0:
            sink._show()
        return swallowed
