"""What a tracked session shows and records about itself: header, summary, failures of a
backend, the JUnit XML property and the session params."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from local_runs import only_session

import pytest_insidellms

SUITE = """
import pytest
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult


def test_returns_a_result():
    return ExperimentResult(
        experiment_id="qa-1", model_info=ModelInfo(name="toy", provider="local", model_id="t"),
        probe_name="qa", probe_category=ProbeCategory.FACTUALITY,
        results=[ProbeResult(input="q", output="a")],
    )


@pytest.mark.experiment(name="cases")
@pytest.mark.parametrize("case", ["a", "b"])
def test_case(case, tracker):
    tracker.log_metrics({"seen": 1.0})


def test_fails():
    assert False
"""

#: The library's recording backend, failing every call of one kind, provided through the hook.
BROKEN_BACKEND = """
from pytest_insidellms.testing import RecordingTracker

FAIL_IN = {fail_in!r}
FAILURES = {{"metrics": ("log_metrics", RuntimeError("metrics endpoint down")),
             "open": ("start_run", ConnectionError("cannot reach the tracking server"))}}


def pytest_insidellms_make_tracker(name, tracking, track_dir, backend_settings, config):
    if name != "broken":
        return None
    if FAIL_IN == "construct":
        raise ConnectionError("cannot reach the tracking server")
    operation, error = FAILURES[FAIL_IN]
    return RecordingTracker(tracking, backend_name="broken", fail_on={{operation}}, error=error)
"""
FAILURE_TEXT = {"metrics": "RuntimeError: metrics endpoint down",
                "open": "ConnectionError: cannot reach the tracking server",
                "construct": "ConnectionError: cannot reach the tracking server"}
SHOW_OUR_WARNINGS = ("-W", "default::pytest_insidellms.plugin.InsideLLMsTrackingWarning")
HEADER = re.compile(r"^insidellms:", re.MULTILINE)


def without_plugin_list(output: str) -> str:
    """pytest's own header lists installed plugins by name; the rest is ours to keep quiet."""
    return re.sub(r"^plugins: .*$", "", output, flags=re.MULTILINE)


# -- header --------------------------------------------------------------------------------------


def test_one_header_line_names_backends_project_and_dir(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest("--track", "local,tensorboard", "--track-project", "evals")
    assert len(HEADER.findall(result.stdout.str())) == 1
    track_dir = pytester.path / "experiments"
    result.stdout.fnmatch_lines(
        [f"insidellms: tracking to local, tensorboard (project evals, dir {track_dir})"])


def test_nothing_about_insidellms_is_printed_when_tracking_is_off(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-v", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    out = without_plugin_list(result.stdout.str() + result.stderr.str())
    out = out.replace(str(pytester.path), "<project>").lower()  # the test's name is in it
    assert "insidellms" not in out
    assert "tracking" not in out
    assert not (pytester.path / "experiments").exists()


# -- summary -------------------------------------------------------------------------------------


def test_summary_names_each_backend_location_and_counts_results(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--track", "local", "--track", "tensorboard",
                                "--track-run-name", "nightly")
    result.assert_outcomes(passed=3, failed=1)
    session = only_session(pytester.path / "experiments")
    tensorboard_dir = pytester.path / "experiments" / "tensorboard" / "insideLLMs"
    result.stdout.fnmatch_lines([
        "*- insidellms tracking -*",
        # One returned result plus the marker experiment; four tests.
        "session run nightly: 2 result(s) logged, 4 test(s) tracked",
        f"  local: {session.run.path}",
        f"  tensorboard: tensorboard --logdir {tensorboard_dir}",
    ])
    assert session.modules["test_suite.py"].metrics["tests_total"] == 4
    assert "problem" not in result.stdout.str()


# -- a failing backend ------------------------------------------------------------------------------


@pytest.mark.parametrize("warnings_are", ["shown", "errors"])
@pytest.mark.parametrize("fail_in", ["metrics", "open", "construct"])
def test_failing_backend_is_one_warning_and_a_summary_line_and_changes_no_outcome(
    pytester: pytest.Pytester, fail_in: str, warnings_are: str
) -> None:
    pytester.makeconftest(BROKEN_BACKEND.format(fail_in=fail_in))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--track", "local,broken",
                                *(SHOW_OUR_WARNINGS if warnings_are == "shown" else ("-W", "error")))

    result.assert_outcomes(passed=3, failed=1, warnings=1 if warnings_are == "shown" else 0)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # test_fails, as without tracking
    out = result.stdout.str()
    assert "INTERNALERROR" not in out + result.stderr.str()
    warnings = [line for line in out.splitlines() if "InsideLLMsTrackingWarning" in line]
    if warnings_are == "shown":
        (warning,) = warnings
        assert FAILURE_TEXT[fail_in] in warning
    else:
        assert warnings == []
    result.stdout.fnmatch_lines([f"  broken: * problem(s), first: {FAILURE_TEXT[fail_in]}"])
    # The healthy backend got everything.
    session = only_session(pytester.path / "experiments")
    assert session.run.status == "failed"
    assert session.modules["test_suite.py"].metrics["tests_total"] == 4


def test_only_backend_failing_leaves_the_tests_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BROKEN_BACKEND.format(fail_in="open"))
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--track", "broken")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  broken: * problem(s), first: ConnectionError: *"])


