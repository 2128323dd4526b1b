"""The verdict rendered: the terminal section, gate.md / the step summary (under its size
limit), report.html's comparison fragment and the gate files all show the same rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from gate_sessions import QA, experiment_cases, flipped, model_answers, qa_session, records_of

from pytest_insidellms.gate import (
    MARKDOWN_LIMIT,
    GateSettings,
    Verdict,
    evaluate,
    parse_rules,
    render_html,
    render_markdown,
    render_text,
    write_gate_files,
)
from pytest_insidellms.gate.engine import CaseChanges
from pytest_insidellms.records import build_summary, render_report
from pytest_insidellms.records.canonical import pretty_json

BASE = model_answers(200, 0.85, seed=11)
RULES = ("*/accuracy:drop<=0", "regressions<=0", "qa/accuracy>=0.7", "flaky<=0")


def failing_verdict() -> Verdict:
    settings = GateSettings(tuple(parse_rules(RULES, "--track-gate")))
    return evaluate(qa_session(flipped(BASE, 30, improvements=2)), qa_session(BASE), settings,
                    baseline_label="mlflow:latest?branch=main")


def test_text_has_one_row_per_rule_with_its_figures_then_the_counts() -> None:
    verdict = failing_verdict()
    text = render_text(verdict)
    lines = text.splitlines()
    assert lines[0].startswith("regression gate FAILED against mlflow:latest?branch=main")
    assert "90% CI" in lines[1] and "p (Holm)" in lines[1] and "MDE" in lines[1]
    accuracy = next(line for line in lines if "*/accuracy:drop<=0" in line and "FAIL" in line)
    row = verdict.rows[0]
    assert row.p_value is not None and row.adjusted_p is not None
    for figure in (f"{row.baseline:.4g}", f"{row.candidate:.4g}", f"{row.delta:+.4g}",
                   f"{row.p_value:.3g}", "200"):
        assert figure in accuracy
    assert any(line.startswith("regressions") and line.rstrip().endswith("FAIL")
               for line in lines)
    assert any("flaky<=0" in line and line.rstrip().endswith("pass") for line in lines)
    assert "  fail: qa/accuracy (*/accuracy:drop<=0): a drop beyond 0" in text
    assert lines[-1] == ("cases: 200 common, 0 new, 0 removed, 30 pass->fail, 2 fail->pass, "
                         "0 flaky")


def test_text_without_a_baseline_or_rules_says_so() -> None:
    settings = GateSettings(tuple(parse_rules(["qa/accuracy:drop<=0"], "--track-gate")))
    verdict = evaluate(qa_session(BASE), None, settings, missing="no session on branch main")
    text = render_text(verdict)
    assert "without a baseline (no session on branch main)" in text
    assert "skipped: qa/accuracy (qa/accuracy:drop<=0): no session on branch main" in text
    empty = render_text(evaluate(qa_session(BASE), None, GateSettings(())))
    assert "no gate rules: nothing judged" in empty and "regression gate passed" in empty


def test_markdown_has_the_table_the_counts_and_the_flipped_cases_in_details() -> None:
    verdict = failing_verdict()
    text = render_markdown(verdict)
    assert text.startswith("### Regression gate: FAILED\n")
    assert "| metric | baseline | now | delta | n | 90% CI |" in text
    assert f"| `qa/accuracy` | {verdict.rows[0].baseline:.4g} |" in text and "**fail**" in text
    assert "**Cases:** 200 common · 0 new · 0 removed · 30 pass->fail · 2 fail->pass" in text
    assert "<details><summary>30 pass -&gt; fail</summary>" in text
    for key in verdict.cases.regressions + verdict.cases.improvements:
        assert f"- `{key}`\n" in text
    assert "... and" not in text


def huge_verdict(cases: int) -> Verdict:
    keys = tuple(f"{QA}::test_answer[a long parametrization id number {i:07d}]"
                 for i in range(cases))
    verdict = failing_verdict()
    return replace(verdict, cases=CaseChanges(cases, keys[:10], (), keys, keys[:5], ()))


@pytest.mark.parametrize("limit", [4096, 65_536, MARKDOWN_LIMIT])
def test_markdown_stays_under_the_limit_and_says_how_many_it_left_out(limit: int) -> None:
    verdict = huge_verdict(40_000)  # about 3 MB of keys
    text = render_markdown(verdict, limit=limit)
    assert len(text.encode("utf-8")) <= limit
    assert "<details><summary>40000 pass -&gt; fail</summary>" in text
    assert text.count("<details>") == text.count("</details>") == 3
    listed = text.count("- `")
    more = [line for line in text.splitlines() if line.startswith("- ... and ")]
    assert more, "truncated lists end with a count of what was left out"
    left_out = sum(int(line.split()[3]) for line in more)
    assert listed + left_out == 40_000 + 10 + 5


def test_the_default_markdown_limit_leaves_headroom_under_githubs_step_limit() -> None:
    assert MARKDOWN_LIMIT <= 1024 * 1024 // 2
    with pytest.raises(ValueError, match="limit"):
        render_markdown(failing_verdict(), limit=100)


def test_markdown_code_spans_survive_backticks_and_pipes_in_case_keys() -> None:
    cases = experiment_cases([True, True], ids=["a`b", "x|y"])
    after = experiment_cases([False, False], ids=["a`b", "x|y"])
    settings = GateSettings(tuple(parse_rules(["regressions<=0"], "--track-gate")))
    text = render_markdown(evaluate(records_of(after), records_of(cases), settings))
    assert f"- ``{QA}::test_answer[a`b]``\n" in text
    assert f"- `{QA}::test_answer[x\\|y]`\n" in text


def test_html_fragment_escapes_everything_and_fits_the_report() -> None:
    before = experiment_cases([True], ids=["<script>alert(1)</script>"])
    after = experiment_cases([False], ids=["<script>alert(1)</script>"])
    settings = GateSettings(tuple(parse_rules(["regressions<=0", "qa/accuracy>=0.5"],
                                              "--track-gate")))
    records = records_of(after)
    fragment = render_html(evaluate(records, records_of(before), settings))
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    assert "<td><code>regressions</code></td>" in fragment
    assert '<td class="bad">FAIL</td>' in fragment
    assert "1 pass -&gt; fail" in fragment
    page = render_report(build_summary(records), records, title="t", comparison_html=fragment)
    assert fragment in page and "No baseline comparison" not in page


def test_gate_files_are_the_json_and_the_markdown_of_the_verdict(tmp_path: Path) -> None:
    verdict = failing_verdict()
    json_path, markdown_path = write_gate_files(tmp_path / "records", verdict)
    assert (json_path.name, markdown_path.name) == ("gate.json", "gate.md")
    assert json_path.read_text() == pretty_json(verdict.to_json())
    assert json.loads(json_path.read_text())["passed"] is False
    assert markdown_path.read_text(encoding="utf-8") == render_markdown(verdict)
    assert not list(tmp_path.glob("records/.*"))  # no temp files left behind
