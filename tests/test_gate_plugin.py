"""The gate in real pytest sessions: options, the exit contract, what is shown and written.

A seeded fake model answers 200 cases of one experiment; ``FLIPS`` of them (chosen by a
seeded shuffle) it gets wrong. The baseline is a session with no flips, written with
``--track-records``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import INNER_INI

import pytest_insidellms.session  # noqa: F401  (loaded once, see test_records_plugin)

SUITE = """
    import os, random
    import pytest

    CASES = 200
    _order = list(range(CASES))
    random.Random(7).shuffle(_order)
    WRONG = set(_order[:int(os.environ.get("FLIPS", "0"))])

    @pytest.mark.experiment(name="qa", model_name="toy")
    @pytest.mark.parametrize("case", range(CASES))
    def test_qa(case):
        assert case not in WRONG, "wrong answer"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_model=textwrap.dedent(SUITE))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("FLIPS", "0")
    assert pytester.runpytest("-p", "no:randomly", "--track-records=base").ret == 0
    return pytester


def run(suite: pytest.Pytester, flips: int, *args: str) -> pytest.RunResult:
    os.environ["FLIPS"] = str(flips)
    return suite.runpytest("-p", "no:randomly", *args)


def gate_json(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "gate.json").read_text("utf-8"))
    return data


def test_no_change_passes_and_writes_the_verdict_beside_the_records(
        suite: pytest.Pytester) -> None:
    result = run(suite, 0, "--track-records=cand", "--track-baseline=base",
                 "--track-gate", "*/accuracy:drop<=0", "--track-gate", "regressions<=0")
    assert result.ret == 0
    out = result.stdout.str()
    assert "insidellms gate" in out and "gate passed" in out
    verdict = gate_json(suite.path / "cand")
    assert verdict == gate_json(suite.path / "cand")  # read twice: a file, not a stream
    assert (suite.path / "cand" / "gate.md").read_text("utf-8").strip()
    assert not (suite.path / "experiments").exists()  # an untracked gate leaves no track dir
    report = (suite.path / "cand" / "report.html").read_text("utf-8")
    assert "regressions&lt;=0" in report or "regressions<=0" in report


def test_one_flip_in_200_passes_the_statistics_but_not_a_zero_regression_rule(
        suite: pytest.Pytester) -> None:
    statistical = run(suite, 1, "--track-exit=gate", "--track-baseline=base",
                      "--track-gate", "*/accuracy:drop<=0")
    assert statistical.ret == 0, statistical.stdout.str()
    counted = run(suite, 1, "--track-exit=gate", "--track-baseline=base",
                  "--track-gate", "regressions<=0")
    assert counted.ret == 1
    assert "gate FAILED" in counted.stdout.str()


def test_thirty_flips_fail_the_gate(suite: pytest.Pytester) -> None:
    result = run(suite, 30, "--track-exit=gate", "--track-records=cand",
                 "--track-baseline=base", "--track-gate", "*/accuracy:drop<=0")
    assert result.ret == 1
    assert gate_json(suite.path / "cand")["passed"] is False


def test_exit_modes(suite: pytest.Pytester) -> None:
    gate = ("--track-baseline=base", "--track-gate", "*/accuracy:drop<=0.5")
    # 3 failing cases: data under "gate", failures under "both" and "tests".
    assert run(suite, 3, "--track-exit=gate", *gate).ret == 0
    assert run(suite, 3, "--track-exit=both", *gate).ret == 1
    assert run(suite, 3, "--track-exit=tests", *gate).ret == 1
    # A failing gate: "tests" leaves the exit status to pytest alone.
    strict = ("--track-baseline=base", "--track-gate", "regressions<=0")
    assert run(suite, 0, "--track-exit=tests", *strict).ret == 0
    assert run(suite, 3, "--track-exit=tests", *strict).ret == 1


def test_gate_mode_still_fails_on_failures_that_are_not_experiment_data(
        suite: pytest.Pytester) -> None:
    suite.makepyfile(test_plain="def test_plain():\n    assert False\n")
    result = run(suite, 0, "--track-exit=gate", "--track-baseline=base",
                 "--track-gate", "*/accuracy:drop<=0")
    assert result.ret == 1
    assert "gate passed" in result.stdout.str()


def test_absolute_rules_need_no_baseline(suite: pytest.Pytester) -> None:
    assert run(suite, 0, "--track-gate", "*/accuracy>=0.9").ret == 0
    assert run(suite, 100, "--track-exit=gate", "--track-gate", "*/accuracy>=0.9").ret == 1


@pytest.mark.parametrize("mode, exit_code", [("skip", 0), ("warn", 0), ("fail", 1)])
def test_a_missing_baseline(suite: pytest.Pytester, mode: str, exit_code: int) -> None:
    result = run(suite, 0, "--track-baseline=nothing-here", f"--track-baseline-missing={mode}",
                 "--track-gate", "*/accuracy:drop<=0", "-W", "default")
    assert result.ret == exit_code
    out = result.stdout.str()
    assert "no baseline" in out
    assert ("InsideLLMsTrackingWarning" in out) == (mode == "warn")