def test_track_strict_turns_a_backend_failure_into_exit_code_4_when_tests_pass(
    pytester: pytest.Pytester,
) -> None:
    fail_in = "metrics"
    pytester.makeconftest(BROKEN_BACKEND.format(fail_in=fail_in))
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("--track", "local,broken", "--track-strict")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"  broken: * problem(s), first: {FAILURE_TEXT[fail_in]}"])
    # A failing test keeps its own exit code.
    pytester.makepyfile(test_bad="def test_bad():\n    assert False\n")
    assert pytester.runpytest("--track", "local,broken",
                              "--track-strict").ret == pytest.ExitCode.TESTS_FAILED


def test_track_strict_refuses_to_start_with_a_backend_that_cannot_be_built(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BROKEN_BACKEND.format(fail_in="construct"))
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--track", "local,broken", "--track-strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("--track broken: pytest_insidellms_make_tracker failed: "
            "ConnectionError: cannot reach the tracking server") in result.stderr.str()
    assert not (pytester.path / "experiments").exists()


# -- JUnit XML -------------------------------------------------------------------------------------


def junit_properties(path: Path) -> dict[str, str]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def test_junit_xml_carries_the_session_run_id_and_locations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    pytester.runpytest("--track", "local", "--track-run-name", "ci-1234",
                       "--junitxml", "report.xml").assert_outcomes(passed=3, failed=1)
    session = only_session(pytester.path / "experiments")
    properties = junit_properties(pytester.path / "report.xml")
    assert properties["insidellms_session_run"] == session.run.data["metadata"]["run_id"]
    assert properties["insidellms_local"] == str(session.run.path)

    pytester.runpytest("--junitxml", "untracked.xml").assert_outcomes(passed=3, failed=1)
    assert not any(name.startswith("insidellms")
                   for name in junit_properties(pytester.path / "untracked.xml"))


# -- session params -----------------------------------------------------------------------------------

CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_RUN_ID", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY",
                "GITLAB_CI", "CI_JOB_URL", "CI_PIPELINE_URL", "BUILDKITE", "CIRCLECI",
                "JENKINS_URL", "TF_BUILD")


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This suite may itself run in CI: start from an environment that names no provider."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def session_params(pytester: pytest.Pytester, *args: str) -> dict[str, object]:
    pytester.runpytest("--track", "local", *args).assert_outcomes(passed=1)
    return only_session(pytester.path / "experiments").run.params


