"""The plugin's own hooks, implemented from a conftest.py as a team would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from local_runs import only_session

#: The library's recording backend, provided through the hook; when the session ends, every
#: call it got is written to a JSON-lines file for the test to read.
CALL_LOG_TRACKER = """
import json

import pytest

from pytest_insidellms.testing import RecordingTracker

RECORDERS = []


def pytest_insidellms_make_tracker(name, tracking, track_dir, backend_settings, config):
    if name not in NAMES:
        return None
    # No capabilities: the log holds what reached the backend, not the plugin's flushes.
    tracker = RecordingTracker(tracking, backend_name="calllog", id_format="call-{number}",
                               capabilities=())
    RECORDERS.append((tracker, track_dir, dict(backend_settings)))
    return tracker


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    for tracker, track_dir, settings in RECORDERS:
        track_dir.mkdir(parents=True, exist_ok=True)
        with open(track_dir / "calls.jsonl", "a", encoding="utf-8") as handle:
            for entry in call_log(tracker, settings):
                handle.write(json.dumps(entry, default=str) + "\\n")


def call_log(tracker, settings):
    for operation, run_id, *details in tracker.calls:
        if operation == "start_run":
            name, parent = details
            run = tracker.runs[run_id]
            yield {"kind": "start", "run": run_id, "name": name, "parent": parent,
                   "project": run.project, "tags": run.tags, "settings": settings}
        elif operation == "log_metrics":
            yield {"kind": "metrics", "run": run_id, "metrics": details[0], "step": details[1]}
        elif operation == "log_params":
            yield {"kind": "params", "run": run_id, "params": details[0]}
        elif operation == "log_artifact":
            yield {"kind": "artifact", "run": run_id, "name": details[0].name}
        elif operation == "end_run":
            yield {"kind": "end", "run": run_id, "status": details[0]}
"""


def make_tracker(*names: str) -> str:
    """A conftest whose make_tracker hook answers ``names`` with a recording tracker."""
    return CALL_LOG_TRACKER + f"\nNAMES = {list(names)!r}\n"

RESULT_FACTORY = """
from pytest_insidellms import ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ProbeScore


def make_result(probe):
    return ExperimentResult(
        experiment_id=probe + "-1",
        model_info=ModelInfo(name="toy", provider="local", model_id="toy-1"),
        probe_name=probe,
        probe_category=ProbeCategory.FACTUALITY,
        results=[ProbeResult(input="q", output="a")],
        score=ProbeScore(accuracy=1.0),
    )
"""

#: A module with two returned results and a marker experiment of three cases.
EVALS = """
import pytest
from conftest import make_result


def test_kept():
    return make_result("kept")


def test_dropped():
    return make_result("drop-me")


@pytest.mark.experiment(name="cases", probe_name="qa")
@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_case(case):
    assert case != "c"
