"""A run's status says how its session ended: ``killed`` only for signals; a session that
stops itself ends ``failed`` or ``finished`` by its outcomes."""

from __future__ import annotations

import pytest
from local_runs import only_session

TWO_MODULES = {
    "test_a": """
        def test_fails():
            assert False

        def test_passes():
            pass
    """,
    "test_b": """
        def test_later():
            pass
    """,
}


# pytest's own exit code: --sw and xdist's maxfail stop through session.Interrupted (2).
@pytest.mark.parametrize("args, code", [
    (["-x"], pytest.ExitCode.TESTS_FAILED),
    (["-n", "2", "-x"], pytest.ExitCode.INTERRUPTED),
    (["--sw"], pytest.ExitCode.INTERRUPTED),
], ids=["x", "xdist-x", "stepwise"])
def test_a_session_that_stops_on_a_failure_is_failed_not_killed(
    pytester: pytest.Pytester, args: list[str], code: pytest.ExitCode
) -> None:
    pytester.makepyfile(**TWO_MODULES)
    result = pytester.runpytest_subprocess("--track", "local", "-p", "no:randomly", *args)
    assert result.ret == code
    session = only_session(pytester.path / "experiments")
    assert session.run.status == "failed"
    assert {m.status for m in session.modules.values()} <= {"failed", "finished"}


def test_pytest_exit_with_code_0_ends_the_runs_finished(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_exit="""
        import pytest

        def test_first():
            pass

        def test_stops():
            pytest.exit("enough", returncode=0)

        def test_never():
            pass
    """)
    result = pytester.runpytest_subprocess("--track", "local", "-p", "no:randomly")
    assert result.ret == 0
    session = only_session(pytester.path / "experiments")
    assert session.run.status == "finished"
    assert session.modules["test_exit.py"].status == "finished"


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_forked_children_see_the_signal_handlers_they_would_without_the_plugin(
    pytester: pytest.Pytester, tracked: bool
) -> None:
    pytester.makepyfile(test_fork="""
        import multiprocessing, signal, time

        def sleep():
            time.sleep(30)

        def test_first():
            pass  # the session's runs (and the plugin's signal handlers) exist from here on

        def test_terminate_a_child():
            process = multiprocessing.get_context("fork").Process(target=sleep)
            process.start()
            time.sleep(0.2)
            process.terminate()
            process.join(10)
            assert process.exitcode == -signal.SIGTERM
    """)
    args = ["--track", "local"] if tracked else []
    pytester.runpytest_subprocess(*args, "-p", "no:randomly").assert_outcomes(passed=2)