@pytest.mark.parametrize("args, named", [
    (("--track-gate", "accuracy>>0.9"), "--track-gate"),
    (("--track-gate", "*/accuracy>=0.9", "--track-alpha", "2"), "--track-alpha"),
    (("--track-gate", "*/accuracy>=0.9", "--track-exit", "never"), "--track-exit"),
    (("--track-gate", "*/accuracy>=0.9", "--track-baseline-missing", "x"),
     "--track-baseline-missing"),
    (("--track-baseline", "svn:trunk"), "--track-baseline"),
])
def test_bad_gate_options_exit_4_naming_the_option(suite: pytest.Pytester, args: tuple[str, ...],
                                                   named: str) -> None:
    result = run(suite, 0, *args)
    assert result.ret == 4
    assert named in result.stderr.str()


def test_rules_from_the_ini_file_and_the_config_file(suite: pytest.Pytester) -> None:
    suite.makeini(INNER_INI + "insidellms_track_gate =\n    regressions<=0\n"
                  "insidellms_track_baseline = base\n")
    assert run(suite, 1).ret == 1
    suite.makeini(INNER_INI)
    (suite.path / "track.yaml").write_text(
        "gate:\n  rules: ['regressions<=0']\n  baseline: base\n  exit: gate\n", "utf-8")
    assert run(suite, 1, "--track-records=cand", "--track-config=track.yaml").ret == 1
    assert gate_json(suite.path / "cand")["passed"] is False
    (suite.path / "bad.yaml").write_text("gate:\n  rules: ['regressions<<0']\n", "utf-8")
    bad = run(suite, 0, "--track-records=cand", "--track-config=bad.yaml")
    assert bad.ret == 4 and "gate: section of" in bad.stderr.str()


def test_a_rule_matching_nothing_fails_the_gate(suite: pytest.Pytester) -> None:
    result = run(suite, 0, "--track-gate", "nosuch/accuracy>=0.5")
    assert result.ret == 1
    assert "matches no metric" in result.stdout.str()


def test_the_markdown_goes_to_the_github_step_summary(suite: pytest.Pytester,
                                                      tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step\n", "utf-8")
    os.environ["GITHUB_STEP_SUMMARY"] = str(summary)
    try:
        run(suite, 30, "--track-exit=gate", "--track-records=cand", "--track-baseline=base",
            "--track-gate", "*/accuracy:drop<=0")
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    text = summary.read_text("utf-8")
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert text[len("# earlier step\n"):].strip() == (
        suite.path / "cand" / "gate.md").read_text("utf-8").strip()
    assert "<details>" in text


def test_the_verdict_is_logged_to_the_session_run(suite: pytest.Pytester) -> None:
    result = run(suite, 30, "--track-exit=gate", "--track", "local", "--track-dir=runs",
                 "--track-baseline=base", "--track-gate", "*/accuracy:drop<=0")
    assert result.ret == 1
    params = [json.loads(p.read_text("utf-8")) for p in (suite.path / "runs").rglob("params.json")]
    session = [p for p in params if "gate_verdict" in p]
    assert len(session) == 1 and session[0]["gate_verdict"] == "fail"
    metrics = [p for p in (suite.path / "runs").rglob("metrics.json")
               if "gate/passed" in p.read_text("utf-8")]
    assert len(metrics) == 1
    assert list((suite.path / "runs").rglob("gate.json"))


def test_the_same_verdict_under_xdist(suite: pytest.Pytester) -> None:
    args = ("--track-exit=gate", "--track-baseline=base", "--track-gate", "*/accuracy:drop<=0",
            "--track-gate", "regressions<=3")
    run(suite, 5, "--track-records=one", *args)
    run(suite, 5, "--track-records=two", "-n", "2", *args)
    assert (suite.path / "one" / "gate.json").read_bytes() == (
        suite.path / "two" / "gate.json").read_bytes()


def test_ctrl_c_exits_2_without_a_verdict(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_model=textwrap.dedent(SUITE) + textwrap.dedent("""
        import time
        def test_zz_wait():
            open("started", "w").close()
            time.sleep(60)
    """))
    env = {**os.environ, "FLIPS": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--track-records=cand", "--track-gate", "*/accuracy>=0.99"],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = pytester.path / "started"
    try:
        for _ in range(600):
            if started.exists():
                break
            if process.poll() is not None:
                break
            import time
            time.sleep(0.1)
        assert started.exists()
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, out
    assert "gate passed" not in out and "gate FAILED" not in out
    assert not (pytester.path / "cand" / "gate.json").exists()
