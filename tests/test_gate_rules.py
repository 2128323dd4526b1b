"""Gate rules: every accepted spelling parses to the rule it means, every bad one is refused
with a message naming where it came from, and metric patterns match as documented."""

from __future__ import annotations

import pytest

from pytest_insidellms.gate import (
    ACCEPTED_FORMS,
    AbsoluteRule,
    CountRule,
    RelativeRule,
    Rule,
    RuleError,
    UnmatchedRuleError,
    matching_metrics,
    parse_rule,
    parse_rules,
)

SOURCES = ["--track-gate", "ini option insidellms_track_gate", "gate: section of config.yaml"]

ACCEPTED: list[tuple[str, Rule]] = [
    ("*/accuracy>=0.8", AbsoluteRule("*/accuracy", ">=", 0.8)),
    ("*/accuracy>=80%", AbsoluteRule("*/accuracy", ">=", 0.8)),
    ("qa/*/success_rate >= 80 %", AbsoluteRule("qa/*/success_rate", ">=", 0.8)),
    ("  latency/mean_latency_ms<=500  ", AbsoluteRule("latency/mean_latency_ms", "<=", 500.0)),
    ("costs/usd<=1e-3", AbsoluteRule("costs/usd", "<=", 0.001)),
    ("delta/score>=-0.5", AbsoluteRule("delta/score", ">=", -0.5)),
    ("qa/f1>=.75", AbsoluteRule("qa/f1", ">=", 0.75)),
    ("pass_rate>=0.95", AbsoluteRule("pass_rate", ">=", 0.95)),
    ("pass_*>=0.95", AbsoluteRule("pass_*", ">=", 0.95)),
    ("qa:v2/accuracy>=1", AbsoluteRule("qa:v2/accuracy", ">=", 1.0)),
    ("my suite/accuracy>=0.5", AbsoluteRule("my suite/accuracy", ">=", 0.5)),
    ("*/accuracy:drop<=0.02", RelativeRule("*/accuracy", "drop", 0.02, relative=False)),
    ("*/accuracy:drop<=5%", RelativeRule("*/accuracy", "drop", 0.05, relative=True)),
    ("*/accuracy : drop <= 5 %", RelativeRule("*/accuracy", "drop", 0.05, relative=True)),
    ("*/mean_latency_ms:rise<=10%", RelativeRule("*/mean_latency_ms", "rise", 0.1, True)),
    ("*/total_tokens:rise<=200", RelativeRule("*/total_tokens", "rise", 200.0, False)),
    ("pass_rate:drop<=0", RelativeRule("pass_rate", "drop", 0.0, False)),
    ("regressions<=0", CountRule("regressions", 0)),
    ("regressions <= 3", CountRule("regressions", 3)),
    ("flaky<=10", CountRule("flaky", 10)),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[text for text, _ in ACCEPTED])
def test_every_accepted_form_parses_to_the_rule_it_means(text: str, expected: Rule) -> None:
    rule = parse_rule(text, "--track-gate")
    assert rule == expected
    assert type(rule) is type(expected)
    assert (rule.text, rule.source) == (text, "--track-gate")


def test_percentages_are_fractions_and_mark_relative_margins() -> None:
    absolute = parse_rule("x/acc:drop<=0.05", "--track-gate")
    relative = parse_rule("x/acc:drop<=5%", "--track-gate")
    assert isinstance(absolute, RelativeRule) and isinstance(relative, RelativeRule)
    assert absolute.margin == relative.margin == 0.05
    assert (absolute.relative, relative.relative) == (False, True)
    assert absolute != relative


