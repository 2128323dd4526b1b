"""What real CI sessions do to the plugin, each once broke something (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import INNER_INI
from local_runs import only_session


@pytest.mark.parametrize("hook", ["pytest_insidellms_session_params",
                                  "pytest_insidellms_session_tags",
                                  "pytest_insidellms_result"])
def test_a_raising_hook_is_a_tracking_problem_not_an_internal_error(
    pytester: pytest.Pytester, hook: str
) -> None:
    pytester.makeconftest(f"""
        def {hook}(**kwargs):
            raise RuntimeError("hook broke")
    """)
    pytester.makepyfile(test_one="""
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult

        def test_returns():
            return ExperimentResult(experiment_id="e", model_info=ModelInfo("m", "p", "m"),
                                    probe_name="qa", probe_category=ProbeCategory.LOGIC,
                                    results=[ProbeResult(input="x")])

        def test_after():
            pass
    """)
    result = pytester.runpytest("--track", "local", "-W", "ignore::pytest.PytestWarning")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"*hooks: 1 problem(s), first: *{hook}*hook broke*"])
    session = only_session(pytester.path / "experiments")
    assert session.run.status == "finished"
    assert session.modules["test_one.py"].metrics["tests_total"] == 2
    assert "test_returns/total_count" in session.modules["test_one.py"].metrics


def test_collection_errors_count_and_fail_the_session_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_good="def test_ok():\n    pass\n",
                        test_broken="import no_such_module_here\n")
    result = pytester.runpytest("--track", "local", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    session = only_session(pytester.path / "experiments")
    assert session.run.status == "failed"
    assert session.run.metrics["tests_errors"] == 1
    assert session.modules["test_broken.py"].status == "failed"
    assert session.modules["test_good.py"].status == "finished"


def test_a_failure_with_a_teardown_error_counts_both_as_pytest_does(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_both="""
        import pytest

        @pytest.fixture
        def breaks_on_teardown():
            yield
            raise RuntimeError("teardown")

        def test_fails(breaks_on_teardown):
            assert False
    """)
    result = pytester.runpytest("--track", "local")
    result.assert_outcomes(failed=1, errors=1)
    m = only_session(pytester.path / "experiments").modules["test_both.py"].metrics
    assert (m["tests_total"], m["tests_failed"], m["tests_errors"]) == (1, 1, 1)
    assert m["pass_rate"] == 0.0


def test_an_all_skipped_module_has_no_pass_rate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skipped="""
        import pytest

        @pytest.mark.skip(reason="later")
        def test_later():
            pass
    """, test_ran="def test_ok():\n    pass\n")
    pytester.runpytest("--track", "local").assert_outcomes(passed=1, skipped=1)
    session = only_session(pytester.path / "experiments")
    skipped = session.modules["test_skipped.py"].metrics
    assert skipped["tests_skipped"] == 1 and "pass_rate" not in skipped
    assert session.run.metrics["pass_rate"] == 1.0


def test_marker_params_of_any_type_travel_to_the_xdist_controller(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_params="""
        import enum, pathlib
        import numpy as np
        import pytest

        class Split(enum.Enum):
            TEST = "test"

        @pytest.mark.experiment(name="qa", params={"data": pathlib.Path("d/v3.jsonl"),
                                                   "split": Split.TEST, "k": np.int64(5)})
        @pytest.mark.parametrize("case", range(4))
        def test_case(case):
            pass
    """)
    result = pytester.runpytest_subprocess("--track", "local", "-n", "2")
    result.assert_outcomes(passed=4)
    assert "INTERNALERROR" not in result.stdout.str()
    params = only_session(pytester.path / "experiments").modules["test_params.py"].params
    assert (params["qa/data"], params["qa/split"], params["qa/k"]) == ("d/v3.jsonl", "test", 5)


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_a_non_string_marker_param_key_errors_the_test_tracked_or_not(
    pytester: pytest.Pytester, tracked: bool
) -> None:
    pytester.makepyfile(test_key="""
        import pytest

        @pytest.mark.experiment(params={1: "one"})
        def test_case():
            pass
    """)
    result = pytester.runpytest(*(["--track", "local"] if tracked else []))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*experiment(params=...)*names must be strings*"])


FLAKY = """
import pathlib
import pytest

def attempt(name):
    marker = pathlib.Path(name)
    first = not marker.exists()
    marker.write_text("seen")
    return first

@pytest.mark.experiment(name="qa")
@pytest.mark.parametrize("case", ["a", "b", "flaky"])
def test_case(case):
    if case == "flaky":
        assert not attempt("flaky.seen"), "fails on the first attempt only"

