"""One session run, one nested run per module, outcome metrics and statuses."""

from __future__ import annotations

import json

import pytest
from local_runs import only_session, sessions


def test_session_run_has_one_nested_run_per_module_named_by_its_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**{
        "evals/test_qa": "def test_a(): pass",
        "evals/deep/test_sentiment": "def test_b(): pass",
    })
    pytester.runpytest("--track", "local", "--track-run-name", "nightly").assert_outcomes(passed=2)

    session = only_session(pytester.path / "experiments")
    assert session.run.name == "nightly"
    assert set(session.modules) == {"evals/test_qa.py", "evals/deep/test_sentiment.py"}
    for module in session.modules.values():
        assert module.data["metadata"]["parent_run_id"] == session.run.data["metadata"]["run_id"]
        assert module.path.parent.parent == session.run.path  # <session>/children/<module>


def test_outcome_metrics_and_statuses(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_green="def test_a(): pass\ndef test_b(): pass",
        test_mixed="""
            import pytest

            @pytest.fixture
            def broken():
                raise RuntimeError("setup fails")

            def test_pass(): pass
            def test_fail(): assert False
            def test_skip(): pytest.skip("later")
            def test_error(broken): pass
            @pytest.mark.xfail(reason="known")
            def test_xfail(): assert False
        """,
    )
    pytester.runpytest("--track", "local").assert_outcomes(
        passed=3, failed=1, skipped=1, errors=1, xfailed=1)

    session = only_session(pytester.path / "experiments")
    green, mixed = session.modules["test_green.py"], session.modules["test_mixed.py"]
    assert green.status == "finished"
    assert green.metrics["tests_total"] == 2 and green.metrics["pass_rate"] == 1.0
    assert mixed.status == "failed"
    assert {k: mixed.metrics[k] for k in ("tests_total", "tests_passed", "tests_failed",
                                          "tests_skipped", "tests_errors")} == {
        "tests_total": 5, "tests_passed": 1, "tests_failed": 1, "tests_skipped": 2,
        "tests_errors": 1}
    assert mixed.metrics["pass_rate"] == pytest.approx(1 / 3)
    assert mixed.metrics["duration_seconds"] >= 0
    assert session.run.status == "failed"
    assert session.run.metrics["tests_total"] == 7
    assert session.run.metrics["tests_passed"] == 3


def test_teardown_errors_fail_the_module_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_td="""
        import pytest

        @pytest.fixture
        def leaky():
            yield
            raise RuntimeError("teardown fails")

        def test_a(leaky): pass
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1, errors=1)
    module = only_session(pytester.path / "experiments").modules["test_td.py"]
    assert module.status == "failed"
    assert module.metrics["tests_errors"] == 1


def test_a_module_run_ends_as_soon_as_its_tests_are_done(pytester: pytest.Pytester) -> None:
    # test_b runs after test_a.py's only test: by then that module's run must be final.
    pytester.makepyfile(
        test_a="def test_first(): pass",
        test_b="""
            import json, pathlib

            def test_later():
                project = pathlib.Path("experiments/insideLLMs")
                (session,) = [p for p in project.iterdir() if p.is_dir()]
                state = json.loads((session / "children/test_a.py/final_state.json").read_text())
                assert state["status"] == "finished"
                assert not (session / "final_state.json").exists()
        """,
    )
    pytester.runpytest("--track", "local", "-p", "no:randomly").assert_outcomes(passed=2)


def test_results_stream_into_the_journal_while_the_session_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_stream="""
        import json, pathlib
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        def test_first():
            return ExperimentResult("e", ModelInfo("m", "p", "i"), "probe", ProbeCategory.LOGIC,
                                    [ProbeResult("q")])

        def test_second():
            (journal,) = pathlib.Path("experiments").glob("*/*/children/*/journal.jsonl")
            logged = [json.loads(line) for line in journal.read_text().splitlines()]
            assert any("test_first/total_count" in e.get("metrics", {}) for e in logged)
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=2)


def test_tags_and_notes_reach_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass")
    pytester.runpytest("--track", "local", "--track-tags", "nightly, gpt-4",
                       "--track-notes", "baseline run").assert_outcomes(passed=1)
    session = only_session(pytester.path / "experiments")
    for run in (session.run, *session.modules.values()):
        assert run.data["metadata"]["tags"] == ["nightly", "gpt-4"]
        assert run.data["metadata"]["notes"] == "baseline run"


def test_session_params_identify_the_command_and_versions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass")
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)
    params = only_session(pytester.path / "experiments").run.params
    assert "--track local" in params["pytest_command"]
    assert params["pytest_version"] == pytest.__version__
    assert params["rootdir"] == str(pytester.path)
    assert params["xdist_workers"] == 0


def test_no_tests_selected_means_no_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass")
    pytester.runpytest("--track", "local", "-k", "nothing_matches")
    assert sessions(pytester.path / "experiments") == []


def test_every_run_file_is_strict_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nan="""
        def test_nan(tracker):
            tracker.log_metrics({"loss": float("nan"), "gain": float("inf")})
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)

    def reject(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    files = list((pytester.path / "experiments").rglob("*.json"))
    assert files
    for path in files:
        json.loads(path.read_text(), parse_constant=reject)