def test_session_params_identify_command_rootdir_and_versions(
    pytester: pytest.Pytester, no_ci: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    params = session_params(pytester, "-p", "no:randomly", "-k", "ok or fine")
    assert params["pytest_command"] == (
        f"pytest --track local -p no:randomly -k 'ok or fine' --basetemp={pytester.path.parent}"
        "/basetemp")
    assert params["rootdir"] == str(pytester.path)
    assert params["plugin_version"] == pytest_insidellms.__version__
    assert params["pytest_version"] == pytest.__version__
    assert params["python_version"] == platform.python_version()
    assert params["xdist_workers"] == 0
    assert "ci_run_url" not in params
    assert not any(name.startswith("git_") for name in params)  # not a git repository


def test_session_params_count_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    assert session_params(pytester, "-n", "2")["xdist_workers"] == 2


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=Eval Bot", "-c", "user.email=bot@example.com",
                "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


def test_session_params_record_git_commit_branch_and_dirty_flag(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    git(pytester.path, "init", "-q", "-b", "evals-branch")
    git(pytester.path, "add", "test_ok.py", "tox.ini")
    git(pytester.path, "commit", "-q", "-m", "evals")
    commit = git(pytester.path, "rev-parse", "HEAD")

    clean = session_params(pytester)
    assert clean["git_commit"] == commit
    assert clean["git_branch"] == "evals-branch"
    assert clean["git_dirty"] is False  # the untracked experiments/ dir does not count

    pytester.path.joinpath("test_ok.py").write_text("def test_ok():\n    assert True\n")
    shutil.rmtree(pytester.path / "experiments")  # so that only the next session is there
    assert session_params(pytester)["git_dirty"] is True


@pytest.mark.parametrize(("variables", "url"), [
    ({"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.example.com",
      "GITHUB_REPOSITORY": "acme/evals", "GITHUB_RUN_ID": "4242"},
     "https://github.example.com/acme/evals/actions/runs/4242"),
    ({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/evals", "GITHUB_RUN_ID": "7"},
     "https://github.com/acme/evals/actions/runs/7"),
    ({"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example.com/acme/evals/-/jobs/99"},
     "https://gitlab.example.com/acme/evals/-/jobs/99"),
], ids=["github-enterprise", "github", "gitlab"])
def test_session_params_link_the_ci_run(
    pytester: pytest.Pytester, no_ci: pytest.MonkeyPatch, variables: dict[str, str], url: str
) -> None:
    for name, value in variables.items():
        no_ci.setenv(name, value)
    pytester.makepyfile("def test_ok():\n    pass\n")
    assert session_params(pytester)["ci_run_url"] == url


def test_secrets_on_the_command_line_and_in_the_environment_are_not_logged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-abcdefghijklmnopqrstuv"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-envsecretenvsecretenvsecret")
    monkeypatch.setenv("EVAL_DATASET_PATH", "/data/sentinel-7781")  # not secret: still not logged
    pytester.makeconftest("""
def pytest_addoption(parser):
    parser.addoption("--judge-api-key")
""")
    pytester.makepyfile("def test_ok():\n    pass\n")
    params = session_params(pytester, "--track-notes", f"key {key}",
                            "--judge-api-key", "plain-looking-value", f"--track-tags=t,{key}")
    command = str(params["pytest_command"])
    assert "--track-notes 'key ***REDACTED***'" in command
    assert "--judge-api-key '***REDACTED***'" in command
    session = only_session(pytester.path / "experiments")
    assert session.run.data["metadata"]["notes"] == "key ***REDACTED***"
    everything = "".join(p.read_text() for p in (pytester.path / "experiments").rglob("*")
                         if p.is_file())
    for leaked in (key, "plain-looking-value", "sk-envsecret", "sentinel-7781"):
        assert leaked not in everything, leaked
    assert json.dumps(params)  # plain JSON, as every backend needs
