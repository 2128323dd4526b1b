"""Gate rules: the text of ``--track-gate`` (and its ini and config-file twins) parsed once.

Three kinds, each a frozen dataclass that knows how to judge point values, so the evaluator
only has to find the values and, when ``--track-alpha`` is above 0, the statistics
(:mod:`pytest_insidellms.stats`) that say whether a violation is shown by the data:

- :class:`AbsoluteRule`: ``METRIC>=X`` / ``METRIC<=X`` on the candidate's value;
- :class:`RelativeRule`: ``METRIC:drop<=X`` / ``METRIC:rise<=X``, against the baseline, the
  margin absolute (``0.02``) or relative to the baseline value (``5%``);
- :class:`CountRule`: ``regressions<=N`` (cases that passed in the baseline and fail now) and
  ``flaky<=N``.

``METRIC`` is ``<experiment>/<metric>`` with shell globs (:func:`fnmatch.fnmatchcase`, so ``*``
crosses ``/``), or a session metric such as ``pass_rate``. A pattern with a ``/`` only ever
matches experiment metrics and one without only session metrics, so ``*`` does not sweep in
every experiment. Names may hold spaces but not ``<``, ``>`` or ``=``; a ``:`` belongs to the
name unless a bare word follows it (``qa:v2/accuracy>=0.8`` is a name with a colon).

Every error names where the rule came from (``--track-gate``, ``ini option ...``, ``gate:
section of config.yaml``) and lists the accepted forms; the plugin turns it into a usage error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final, Literal, Union

from ..stats import Direction

__all__ = [
    "ACCEPTED_FORMS",
    "COUNTS",
    "SESSION_METRICS",
    "AbsoluteRule",
    "Comparison",
    "CountName",
    "CountRule",
    "Direction",
    "MetricRule",
    "RelativeRule",
    "Rule",
    "RuleError",
    "UnmatchedRuleError",
    "matching_metrics",
    "parse_rule",
    "parse_rules",
]

#: Metrics of the whole session, named without an experiment.
SESSION_METRICS: Final[tuple[str, ...]] = ("pass_rate",)
COUNTS: Final[tuple[str, ...]] = ("regressions", "flaky")
ACCEPTED_FORMS: Final = ("METRIC>=X, METRIC<=X, METRIC:drop<=X, METRIC:drop<=X%, "
                         "METRIC:rise<=X, METRIC:rise<=X%, regressions<=N, flaky<=N "
                         "(METRIC: <experiment>/<metric> with shell globs, e.g. */accuracy, "
                         f"or a session metric: {', '.join(SESSION_METRICS)})")

Comparison = Literal[">=", "<="]
CountName = Literal["regressions", "flaky"]


class RuleError(ValueError):
    """A gate rule that cannot be used; the message names its source and the accepted forms."""

    def __init__(self, source: str, text: str, reason: str) -> None:
        self.source = source
        self.text = text
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (f"{self.source}: gate rule {self.text!r}: {self.reason}. Accepted forms: "
                f"{ACCEPTED_FORMS}")


class UnmatchedRuleError(RuleError):
    """A well-formed rule whose metric pattern matches none of the session's metrics."""

    def _message(self) -> str:
        return f"{self.source}: gate rule {self.text!r}: {self.reason}"