def test_last_of_module():
    assert not attempt("last.seen"), "fails on the first attempt only"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_reruns_count_the_final_attempt_only(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_flaky=FLAKY)
    result = pytester.runpytest_subprocess("--track", "local", "--reruns", "1",
                                           "-p", "no:randomly", *workers)
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun"), outcomes.get("failed")) == (4, 2, None)
    session = only_session(pytester.path / "experiments")
    assert list(session.modules) == ["test_flaky.py"]  # one module run, not split
    module = session.modules["test_flaky.py"]
    m = module.metrics
    assert (m["tests_total"], m["tests_passed"], m["tests_failed"]) == (4, 4, 0)
    assert m["pass_rate"] == 1.0 and m["tests_reruns"] == 2
    assert m["qa/total_count"] == 3 and m["qa/accuracy"] == 1.0
    # the experiment was logged once, from the final attempts
    assert [v for _, v in module.history("qa/total_count")] == [3.0]
    assert module.status == "finished" and session.run.status == "finished"


def test_dist_each_gives_one_module_run_with_every_workers_copy_as_a_case(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_each="""
        import pytest

        @pytest.mark.experiment(name="qa")
        @pytest.mark.parametrize("case", ["a", "b", "c"])
        def test_case(case):
            assert case != "c"
    """)
    result = pytester.runpytest_subprocess("--track", "local", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4, failed=2)
    session = only_session(pytester.path / "experiments")
    assert list(session.modules) == ["test_each.py"]
    m = session.modules["test_each.py"].metrics
    assert (m["tests_total"], m["tests_passed"], m["tests_failed"]) == (6, 4, 2)
    assert m["qa/total_count"] == 6 and m["qa/accuracy"] == pytest.approx(4 / 6)
    assert [v for _, v in session.modules["test_each.py"].history("qa/total_count")] == [6.0]


def test_cases_whose_ids_the_key_rules_map_alike_never_collide(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_ids="""
        import pytest
        from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult
        from pytest_insidellms import ResultStatus

        @pytest.mark.parametrize("expr, ok", [("2+2", True), ("2*2", False), ("a/b", True),
                                              ("plain", True)])
        def test_math(expr, ok):
            status = ResultStatus.SUCCESS if ok else ResultStatus.ERROR
            return ExperimentResult(experiment_id=expr, model_info=ModelInfo("m", "p", "m"),
                                    probe_name="math", probe_category=ProbeCategory.LOGIC,
                                    results=[ProbeResult(input=expr, status=status)])
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=4)
    module = only_session(pytester.path / "experiments").modules["test_ids.py"]
    rates = {k.removesuffix("/success_rate"): v for k, v in module.metrics.items()
             if k.endswith("/success_rate")}
    assert len(rates) == 4
    assert rates["test_math/plain-True"] == 1.0  # a clean id is kept as it is
    assert sorted(rates.values()) == [0.0, 1.0, 1.0, 1.0]
    ids = {module.params[f"{prefix}/experiment_id"] for prefix in rates}
    assert ids == {"2+2", "2*2", "a/b", "plain"}


@pytest.mark.parametrize("breakage", ["staging-is-a-file", "disk-full"])
def test_an_artifact_the_track_dir_cannot_take_is_a_tracking_problem_not_a_failure(
    pytester: pytest.Pytester, breakage: str
) -> None:
    pytester.makepyfile(test_art=f"""
        import errno, pathlib, shutil

        def test_logs(tracker, tmp_path, monkeypatch):
            source = tmp_path / "out.txt"
            source.write_text("x")
            if {breakage!r} == "disk-full":
                def full(*args, **kwargs):
                    raise OSError(errno.ENOSPC, "No space left on device")
                monkeypatch.setattr(shutil, "copy2", full)
            else:
                pathlib.Path("experiments").mkdir(exist_ok=True)
                pathlib.Path("experiments/.staging").write_text("not a directory")
            tracker.log_artifact(source)
            tracker.log_metrics({{"after": 1.0}})
    """)
    result = pytester.runpytest("--track", "local", "-W", "ignore::pytest.PytestWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tracker fixture: 1 problem(s), first: *out.txt* not logged*"])
    module = only_session(pytester.path / "experiments").modules["test_art.py"]
    assert module.metrics["test_logs/after"] == 1.0  # what came after is logged
    assert module.data["artifacts"] == []
    staging = pytester.path / "experiments" / ".staging"
    assert not staging.is_dir() or not any(staging.iterdir())


def test_the_track_dir_is_never_collected_and_ignores_itself_in_git(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_art="""
        def test_logs(tracker, tmp_path):
            source = tmp_path / "test_sneaky.py"
            source.write_text("def test_inside():\\n    assert False\\n")
            tracker.log_artifact(source)
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)
    track_dir = pytester.path / "experiments"
    assert list(track_dir.rglob("test_sneaky.py"))  # the artifact is stored as a .py file
    assert (track_dir / ".gitignore").read_text().splitlines()[-1] == "*"
    again = pytester.runpytest()  # the next plain run does not collect it
    again.assert_outcomes(passed=1)
    assert "import file mismatch" not in again.stdout.str()