"""


def calls(track_dir: Path) -> list[dict[str, Any]]:
    lines = (track_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def merged(entries: list[dict[str, Any]], kind: str, run: str) -> dict[str, Any]:
    """Every metrics or params call of ``run``, merged (later values win)."""
    found: dict[str, Any] = {}
    for entry in entries:
        if entry["kind"] == kind and entry["run"] == run:
            found.update(entry[kind])
    return found


# -- pytest_insidellms_make_tracker ----------------------------------------------------------


def test_make_tracker_hook_provides_a_backend_the_plugin_does_not_know(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(make_tracker("mybackend") + RESULT_FACTORY)
    pytester.makepyfile(test_evals=EVALS)
    result = pytester.runpytest("--track", "mybackend", "--track-run-name", "nightly")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["insidellms: tracking to mybackend (project insideLLMs, *",
                                 "*calllog: calllog://call-1*"])

    entries = calls(pytester.path / "experiments")
    starts = [e for e in entries if e["kind"] == "start"]
    assert [(s["name"], s["parent"]) for s in starts] == [
        ("nightly", None), ("test_evals.py", "call-1")]
    assert merged(entries, "params", "call-1")["pytest_command"].startswith("pytest --track")
    module = merged(entries, "metrics", "call-2")
    assert module["tests_total"] == 5
    assert module["test_kept/success_rate"] == 1.0  # a returned result
    assert module["cases/success_count"] == 2  # the marker experiment
    ends = {e["run"]: e["status"] for e in entries if e["kind"] == "end"}
    assert ends == {"call-1": "failed", "call-2": "failed"}
    assert entries[-1] == {"kind": "end", "run": "call-1", "status": "failed"}
    # Nothing else was asked for, so no local run exists.
    assert not (pytester.path / "experiments" / "insideLLMs").exists()


def test_make_tracker_hook_receives_its_section_of_the_config_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(make_tracker("mybackend"))
    pytester.path.joinpath("tracking.yaml").write_text(
        "project: evals\nbackends:\n  mybackend:\n    endpoint: http://127.0.0.1:9\n    batch: 5\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--track", "mybackend", "--track-config",
                       "tracking.yaml").assert_outcomes(passed=1)
    start = calls(pytester.path / "experiments")[0]
    assert start["project"] == "evals"
    assert start["settings"] == {"endpoint": "http://127.0.0.1:9", "batch": 5}


def test_custom_backend_runs_alongside_the_local_backend(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(make_tracker("mybackend") + RESULT_FACTORY)
    pytester.makepyfile(test_evals=EVALS)
    result = pytester.runpytest("--track", "local", "--track", "mybackend")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["insidellms: tracking to local, mybackend *"])

    local = only_session(pytester.path / "experiments").modules["test_evals.py"]
    entries = calls(pytester.path / "experiments")
    custom = merged(entries, "metrics", "call-2")
    for key in ("tests_total", "tests_passed", "test_kept/success_rate",
                "cases/success_count"):
        assert local.metrics[key] == custom[key], key
    assert local.params == merged(entries, "params", "call-2")


def test_make_tracker_hook_can_replace_a_builtin_backend(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(make_tracker("local"))
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)
    entries = calls(pytester.path / "experiments")
    assert {e["kind"] for e in entries} >= {"start", "metrics", "params", "end"}
    assert not (pytester.path / "experiments" / "insideLLMs").exists()


def test_name_no_hook_provides_is_still_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(make_tracker("mybackend"))
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--track", "theirbackend")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("--track: unknown backend 'theirbackend'; valid: local, mlflow, wandb, tensorboard "
            "(or one provided by a pytest_insidellms_make_tracker hook)") in result.stderr.str()


# -- pytest_insidellms_result ------------------------------------------------------------------

RESULT_HOOK = """

def pytest_insidellms_result(result, nodeid, prefix, config):
    with open("result_hook.jsonl", "a") as handle:
        handle.write(json.dumps([nodeid, prefix, result.probe_name]) + "\\n")
    if result.probe_name == "drop-me" or prefix == DROP_PREFIX:
        return False
    result.probe_name = "enriched-" + result.probe_name
    result.model_info.provider = "provider-from-hook"
    result.score.custom_metrics["judge"] = "gpt-4-judge"
    result.score.custom_metrics["hook_score"] = 0.5
    return None