def _format(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class _Written:
    """Where a rule came from, for messages; not part of what the rule means."""

    text: str = field(default="", compare=False, kw_only=True)
    source: str = field(default="", compare=False, kw_only=True)

    @property
    def label(self) -> str:
        """The rule as the user wrote it, or in canonical form when built in code."""
        return self.text or self._canonical()

    def _canonical(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class AbsoluteRule(_Written):
    """``METRIC>=X`` or ``METRIC<=X``: a bound on the candidate's value (``80%`` is 0.8)."""

    metric_glob: str
    op: Comparison
    threshold: float

    def _canonical(self) -> str:
        return f"{self.metric_glob}{self.op}{_format(self.threshold)}"

    def holds(self, value: float) -> bool:
        """The point comparison (``--track-alpha 0``)."""
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True)
class RelativeRule(_Written):
    """``METRIC:drop<=X`` or ``METRIC:rise<=X``: the change from the baseline is bounded.

    ``relative`` margins are fractions of the baseline value (``5%`` is stored as 0.05), so
    ``mean_latency_ms:rise<=10%`` allows 50 ms on a 500 ms baseline.
    """

    metric_glob: str
    direction: Direction
    margin: float
    relative: bool

    def _canonical(self) -> str:
        margin = f"{_format(self.margin * 100)}%" if self.relative else _format(self.margin)
        return f"{self.metric_glob}:{self.direction}<={margin}"

    def allowed_change(self, baseline: float) -> float:
        """The margin in the metric's own units for this baseline value."""
        return self.margin * abs(baseline) if self.relative else self.margin

    def change(self, baseline: float, candidate: float) -> float:
        """How far the candidate moved in the rule's direction (negative: the good way)."""
        return baseline - candidate if self.direction == "drop" else candidate - baseline

    def holds(self, baseline: float, candidate: float) -> bool:
        """The point comparison (``--track-alpha 0``)."""
        return self.change(baseline, candidate) <= self.allowed_change(baseline)


@dataclass(frozen=True)
class CountRule(_Written):
    """``regressions<=N`` or ``flaky<=N``: counted cases, no statistics involved."""

    what: CountName
    max: int

    def _canonical(self) -> str:
        return f"{self.what}<={self.max}"

    def holds(self, count: int) -> bool:
        return count <= self.max


MetricRule = Union[AbsoluteRule, RelativeRule]
Rule = Union[AbsoluteRule, RelativeRule, CountRule]

#: Builds the error for one rule text from a reason (the helpers below only know the reason).
_Fail = Callable[[str], RuleError]

_COMPARISON = re.compile(r"^(?P<left>[^<>=]*?)\s*(?P<op><=|>=)\s*(?P<right>[^<>=]*?)$")
_DIRECTION = re.compile(r"^(?P<metric>.*?)\s*:\s*(?P<word>[A-Za-z_]+)$")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WHOLE = re.compile(r"\d+")


def parse_rules(texts: Iterable[str], source: str) -> list[Rule]:
    """:func:`parse_rule` on each text, all from the same source, in order."""
    return [parse_rule(text, source) for text in texts]


def parse_rule(text: str, source: str) -> Rule:
    """Parse one rule; raises :class:`RuleError` naming ``source`` on anything else."""

    def fail(reason: str) -> RuleError:
        return RuleError(source, text, reason)

    rule = text.strip()
    if not rule:
        raise fail("the rule is empty")
    found = _COMPARISON.match(rule)
    if found is None:
        raise fail(_comparison_problem(rule))
    left, op, right = found["left"], found["op"], found["right"]
    if not left:
        raise fail(f"nothing to compare before {op}")
    if not right:
        raise fail(f"no value after {op}")
    if left.endswith(":"):
        raise fail("nothing after ':' (expected drop or rise)")

    directed = _DIRECTION.match(left)
    if left in COUNTS or (directed is not None and directed["metric"] in COUNTS):
        if directed is not None:
            raise fail(f"{directed['metric']} is a count of cases: write "
                       f"{directed['metric']}<=N")
        return _count_rule(left, op, right, fail, text, source)
    if directed is None:
        metric = _metric(left, fail)
        threshold, percent = _number(right, fail)
        return AbsoluteRule(metric, ">=" if op == ">=" else "<=",
                            threshold / 100 if percent else threshold, text=text, source=source)
    direction = directed["word"]
    if direction not in ("drop", "rise"):
        raise fail(f"unknown change {direction!r} after ':' (expected drop or rise; "
                   "experiment and metric are separated by '/')")
    if op != "<=":
        raise fail(f"a {direction} is bounded from above: write METRIC:{direction}<=X")
    metric = _metric(directed["metric"], fail)
    margin, percent = _number(right, fail)
    if margin < 0:
        raise fail(f"the margin must be >= 0 (a negative {direction} margin would demand a "
                   "change the other way)")
    return RelativeRule(metric, "drop" if direction == "drop" else "rise",
                        margin / 100 if percent else margin, percent, text=text,
                        source=source)


def _comparison_problem(rule: str) -> str:
    operators = re.findall(r"[<>=]+", rule)
    if not operators:
        return "no comparison (expected <= or >=)"
    if len(operators) > 1:
        return "one comparison per rule (give several rules separately)"
    op = operators[0]
    if op in ("=<", "=>"):
        return f"write {op[::-1]} instead of {op}"
    if op in ("<", ">"):
        return f"strict {op} is not supported: use {op}="
    if op in ("=", "=="):
        return "equality is not supported: use <= or >="
    return f"unknown comparison {op!r} (expected <= or >=)"


def _metric(name: str, fail: _Fail) -> str:
    if not name:
        raise fail("no metric before ':'")
    if "/" in name:
        if any(not part.strip() for part in name.split("/")):
            raise fail(f"{name!r} has an empty experiment or metric name around '/'")
        return name
    if any(fnmatchcase(session, name) for session in SESSION_METRICS):
        return name
    raise fail(f"{name!r} is neither <experiment>/<metric> nor a session metric "
               f"({', '.join(SESSION_METRICS)})")


def _number(text: str, fail: _Fail) -> tuple[float, bool]:
    percent = text.endswith("%")
    body = text[:-1].rstrip() if percent else text
    if _NUMBER.fullmatch(body) is None:
        raise fail(f"{text!r} is not a number (write 0.8, 80% or 1e-3)")
    value = float(body)
    if not math.isfinite(value):
        raise fail(f"{text!r} is out of range")
    return value, percent


def _count_rule(what: str, op: str, value: str, fail: _Fail, text: str,
                source: str) -> CountRule:
    if op != "<=":
        raise fail(f"{what} is bounded from above: write {what}<=N")
    if _WHOLE.fullmatch(value) is None:
        raise fail(f"{what} counts cases: {value!r} is not a whole number >= 0")
    return CountRule("regressions" if what == "regressions" else "flaky", int(value),
                     text=text, source=source)


def matching_metrics(rule: MetricRule, available: Iterable[str]) -> list[str]:
    """The available metric names the rule's pattern matches, sorted, without duplicates.

    Raises :class:`UnmatchedRuleError` when there are none: a gate that checks nothing must
    not pass silently (a renamed experiment would otherwise switch its rule off).
    """
    pattern = rule.metric_glob
    scoped = "/" in pattern
    names = sorted({name for name in available
                    if ("/" in name) == scoped and fnmatchcase(name, pattern)})
    if names:
        return names
    candidates = sorted({name for name in available if ("/" in name) == scoped})
    if candidates:
        shown = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
        known = f"{'metrics' if scoped else 'session metrics'} here: {shown}"
    else:
        known = "no experiment metrics were recorded" if scoped else "no session metrics"
    raise UnmatchedRuleError(rule.source or "gate", rule.label,
                             f"{pattern!r} matches no metric ({known})")
