"""Capturing what a test returns, without pytest ever seeing it.

``pytest_runtest_call`` swaps ``item.obj`` for a wrapper (an ``async def`` one for coroutine
tests, so pytest-asyncio and anyio still see a coroutine function) that hands the value to
``keep`` and returns what ``keep`` returns. Wrapping ``pytest_pyfunc_call`` instead would miss
pytest-asyncio tests, which swap ``obj`` inside ``runtest()``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def capturing(func: Callable[..., Any], keep: Callable[[Any], Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            return keep(await func(*args, **kwargs))

        return call_async

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        return keep(func(*args, **kwargs))

    return call


def is_experiment_result(value: Any) -> bool:
    from .types import ExperimentResult

    return isinstance(value, ExperimentResult) or (
        hasattr(value, "results") and hasattr(value, "probe_name") and hasattr(value, "model_info")
    )


def numeric_mapping(value: Any) -> dict[str, Any] | None:
    """A non-empty mapping of string names to numbers (bools are not numbers), else None."""
    from collections.abc import Mapping
    from numbers import Real

    if not isinstance(value, Mapping) or not value:
        return None
    if all(isinstance(k, str) and isinstance(v, Real) and not isinstance(v, bool)
           for k, v in value.items()):
        return dict(value)
    return None


def case_prefix(nodeid: str, marker_kwargs: Any = None) -> str:
    """The prefix of everything one test case logs, returned or through the fixture: the
    marker's ``prefix``, else :func:`default_prefix` (named after the marker's ``name``)."""
    kwargs = marker_kwargs or {}
    return str(kwargs.get("prefix") or default_prefix(nodeid, kwargs.get("name")))


def default_prefix(nodeid: str, name: str | None = None) -> str:
    """``test_qa`` -> ``test_qa/``; ``TestQA::test_x[gpt-4-case 1]`` -> ``TestQA/test_x/gpt-4-case 1/``.

    The part after the module, with ``::`` and the parametrization brackets turned into
    ``/`` levels. A parametrization id that the key rules would change (``2+2`` and ``2*2``
    both become ``2_2``) gets a short hash of the id itself, so cases never collide:
    ``test_x/2_2-1b3c5e/``.
    """
    path = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    function, _, params = path.partition("[")
    parts = function.split("::")
    if name:
        parts[-1] = name
    if params:
        parts.append(_case_segment(params.removesuffix("]")))
    return "/".join(parts) + "/"


def _case_segment(case_id: str) -> str:
    from .experiment_tracking.base import sanitize_key

    if not case_id or "/" in case_id:
        clean = None
    else:
        try:
            clean = sanitize_key(case_id)
        except ValueError:
            clean = None
    if clean == case_id:
        return case_id
    import hashlib

    digest = hashlib.sha1(case_id.encode("utf-8")).hexdigest()[:6]
    readable = (clean or "case").replace("/", "_")[:200]
    return f"{readable}-{digest}"
