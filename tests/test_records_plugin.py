"""``--track-records DIR`` on real pytest sessions: a record per case of every kind, the files
beside each other, the options, the terminal table, and failures that stay tracking problems."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

# Loaded out here once: pytester's in-process runs would import (and unload) them each time.
import pytest_insidellms.session  # noqa: F401
from records_schema import validate_manifest, validate_record, validate_summary

from pytest_insidellms.records import FILES, scores_table

SUITE = {
    "evals/test_kinds": """
        import pytest
        from pytest_insidellms import (ExperimentResult, ModelInfo, ProbeCategory, ProbeResult,
                                       ResultStatus)

        @pytest.mark.experiment(name="qa", model_name="toy", model_id="toy-1")
        @pytest.mark.parametrize("case", ["a", "b", "c", "d"])
        def test_marked(case):
            assert case != "d", "d is wrong"

        def test_returns():
            return ExperimentResult(
                "batch", ModelInfo("big", "acme", "big-2"), "arith", ProbeCategory.LOGIC,
                [ProbeResult({"q": "1+1"}, "2", metadata={"score": 1.0}),
                 ProbeResult({"q": "2+2"}, "5", metadata={"score": 0.0}),
                 ProbeResult({"q": "1/0"}, status=ResultStatus.TIMEOUT, error="timed out")])

        def test_plain(tracker):
            tracker.log_metrics({"ignored_by_records": 1.0})

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known", strict=False)
        def test_xfailed():
            assert False

        @pytest.mark.xfail(reason="fixed since", strict=False)
        def test_xpassed():
            pass

        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")

        def test_setup_error(broken):
            pass
    """,
}
#: Every record of SUITE: case key -> (status, pytest outcome, kind, error_type, error).
EXPECTED = {
    "evals/test_kinds.py::test_marked[a]": ("success", "passed", "experiment", None, None),
    "evals/test_kinds.py::test_marked[b]": ("success", "passed", "experiment", None, None),
    "evals/test_kinds.py::test_marked[c]": ("success", "passed", "experiment", None, None),
    "evals/test_kinds.py::test_marked[d]": (
        "error", "failed", "experiment", "AssertionError",
        "AssertionError: d is wrong\nassert 'd' != 'd'"),
    "evals/test_kinds.py::test_returns#result0": ("success", "passed", "result", None, None),
    "evals/test_kinds.py::test_returns#result1": ("success", "passed", "result", None, None),
    "evals/test_kinds.py::test_returns#result2": ("timeout", "passed", "result", None,
                                                  "timed out"),
    "evals/test_kinds.py::test_plain": ("success", "passed", "test", None, None),
    "evals/test_kinds.py::test_skipped": ("skipped", "skipped", "test", None, None),
    "evals/test_kinds.py::test_xfailed": ("skipped", "xfailed", "test", None, None),
    "evals/test_kinds.py::test_xpassed": ("success", "xpassed", "test", None, None),
    "evals/test_kinds.py::test_setup_error": ("error", "error", "test", "RuntimeError",
                                              "RuntimeError: setup broke"),
}
OUTCOMES = {"passed": 5, "failed": 1, "skipped": 1, "xfailed": 1, "xpassed": 1, "errors": 1}


def read_records(directory: Path) -> dict[str, dict[str, Any]]:
    lines = (directory / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return {r["custom"]["replicate_key"]: r for r in records}


def read_json(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("COLUMNS", "120")  # the table's module column is not cut
    pytester.makepyfile(**SUITE)
    return pytester


# -- what is written ----------------------------------------------------------------------------


@pytest.mark.parametrize("track", [[], ["--track", "local"]], ids=["records-alone", "tracked"])
def test_each_case_of_every_kind_gives_its_records(suite: pytest.Pytester,
                                                   track: list[str]) -> None:
    result = suite.runpytest("--track-records=out", *track)
    result.assert_outcomes(**OUTCOMES)
    records = read_records(suite.path / "out")
    assert {key: (r["status"], r["custom"]["outcome"], r["custom"]["kind"], r["error_type"],
                  r["error"]) for key, r in records.items()} == EXPECTED
    assert all(validate_record(r) == [] for r in records.values())
    marked = records["evals/test_kinds.py::test_marked[a]"]
    assert (marked["model"]["model_id"], marked["probe"]["probe_id"],
            marked["example_id"]) == ("toy-1", "qa", "a")
    returned = records["evals/test_kinds.py::test_returns#result1"]
    assert (returned["input"], returned["output"], returned["scores"],
            returned["model"]["model_id"]) == ({"q": "2+2"}, "5", {"score": 0.0}, "big-2")
    manifest = read_json(suite.path / "out" / "manifest.json")
    assert validate_manifest(manifest) == []
    assert (manifest["record_count"], manifest["run_completed"]) == (12, True)
    # The run id hashes the collected node ids: the 10 tests (test_marked has 4 cases).
    assert manifest["custom"]["collected_count"] == 10
    assert validate_summary(read_json(suite.path / "out" / "summary.json")) == []


def test_records_alone_write_the_run_files_and_tracking_json_and_nothing_else(
        suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=out").assert_outcomes(**OUTCOMES)
    assert sorted(p.name for p in (suite.path / "out").iterdir()) == sorted(
        [*FILES, "tracking.json"])
    assert not (suite.path / "experiments").exists()  # no backend, no track dir
    tracking = read_json(suite.path / "out" / "tracking.json")
    manifest = read_json(suite.path / "out" / "manifest.json")
    assert tracking["run_id"] == manifest["run_id"]
    assert tracking["backends"] == {}
    assert set(tracking["cases"]) >= {"evals/test_kinds.py::test_marked[d]",
                                      "evals/test_kinds.py::test_returns"}
    assert tracking["cases"]["evals/test_kinds.py::test_plain"]["latency_ms"] >= 0
    assert tracking["session"]["stopped"] >= tracking["session"]["started"]


def test_deselection_does_not_change_the_run_id_but_a_new_test_does(
        suite: pytest.Pytester) -> None:
    def run_id(*args: str) -> str:
        suite.runpytest("--track-records=out", *args)
        return str(read_json(suite.path / "out" / "manifest.json")["run_id"])

    everything = run_id()
    assert run_id("-k", "marked") == everything
    assert run_id("--deselect", "evals/test_kinds.py::test_plain") == everything
    assert len(read_records(suite.path / "out")) == 11
    suite.makepyfile(**{"evals/test_more": "def test_new():\n    pass\n"})
    assert run_id("evals/test_kinds.py") == everything
    assert run_id() != everything


def test_a_stopped_session_says_so_in_its_manifest(suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=out", "-x")
    manifest = read_json(suite.path / "out" / "manifest.json")
    assert manifest["run_completed"] is False
    assert manifest["record_count"] == len(read_records(suite.path / "out")) < 12


def test_collect_only_writes_nothing(suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=out", "--collect-only")
    assert not (suite.path / "out").exists()


# -- options ------------------------------------------------------------------------------------


def test_records_dir_from_ini_is_relative_to_the_ini_file(suite: pytest.Pytester) -> None:
    (suite.path / "conf").mkdir()
    ini = suite.path / "conf" / "tox.ini"
    ini.write_text((suite.path / "tox.ini").read_text().rstrip()
                   + "\ninsidellms_track_records = ../from-ini\n")
    suite.runpytest("-c", str(ini), "--rootdir", str(suite.path)).assert_outcomes(**OUTCOMES)
    assert len(read_records(suite.path / "from-ini")) == 12


def test_command_line_beats_environment_beats_ini(suite: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with (suite.path / "tox.ini").open("a") as ini:
        ini.write("\ninsidellms_track_records = from-ini\n")
    monkeypatch.setenv("INSIDELLMS_TRACK_RECORDS", str(suite.path / "from-env"))
    suite.runpytest("--track-records", str(suite.path / "from-cli"))
    suite.runpytest()
    monkeypatch.delenv("INSIDELLMS_TRACK_RECORDS")
    suite.runpytest()
    for name in ("from-cli", "from-env", "from-ini"):
        assert len(read_records(suite.path / name)) == 12, name


def test_no_track_turns_records_off_unless_they_come_from_a_stronger_source(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDELLMS_TRACK_RECORDS", str(suite.path / "env-records"))
    suite.runpytest("--no-track")
    assert not (suite.path / "env-records").exists()
    monkeypatch.setenv("INSIDELLMS_NO_TRACK", "1")
    suite.runpytest("--track-records=cli-records")
    assert (suite.path / "cli-records" / "records.jsonl").exists()
    suite.runpytest()  # a tie: --no-track wins
    assert not (suite.path / "env-records").exists()


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--track-records="], {}, "--track-records: expected a path, got an empty value"),
    (["--track-records=afile"], {}, "--track-records: "),
    ([], {"INSIDELLMS_TRACK_RECORDS": "afile"}, "environment variable INSIDELLMS_TRACK_RECORDS: "),
])
def test_a_bad_records_dir_is_a_usage_error_naming_its_source(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str],
        env: dict[str, str], message: str) -> None:
    (suite.path / "afile").write_text("not a directory")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    if "afile" in "".join(args) + "".join(env.values()):
        result.stderr.fnmatch_lines(["*afile is a file, not a directory*"])


# -- the terminal -------------------------------------------------------------------------------


def wilson(passes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = passes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_the_summary_shows_where_the_records_are_and_a_scores_table(
        suite: pytest.Pytester) -> None:
    result = suite.runpytest("--track-records=out")
    manifest = read_json(suite.path / "out" / "manifest.json")
    out = result.stdout.str()
    assert f"insidellms: records to {suite.path / 'out'}" in out  # the header
    assert (f"records: {suite.path / 'out'} (12 record(s), run id {manifest['run_id']})"
            in out)
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()
            if line.startswith("evals/test_kinds.py ")}
    # qa: 3 of 4; arith: 2 successes of 3 that ran (the timeout is not one); plain tests: 2
    # of the 3 that ran (skipped and xfailed are no evidence either way), 2 of 5 records.
    for key, (cases, passes, ran, errors) in {("evals/test_kinds.py", "qa"): (4, 3, 4, 1),
                                              ("evals/test_kinds.py", "arith"): (3, 2, 3, 1),
                                              ("evals/test_kinds.py", "(tests)"): (5, 2, 3, 1),
                                              }.items():
        low, high = wilson(passes, ran)
        assert rows[key] == [str(cases), f"{100 * passes / ran:.1f}%",
                             f"[{100 * low:.1f},", f"{100 * high:.1f}]",
                             f"{100 * passes / cases:.1f}%", str(errors)], rows
    assert "module" in out and "accuracy [95% CI]" in out


def test_tracking_alone_shows_the_table_and_writes_no_records(suite: pytest.Pytester) -> None:
    alone = suite.runpytest("--track", "local").stdout.str()
    assert "records:" not in alone
    assert not any(p.name == "records.jsonl" for p in (suite.path / "experiments").rglob("*"))
    suite.runpytest("--track", "local", "--track-dir=other", "--track-records=out")
    table = scores_table(read_json(suite.path / "out" / "summary.json"), width=120)
    assert table and all(line in alone for line in table)


def test_a_long_suite_shows_its_worst_rows_and_counts_the_rest(
        pytester: pytest.Pytester) -> None:
    for module in range(20):
        pytester.makepyfile(**{f"test_m{module:02d}": f"""
            import pytest

            @pytest.mark.experiment(name="e{module:02d}")
            @pytest.mark.parametrize("case", range(4))
            def test_case(case):
                assert case < {module % 5}
        """})
    out = pytester.runpytest("--track-records=out", "-q", "--tb=no").stdout.str()
    rows = [line for line in out.splitlines() if re.match(r"test_m[0-9]+\.py +e[0-9]+ ", line)]
    # 15 rows: the four modules at 0% (module % 5 == 0), then the 25% ones, ...
    assert len(rows) == 15
    assert "... and 5 more experiments" in out
    shown = [row.split()[1] for row in rows]
    assert shown[:4] == ["e00", "e05", "e10", "e15"]
    assert "e04" not in shown and "e19" not in shown


# -- failures stay tracking problems --------------------------------------------------------------


def test_a_records_dir_that_cannot_be_written_is_a_problem_not_a_failure(
        suite: pytest.Pytester) -> None:
    blocker = suite.path / "blocker"
    blocker.write_text("a file where a directory should go")
    result = suite.runpytest("--track-records", str(blocker / "out"))
    result.assert_outcomes(**OUTCOMES)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*records: 1 problem(s), first: *Error*"])
    strict = suite.runpytest("--track-records", str(blocker / "out"), "--track-strict",
                             "-k", "test_plain")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR


def test_two_cases_with_one_key_are_a_problem(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_twice="def test_once():\n    pass\n")
    result = pytester.runpytest("--track-records=out", "--keep-duplicates",
                                "test_twice.py", "test_twice.py")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*records: 1 problem(s), first: ValueError: two records share the case key*"])
    assert not (pytester.path / "out" / "records.jsonl").exists()


# -- the example suite, as its README runs it ---------------------------------------------------


def documented_command() -> list[str]:
    from test_examples import EVALS, ROOT

    readme = (EVALS / "README.md").read_text()
    (command,) = [line for line in readme.splitlines() if "--track-records=" in line]
    quick_start = (ROOT / "README.md").read_text()
    assert command in quick_start, "the quick start and the example's README disagree"
    args = command.split()
    assert args[0] == "pytest"
    return args[1:]


def test_the_example_suite_writes_the_records_its_readme_describes(tmp_path: Path) -> None:
    from test_examples import OUTCOMES as EXAMPLE_OUTCOMES
    from test_examples import run_pytest

    records_dir, track_dir = tmp_path / "records", tmp_path / "runs"
    args = [f"--track-records={records_dir}" if a.startswith("--track-records=") else a
            for a in documented_command()]
    process = run_pytest(*args, f"--track-dir={track_dir}")
    assert EXAMPLE_OUTCOMES in process.stdout, process.stdout + process.stderr
    records = read_records(records_dir)
    assert len(records) == 75
    by_experiment = {(e["module"].rsplit("/", 1)[-1], e["experiment"]): e
                     for e in read_json(records_dir / "summary.json")["summary"]["experiments"]}
    sentiment = by_experiment[("test_sentiment.py", "sentiment")]
    assert (sentiment["cases"], sentiment["ran"], sentiment["passes"]) == (17, 16, 13)
    assert by_experiment[("test_sentiment.py", "name_swap")]["passes"] == 4
    qa = by_experiment[("test_qa.py", "closed_book_qa")]
    # 7 + 12 right answers of the 15 + 15 each variant gave (one prompt is too long).
    assert qa["scores"]["score"] == {"mean": (7 + 12) / 30, "n": 30}
    from local_runs import only_session

    params = only_session(track_dir).run.params
    assert params["records_sha256"] == hashlib.sha256(
        (records_dir / "records.jsonl").read_bytes()).hexdigest()


def test_dist_each_writes_one_record_per_workers_copy(pytester: pytest.Pytester) -> None:
    import json

    pytester.makepyfile(test_each="def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("--track-records=records", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4)
    assert "problem(s)" not in result.stdout.str()
    lines = (pytester.path / "records" / "records.jsonl").read_text().splitlines()
    keys = sorted(json.loads(line)["custom"]["replicate_key"] for line in lines)
    assert keys == ["test_each.py::test_a@gw0", "test_each.py::test_a@gw1",
                    "test_each.py::test_b@gw0", "test_each.py::test_b@gw1"]
