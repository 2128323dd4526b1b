"""The regression gate: rules that compare a session's per-case records with a baseline's.

:mod:`.rules` parses what users write; the statistics live in :mod:`pytest_insidellms.stats`.
"""

from __future__ import annotations

from .rules import (
    ACCEPTED_FORMS,
    SESSION_METRICS,
    AbsoluteRule,
    CountRule,
    MetricRule,
    RelativeRule,
    Rule,
    RuleError,
    UnmatchedRuleError,
    matching_metrics,
    parse_rule,
    parse_rules,
)

__all__ = [
    "ACCEPTED_FORMS",
    "SESSION_METRICS",
    "AbsoluteRule",
    "CountRule",
    "MetricRule",
    "RelativeRule",
    "Rule",
    "RuleError",
    "UnmatchedRuleError",
    "matching_metrics",
    "parse_rule",
    "parse_rules",
]