BAD: list[tuple[str, str]] = [
    ("", "the rule is empty"),
    ("   ", "the rule is empty"),
    ("*/accuracy", "no comparison"),
    ("*/accuracy>0.8", "strict > is not supported: use >="),
    ("*/accuracy<0.8", "strict < is not supported: use <="),
    ("*/accuracy=0.8", "equality is not supported"),
    ("*/accuracy==0.8", "equality is not supported"),
    ("*/accuracy=>0.8", "write >= instead of =>"),
    ("*/accuracy=<0.8", "write <= instead of =<"),
    ("*/accuracy>==0.8", "unknown comparison '>=='"),
    ("0.2<=*/accuracy<=0.8", "one comparison per rule"),
    (">=0.8", "nothing to compare before >="),
    ("*/accuracy>=", "no value after >="),
    ("*/accuracy>=high", "'high' is not a number"),
    ("*/accuracy>=nan", "'nan' is not a number"),
    ("*/accuracy>=inf", "'inf' is not a number"),
    ("*/accuracy>=1_000", "'1_000' is not a number"),
    ("*/accuracy>=0.8%%", "is not a number"),
    ("*/accuracy>=1e999", "out of range"),
    ("accuracy>=0.8", "'accuracy' is neither <experiment>/<metric> nor a session metric"),
    ("/accuracy>=0.8", "empty experiment or metric name"),
    ("qa/>=0.8", "empty experiment or metric name"),
    ("qa//accuracy>=0.8", "empty experiment or metric name"),
    ("*/accuracy:fall<=0.1", "unknown change 'fall'"),
    ("qa:accuracy>=0.8", "unknown change 'accuracy'"),
    ("*/accuracy:<=0.1", "nothing after ':'"),
    (":drop<=0.1", "no metric before ':'"),
    ("*/accuracy:drop>=0.1", "a drop is bounded from above"),
    ("*/latency:rise>=10%", "a rise is bounded from above"),
    ("*/accuracy:drop<=-0.1", "the margin must be >= 0"),
    ("regressions>=1", "regressions is bounded from above"),
    ("flaky>=1", "flaky is bounded from above"),
    ("regressions<=1.5", "'1.5' is not a whole number"),
    ("regressions<=-1", "'-1' is not a whole number"),
    ("flaky<=10%", "'10%' is not a whole number"),
    ("regressions:drop<=1", "regressions is a count of cases"),
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("text", "reason"), BAD, ids=[text or "empty" for text, _ in BAD])
def test_bad_rules_are_refused_naming_their_source(text: str, reason: str,
                                                   source: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text, source)
    message = str(caught.value)
    assert message.startswith(f"{source}: gate rule {text!r}: ")
    assert reason in message
    assert ACCEPTED_FORMS in message
    assert (caught.value.source, caught.value.text) == (source, text)
    assert isinstance(caught.value, ValueError)


def test_accepted_forms_list_every_kind_of_rule() -> None:
    for form in ("METRIC>=X", "METRIC<=X", "METRIC:drop<=X%", "METRIC:rise<=X%",
                 "regressions<=N", "flaky<=N", "*/accuracy", "pass_rate"):
        assert form in ACCEPTED_FORMS


def test_parse_rules_keeps_order_and_stops_at_the_first_bad_rule() -> None:
    rules = parse_rules(["*/accuracy>=0.8", "regressions<=0"], "gate: section of config.yaml")
    assert rules == [AbsoluteRule("*/accuracy", ">=", 0.8), CountRule("regressions", 0)]
    with pytest.raises(RuleError, match="^gate: section of config.yaml: gate rule 'oops'"):
        parse_rules(["*/accuracy>=0.8", "oops"], "gate: section of config.yaml")


# --- judging point values (what --track-alpha 0 does) ----------------------------------------

def test_absolute_rules_compare_the_candidate_value() -> None:
    at_least = AbsoluteRule("*/accuracy", ">=", 0.8)
    at_most = AbsoluteRule("*/latency", "<=", 500.0)
    assert at_least.holds(0.8) and not at_least.holds(0.79)
    assert at_most.holds(500.0) and not at_most.holds(500.1)


def test_relative_rules_bound_the_change_from_the_baseline() -> None:
    drop = RelativeRule("*/accuracy", "drop", 0.02, relative=False)
    assert drop.holds(0.80, 0.785) and not drop.holds(0.80, 0.77)
    assert drop.holds(0.80, 0.95)  # an improvement never violates a drop rule
    rise = RelativeRule("*/latency", "rise", 0.10, relative=True)
    assert rise.allowed_change(500.0) == pytest.approx(50.0)
    assert rise.holds(500.0, 549.0) and not rise.holds(500.0, 551.0)
    assert rise.change(500.0, 400.0) == -100.0
    relative_drop = RelativeRule("*/score", "drop", 0.05, relative=True)
    assert relative_drop.allowed_change(-2.0) == pytest.approx(0.1)  # of the magnitude