"""


@pytest.mark.parametrize("drop_prefix", ["", "cases/"], ids=["keep-marker", "drop-marker"])
def test_result_hook_enriches_and_drops_returned_and_aggregated_results(
    pytester: pytest.Pytester, drop_prefix: str
) -> None:
    pytester.makeconftest("import json\n" + RESULT_FACTORY
                          + f"DROP_PREFIX = {drop_prefix!r}\n" + RESULT_HOOK)
    pytester.makepyfile(test_evals=EVALS)
    result = pytester.runpytest("--track", "local")
    result.assert_outcomes(passed=4, failed=1)

    seen = [json.loads(line) for line in
            pytester.path.joinpath("result_hook.jsonl").read_text().splitlines()]
    assert sorted(seen) == sorted([
        ["test_evals.py::test_kept", "test_kept/", "kept"],
        ["test_evals.py::test_dropped", "test_dropped/", "drop-me"],
        ["test_evals.py::cases", "cases/", "qa"],
    ])
    module = only_session(pytester.path / "experiments").modules["test_evals.py"]
    # Enriched: what the hook changed is what was logged.
    assert module.params["test_kept/probe_name"] == "enriched-kept"
    assert module.params["test_kept/model_provider"] == "provider-from-hook"
    assert module.params["test_kept/judge"] == "gpt-4-judge"
    assert module.metrics["test_kept/hook_score"] == 0.5
    # Dropped: nothing at all under its prefix.
    logged = [*module.metrics, *module.params]
    assert not [key for key in logged if key.startswith("test_dropped/")]
    marker_keys = [key for key in logged if key.startswith("cases/")]
    if drop_prefix:
        assert marker_keys == []
        result.stdout.fnmatch_lines(["session run *: 1 result(s) logged, 5 test(s) tracked"])
    else:
        assert module.params["cases/probe_name"] == "enriched-qa"
        assert module.metrics["cases/hook_score"] == 0.5
        assert module.metrics["cases/success_count"] == 2
        result.stdout.fnmatch_lines(["session run *: 2 result(s) logged, 5 test(s) tracked"])
    # Outcome counts never depend on the hook.
    assert module.metrics["tests_total"] == 5


def test_result_hook_is_not_called_without_tracking(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import json\n" + RESULT_FACTORY + "DROP_PREFIX = None\n" + RESULT_HOOK)
    pytester.makepyfile(test_evals=EVALS)
    pytester.runpytest().assert_outcomes(passed=4, failed=1)
    assert not pytester.path.joinpath("result_hook.jsonl").exists()


# -- pytest_insidellms_session_params / _session_tags ----------------------------------------------

SESSION_HOOKS = """
import pytest


def pytest_insidellms_session_params(config):
    return {"dataset": "qa-v3", "temperature": 0.2, "python_version": "from-hook"}


def pytest_insidellms_session_tags(config):
    return ["from-hook", "nightly"]


class OtherPlugin:
    @pytest.hookimpl
    def pytest_insidellms_session_params(self, config):
        return {"judge": "gpt-4"}

    @pytest.hookimpl
    def pytest_insidellms_session_tags(self, config):
        return None  # nothing to add


def pytest_configure(config):
    config.pluginmanager.register(OtherPlugin(), "other-plugin")
"""


def test_session_params_and_tags_hooks_land_in_the_runs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SESSION_HOOKS)
    pytester.makepyfile(test_one="def test_ok():\n    pass\n",
                        test_two="def test_ok():\n    pass\n")
    pytester.runpytest("--track", "local", "--track-tags", "cli-tag").assert_outcomes(passed=2)

    session = only_session(pytester.path / "experiments")
    params = session.run.params
    assert params["dataset"] == "qa-v3"
    assert params["temperature"] == 0.2
    assert params["judge"] == "gpt-4"
    assert params["python_version"] == "from-hook"  # merged over the built-in ones
    assert params["pytest_command"].startswith("pytest --track local --track-tags cli-tag")
    assert session.run.data["metadata"]["tags"] == ["cli-tag", "from-hook", "nightly"]
    assert sorted(session.modules) == ["test_one.py", "test_two.py"]
    for module in session.modules.values():
        assert module.data["metadata"]["tags"] == ["cli-tag", "from-hook", "nightly"]
        assert "dataset" not in module.params


def test_session_tags_reach_a_backend_from_the_make_tracker_hook(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(make_tracker("mybackend") + SESSION_HOOKS)
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--track", "mybackend").assert_outcomes(passed=1)
    entries = calls(pytester.path / "experiments")
    starts = [e for e in entries if e["kind"] == "start"]
    assert [s["tags"] for s in starts] == [["from-hook", "nightly"]] * 2
    assert merged(entries, "params", "call-1")["dataset"] == "qa-v3"