def test_an_existing_track_dir_is_left_as_the_user_has_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_ok():\n    pass\n")
    pytester.runpytest("--track", "local", "--track-dir=.").assert_outcomes(passed=1)
    assert not (pytester.path / ".gitignore").exists()
    pytester.runpytest().assert_outcomes(passed=1)  # the project itself still collects


LATE = """
import threading, time

def test_leaves_a_thread(tracker):
    def later():
        time.sleep(0.3)
        tracker.log_metrics({"late_metric": 1.0})
    threading.Thread(target=later).start()

def test_keeps_the_module_open():
    time.sleep(1.0)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["single", "xdist"])
def test_a_fixture_call_from_a_thread_after_its_test_is_logged_while_the_module_is_open(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_late=LATE)
    result = pytester.runpytest_subprocess("--track", "local", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=2)
    module = only_session(pytester.path / "experiments").modules["test_late.py"]
    assert module.metrics["test_leaves_a_thread/late_metric"] == 1.0


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["single", "xdist"])
def test_a_fixture_call_after_its_module_run_ended_is_reported_not_dropped_silently(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_a_late="""
        import threading, time

        def test_leaves_a_thread(tracker):
            def later():
                time.sleep(0.5)
                tracker.log_metrics({"too_late": 1.0})
            threading.Thread(target=later).start()
    """, test_b_other="""
        import time

        def test_meanwhile():
            time.sleep(1.0)

        def test_after():
            pass
    """)
    result = pytester.runpytest_subprocess("--track", "local", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*tracker fixture: 1 problem(s)*test_a_late.py*after the test*"])
    module = only_session(pytester.path / "experiments").modules["test_a_late.py"]
    assert "too_late" not in module.metrics


def test_hypothesis_tests_log_through_shared_tracker_and_pass_the_health_check(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_props="""
        from hypothesis import given, settings, strategies as st

        @settings(max_examples=5, database=None)
        @given(st.integers(0, 100))
        def test_property(shared_tracker, n):
            shared_tracker.log_metrics({"n_seen": float(n)})

        @given(st.integers())
        def test_with_the_function_scoped_fixture(tracker, n):
            pass
    """)
    result = pytester.runpytest("--track", "local", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*function_scoped_fixture*"])  # why shared_tracker exists
    module = only_session(pytester.path / "experiments").modules["test_props.py"]
    assert len(module.history("test_property/n_seen")) == 5


def test_log_code_stores_module_sources_and_auto_log_metrics_false_drops_outcomes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", tracking="log_code: true\nauto_log_metrics: false\n")
    pytester.makepyfile(test_src="def test_ok(tracker):\n    tracker.log_metrics({'m': 1.0})\n")
    pytester.runpytest("--track", "local", "--track-config", "tracking.yaml").assert_outcomes(
        passed=1)
    session = only_session(pytester.path / "experiments")
    module = session.modules["test_src.py"]
    assert module.metrics == {"test_ok/m": 1.0}  # the test's own metric, no tests_* counts
    assert "tests_total" not in session.run.metrics
    (artifact,) = module.data["artifacts"]
    assert (artifact["name"], artifact["type"]) == ("code/test_src.py", "code")
    stored = module.path / "artifacts" / "code" / "test_src.py"
    assert stored.read_text() == (pytester.path / "test_src.py").read_text()


def test_600_modules_in_a_random_global_order_under_a_low_open_file_limit(
        tmp_path: Path) -> None:
    """Issue 11 item 2 as users met it: every module run stays open until its last test, and
    a shuffled order keeps hundreds open at once; under `ulimit -n 256` (macOS's default)
    no test may fail and no stray run may appear."""
    import resource

    modules = 600
    for index in range(modules):
        (tmp_path / f"test_m{index:03d}.py").write_text(
            "def test_a(tracker):\n    tracker.log_metrics({'x': 1.0})\n\n"
            "def test_b():\n    pass\n", "utf-8")
    (tmp_path / "pytest.ini").write_text(INNER_INI, "utf-8")  # warnings are errors
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import random

        def pytest_collection_modifyitems(items):
            random.Random(11).shuffle(items)
    """), "utf-8")
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDELLMS_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--track", "local", "--track-dir=runs"],
        cwd=tmp_path, env=env, preexec_fn=low_limit, capture_output=True, text=True,
        timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{2 * modules} passed" in done.stdout
    session = only_session(tmp_path / "runs")  # one session run: no junk runs beside it
    assert len(session.modules) == modules
    assert all(run.metrics.get("tests_passed") == 2 for run in session.modules.values())