def test_count_rules_bound_the_count() -> None:
    rule = CountRule("regressions", 2)
    assert rule.holds(0) and rule.holds(2) and not rule.holds(3)


def test_labels_show_the_rule_as_written_or_in_canonical_form() -> None:
    assert parse_rule(" x/acc : drop <= 5 % ", "--track-gate").label == " x/acc : drop <= 5 % "
    assert RelativeRule("x/acc", "drop", 0.05, relative=True).label == "x/acc:drop<=5%"
    assert RelativeRule("x/ms", "rise", 20.0, relative=False).label == "x/ms:rise<=20"
    assert AbsoluteRule("*/acc", ">=", 0.8).label == "*/acc>=0.8"
    assert CountRule("flaky", 0).label == "flaky<=0"


# --- matching metric names -------------------------------------------------------------------

AVAILABLE = ["qa/accuracy", "qa/f1", "math/accuracy", "qa/easy/success_rate",
             "qa/hard/success_rate", "pass_rate", "Qa/Accuracy"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("*/accuracy", ["math/accuracy", "qa/accuracy"]),  # case-sensitive: not Qa/Accuracy
    ("qa/*", ["qa/accuracy", "qa/easy/success_rate", "qa/f1", "qa/hard/success_rate"]),
    ("qa/*/success_rate", ["qa/easy/success_rate", "qa/hard/success_rate"]),
    ("*/success_rate", ["qa/easy/success_rate", "qa/hard/success_rate"]),  # * crosses /
    ("[mq]*/accuracy", ["math/accuracy", "qa/accuracy"]),
    ("qa/f?", ["qa/f1"]),
    ("pass_rate", ["pass_rate"]),
    ("pass_*", ["pass_rate"]),
    ("*/*", sorted(set(AVAILABLE) - {"pass_rate"})),  # a slash never matches session metrics
])
def test_matching_metrics_uses_case_sensitive_globs(pattern: str,
                                                    expected: list[str]) -> None:
    rule = AbsoluteRule(pattern, ">=", 0.5)
    assert matching_metrics(rule, AVAILABLE + AVAILABLE[:2]) == expected


def test_a_rule_that_matches_nothing_is_an_error_naming_its_source() -> None:
    rule = parse_rule("*/acuracy:drop<=2%", "ini option insidellms_track_gate")
    assert isinstance(rule, RelativeRule)
    with pytest.raises(UnmatchedRuleError) as caught:
        matching_metrics(rule, AVAILABLE)
    message = str(caught.value)
    assert message.startswith("ini option insidellms_track_gate: gate rule "
                              "'*/acuracy:drop<=2%': '*/acuracy' matches no metric")
    assert "math/accuracy" in message and "pass_rate" not in message
    assert "Accepted forms" not in message  # the rule is well formed; its pattern is off
    assert isinstance(caught.value, RuleError)


def test_unmatched_errors_say_when_nothing_was_recorded() -> None:
    with pytest.raises(UnmatchedRuleError, match="no experiment metrics were recorded"):
        matching_metrics(AbsoluteRule("*/accuracy", ">=", 0.5), ["pass_rate"])
    with pytest.raises(UnmatchedRuleError, match=r"^gate: gate rule 'pass_rate>=0.5'.*no "
                                                 r"session metrics"):
        matching_metrics(AbsoluteRule("pass_rate", ">=", 0.5), [])
    many = [f"e{i}/accuracy" for i in range(15)]
    with pytest.raises(UnmatchedRuleError) as caught:
        matching_metrics(AbsoluteRule("*/f1", ">=", 0.5), many)
    shown = str(caught.value).split("metrics here: ")[1]
    assert shown.count("/accuracy") == 10 and shown.endswith(", ...)")
