"""Every option of the plugin via the command line, the ini file and the environment.

Most runs are in-process (fast); a subprocess is used where the process itself is the
subject: a hidden SDK, entry-point loading, what gets imported.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import INNER_INI

from pytest_insidellms import LocalFileTracker, TrackingConfig

ONE_TEST = "def test_ok():\n    pass\n"
HEADER = re.compile(
    r"^insidellms: tracking to (?P<backends>.+) \(project (?P<project>.+), dir (?P<dir>.+)\)$",
    re.MULTILINE,
)
#: A conftest that makes an SDK look uninstalled, the way Python itself blocks an import:
#: ``importlib.util.find_spec`` returns None and ``import wandb`` raises ImportError.
HIDE_WANDB = "import sys\nsys.modules['wandb'] = None\n"


@dataclass
class Observed:
    """What a run shows of its resolved settings: the header line and the session run."""

    backends: list[str]
    project: str
    track_dir: Path
    session: dict[str, Any] | None


def ini(pytester: pytest.Pytester, **keys: str) -> None:
    """The strict test ini plus ``keys``."""
    pytester.makeini(INNER_INI + "".join(f"{k} = {v}\n" for k, v in keys.items()))


def observe(result: pytest.RunResult) -> Observed | None:
    match = HEADER.search(result.stdout.str())
    if match is None:
        return None
    track_dir, project = Path(match["dir"]), match["project"]
    runs = session_runs(track_dir, project)
    assert len(runs) <= 1, runs
    return Observed(match["backends"].split(", "), project, track_dir, runs[0] if runs else None)


def without_plugin_list(output: str) -> str:
    """pytest's own header lists installed plugins by name; the rest is ours to keep quiet."""
    return re.sub(r"^plugins: .*$", "", output, flags=re.MULTILINE)


def session_runs(track_dir: Path, project: str = "insideLLMs") -> list[dict[str, Any]]:
    reader = LocalFileTracker(track_dir, TrackingConfig(project=project))
    return [reader.load_run(run_id) for run_id in reader.list_runs()]


def run_tracked(pytester: pytest.Pytester, *args: str) -> Observed:
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    observed = observe(result)
    assert observed is not None, result.stdout.str()
    return observed


# -- --track ------------------------------------------------------------------------------------


def test_track_is_repeatable_comma_separated_and_deduplicated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local,local", "--track", "tensorboard", "--track",
                                "local", "--track-dir", "out")
    result.assert_outcomes(passed=1)
    observed = observe(result)
    assert observed is not None
    assert observed.backends == ["local", "tensorboard"]
    # Each backend was opened once: a duplicate local tracker would have made a second run.
    assert len(session_runs(pytester.path / "out")) == 1
    assert (pytester.path / "out" / "tensorboard" / "insideLLMs").is_dir()


def test_insidellms_track_is_an_alias_of_track(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    observed = run_tracked(pytester, "--insidellms-track", "local", "--track", "local")
    assert observed.backends == ["local"]
    assert observed.session is not None
    assert observed.session["final_state"]["status"] == "finished"


@pytest.mark.parametrize("value", ["local, tensorboard", "local tensorboard",
                                   "\n  local,\n  tensorboard"])
def test_ini_track_list_is_normalised(pytester: pytest.Pytester, value: str) -> None:
    ini(pytester, insidellms_track=value)
    pytester.makepyfile(ONE_TEST)
    observed = observe(pytester.runpytest("--collect-only"))
    assert observed is not None
    assert observed.backends == ["local", "tensorboard"]


# -- each value option from each source, and CLI > env > ini -------------------------------------

#: option -> (ini key, environment variable, CLI flag)
SPELLINGS = {
    "project": ("insidellms_track_project", "INSIDELLMS_TRACK_PROJECT", "--track-project"),
    "dir": ("insidellms_track_dir", "INSIDELLMS_TRACK_DIR", "--track-dir"),
    "run_name": ("insidellms_track_run_name", "INSIDELLMS_TRACK_RUN_NAME", "--track-run-name"),
    "tags": ("insidellms_track_tags", "INSIDELLMS_TRACK_TAGS", "--track-tags"),
    "notes": ("insidellms_track_notes", "INSIDELLMS_TRACK_NOTES", "--track-notes"),
    "config": ("insidellms_track_config", "INSIDELLMS_TRACK_CONFIG", "--track-config"),
}


def seen(option: str, observed: Observed, pytester: pytest.Pytester) -> Any:
    """The value of ``option`` as the run shows it, in the form ``value_for`` writes it."""
    assert observed.session is not None
    metadata = observed.session["metadata"]
    if option == "project":
        assert metadata["project"] == observed.project
        return observed.project
    if option == "dir":
        return observed.track_dir.relative_to(pytester.path).as_posix()
    if option == "run_name":
        return metadata["run_name"]
    if option == "tags":
        return ",".join(metadata["tags"])
    if option == "notes":
        return metadata["notes"]
    return observed.project  # the config files below set only the project


def value_for(option: str, source: str, pytester: pytest.Pytester) -> tuple[str, str]:
    """(what to set, what the run should show) for ``option`` set by ``source``."""
    if option == "config":
        pytester.path.joinpath(f"{source}.yaml").write_text(f"project: {source}-from-file\n")
        return f"{source}.yaml", f"{source}-from-file"
    if option == "tags":
        return f"{source}-a, {source}-b", f"{source}-a,{source}-b"
    return f"{source}-{option}", f"{source}-{option}"


@pytest.mark.parametrize("winner", ["cli", "env", "ini"])
@pytest.mark.parametrize("option", sorted(SPELLINGS))
def test_value_option_precedence_is_cli_then_env_then_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, option: str, winner: str
) -> None:
    ini_key, env_var, flag = SPELLINGS[option]
    sources = ["ini", "env", "cli"][: ["ini", "env", "cli"].index(winner) + 1]
    keys, args = {}, ["--track", "local"]
    for source in sources:
        value, _ = value_for(option, source, pytester)
        if source == "ini":
            keys[ini_key] = value
        elif source == "env":
            monkeypatch.setenv(env_var, value)
        else:
            args += [flag, value]
    ini(pytester, **keys)
    pytester.makepyfile(ONE_TEST)
    observed = run_tracked(pytester, *args)
    assert seen(option, observed, pytester) == value_for(option, winner, pytester)[1]


@pytest.mark.parametrize("winner", ["cli", "env", "ini"])
def test_track_precedence_is_cli_then_env_then_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, winner: str
) -> None:
    ini(pytester, insidellms_track="tensorboard")
    args = ["--collect-only"]
    if winner in ("cli", "env"):
        monkeypatch.setenv("INSIDELLMS_TRACK", "mlflow")
    if winner == "cli":
        args += ["--track", "local"]
    pytester.makepyfile(ONE_TEST)
    observed = observe(pytester.runpytest(*args))
    assert observed is not None
    assert observed.backends == [{"cli": "local", "env": "mlflow", "ini": "tensorboard"}[winner]]


def test_empty_environment_variable_counts_as_unset(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini(pytester, insidellms_track="local", insidellms_track_project="from-ini")
    monkeypatch.setenv("INSIDELLMS_TRACK_PROJECT", "  ")
    pytester.makepyfile(ONE_TEST)
    assert run_tracked(pytester).project == "from-ini"


@pytest.mark.parametrize("source", ["env", "ini"])
def test_an_empty_track_dir_from_the_environment_or_ini_counts_as_unset(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # As for every other setting; only the command line, where it is typed, refuses it.
    if source == "env":
        ini(pytester, insidellms_track="local", insidellms_track_dir="from-ini")
        monkeypatch.setenv("INSIDELLMS_TRACK_DIR", " ")
    else:
        ini(pytester, insidellms_track="local", insidellms_track_dir="")
    pytester.makepyfile(ONE_TEST)
    expected = pytester.path / ("from-ini" if source == "env" else "experiments")
    assert run_tracked(pytester).track_dir == expected
    assert len(session_runs(expected)) == 1


def test_defaults_are_project_insidellms_experiments_under_rootdir_and_timestamp_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = pytester.mkpydir("evals")
    sub.joinpath("test_one.py").write_text(ONE_TEST)
    monkeypatch.chdir(sub)
    observed = run_tracked(pytester, "--track", "local")
    assert observed.project == "insideLLMs"
    assert observed.track_dir == pytester.path / "experiments"  # the rootdir, not the cwd
    assert observed.session is not None
    assert re.fullmatch(r"\d{8}_\d{6}_\d{3}", observed.session["metadata"]["run_name"])


@pytest.mark.parametrize(("source", "base"), [("ini", "rootdir"), ("env", "cwd"), ("cli", "cwd")])
def test_relative_track_dir_is_resolved_against_the_ini_file_or_the_invocation_dir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, base: str
) -> None:
    sub = pytester.mkpydir("evals")
    sub.joinpath("test_one.py").write_text(ONE_TEST)
    args = ["--track", "local"]
    if source == "ini":
        ini(pytester, insidellms_track_dir="runs")
    elif source == "env":
        monkeypatch.setenv("INSIDELLMS_TRACK_DIR", "runs")
    else:
        args += ["--track-dir", "runs"]
    monkeypatch.chdir(sub)
    observed = run_tracked(pytester, *args)
    expected = (pytester.path if base == "rootdir" else sub) / "runs"
    assert observed.track_dir == expected
    assert len(session_runs(expected)) == 1


def test_relative_track_config_in_ini_is_resolved_against_the_ini_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.path.joinpath("tracking.yaml").write_text("project: from-yaml\n")
    ini(pytester, insidellms_track="local", insidellms_track_config="tracking.yaml")
    sub = pytester.mkpydir("evals")
    sub.joinpath("test_one.py").write_text(ONE_TEST)
    monkeypatch.chdir(sub)
    assert run_tracked(pytester).project == "from-yaml"


def test_run_name_tags_and_notes_reach_session_and_module_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_evals=ONE_TEST)
    observed = run_tracked(pytester, "--track", "local", "--track-run-name", "nightly 42",
                           "--track-tags", "gpt-4, nightly,,", "--track-notes", "rerun after fix")
    assert observed.session is not None
    metadata = observed.session["metadata"]
    assert metadata["run_name"] == "nightly 42"
    assert metadata["tags"] == ["gpt-4", "nightly"]
    assert metadata["notes"] == "rerun after fix"
    (child,) = observed.session["children"]
    module = LocalFileTracker(observed.track_dir).load_run(child)
    assert module["metadata"]["run_name"] == "test_evals.py"
    assert module["metadata"]["tags"] == ["gpt-4", "nightly"]
    assert module["metadata"]["notes"] == "rerun after fix"


# -- --track-config --------------------------------------------------------------------------------


def test_track_config_file_sets_fields_and_backend_sections(pytester: pytest.Pytester) -> None:
    elsewhere = pytester.path / "elsewhere"
    pytester.path.joinpath("tracking.yaml").write_text(
        "project: evals\n"
        "tags: [nightly, gpt-4]\n"
        "notes: from the file\n"
        f"local:\n  output_dir: {elsewhere}\n"
    )
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local", "--track-config", "tracking.yaml")
    result.assert_outcomes(passed=1)
    # The local section's output_dir beats the track dir for the local backend.
    assert not (pytester.path / "experiments").exists()
    (run,) = session_runs(elsewhere, "evals")
    assert run["metadata"]["tags"] == ["nightly", "gpt-4"]
    assert run["metadata"]["notes"] == "from the file"


def test_command_line_fields_beat_the_config_file(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("tracking.yaml").write_text(
        "project: file-project\ntags: [file-tag]\nnotes: file notes\n")
    pytester.makepyfile(ONE_TEST)
    observed = run_tracked(pytester, "--track", "local", "--track-config", "tracking.yaml",
                           "--track-project", "cli-project", "--track-tags", "cli-tag",
                           "--track-notes", "cli notes")
    assert observed.project == "cli-project"
    assert observed.session is not None
    assert observed.session["metadata"]["tags"] == ["cli-tag"]
    assert observed.session["metadata"]["notes"] == "cli notes"


def test_environment_fields_beat_the_config_file_too(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.path.joinpath("tracking.yaml").write_text("project: file-project\n")
    monkeypatch.setenv("INSIDELLMS_TRACK_PROJECT", "env-project")
    pytester.makepyfile(ONE_TEST)
    assert run_tracked(pytester, "--track", "local", "--track-config",
                       "tracking.yaml").project == "env-project"


# -- bad values: usage error naming the source -------------------------------------------------------

BAD_VALUES = {
    "unknown backend on the command line": (
        {}, {}, {}, ["--track", "nosuch"], "--track: unknown backend 'nosuch'"),
    "unknown backend in the environment": (
        {}, {"INSIDELLMS_TRACK": "local,nosuch"}, {}, [],
        "environment variable INSIDELLMS_TRACK: unknown backend 'nosuch'"),
    "unknown backend in the ini file": (
        {"insidellms_track": "nosuch"}, {}, {}, [],
        "ini option insidellms_track: unknown backend 'nosuch'"),
    "malformed backend token on the command line": (
        {}, {}, {}, ["--track", "local,9x"], "argument --track: '9x' is not a backend name"),
    "malformed backend token in the environment": (
        {}, {"INSIDELLMS_TRACK": "local;rm"}, {}, [],
        "environment variable INSIDELLMS_TRACK: 'local;rm' is not a backend name"),
    "malformed backend token in the ini file": (
        {"insidellms_track": "local, 9x"}, {}, {}, [],
        "ini option insidellms_track: '9x' is not a backend name"),
    "empty --track": ({}, {}, {}, ["--track", " , "], "expected a backend name"),
    "bad boolean in INSIDELLMS_TRACK_STRICT": (
        {}, {"INSIDELLMS_TRACK_STRICT": "maybe"}, {}, ["--track", "local"],
        "environment variable INSIDELLMS_TRACK_STRICT='maybe'"),
    "bad boolean in INSIDELLMS_NO_TRACK": (
        {}, {"INSIDELLMS_NO_TRACK": "perhaps"}, {}, [],
        "environment variable INSIDELLMS_NO_TRACK='perhaps'"),
    "bad boolean in the ini file": (
        {"insidellms_track_strict": "maybe"}, {}, {}, ["--track", "local"],
        "ini option insidellms_track_strict: invalid truth value 'maybe'"),
    "missing config file": (
        {}, {}, {}, ["--track", "local", "--track-config", "nope.yaml"],
        "--track-config: config file not found:"),
    "missing config file from the environment": (
        {}, {"INSIDELLMS_TRACK_CONFIG": "nope.yaml"}, {}, ["--track", "local"],
        "environment variable INSIDELLMS_TRACK_CONFIG: config file not found:"),
    "malformed config file": (
        {}, {}, {"bad.yaml": "project: [unclosed\n"}, ["--track", "local", "--track-config",
                                                       "bad.yaml"],
        "bad.yaml: not valid YAML"),
    "unknown key in config file": (
        {"insidellms_track_config": "bad.yaml"}, {}, {"bad.yaml": "projcet: evals\n"},
        ["--track", "local"], "ini option insidellms_track_config: "),
    "wrong type in config file": (
        {}, {}, {"bad.yaml": "tags: 3\n"}, ["--track", "local", "--track-config", "bad.yaml"],
        "'tags' must be a list of strings"),
    "empty project on the command line": (
        {}, {}, {}, ["--track", "local", "--track-project", " "],
        "--track-project: the project name must not be empty"),
    "empty project in the config file": (
        {}, {}, {"bad.yaml": "project: ''\n"}, ["--track", "local", "--track-config", "bad.yaml"],
        "'project' must be a non-empty string"),
    "empty run name": (
        {}, {}, {}, ["--track", "local", "--track-run-name", ""],
        "--track-run-name: empty run name"),
    "config file that is a directory": (
        {}, {}, {"sub/keep.txt": ""}, ["--track", "local", "--track-config=sub"],
        "--track-config: {path}/sub is a directory, not a config file"),
    "config file from the ini file that is a directory": (
        {"insidellms_track_config": "sub"}, {}, {"sub/keep.txt": ""}, ["--track", "local"],
        "ini option insidellms_track_config: {path}/sub is a directory, not a config file"),
    "empty --track-config": (
        {}, {}, {}, ["--track", "local", "--track-config="],
        "--track-config: expected a path, got an empty value"),
    "invalid redact pattern in the config file": (
        {}, {}, {"bad.yaml": "redact_patterns: ['internal-[0-9]+', '(unclosed']\n"},
        ["--track", "local", "--track-config", "bad.yaml"],
        "--track-config: {path}/bad.yaml: 'redact_patterns': '(unclosed' is not a valid regular "
        "expression: missing ), unterminated subpattern at position 0"),
    "typo in a backend section": (
        {}, {}, {"bad.yaml": "mlflow:\n  trackinguri: http://127.0.0.1:5000\n"},
        ["--track", "local", "--track-config", "bad.yaml"],
        "--track-config: {path}/bad.yaml: backend 'mlflow': unknown key 'trackinguri'; valid "
        "keys: artifact_location, experiment_name, flush_interval, tracking_uri"),
    "typo in a backend section from the environment": (
        {}, {"INSIDELLMS_TRACK_CONFIG": "bad.yaml"}, {"bad.yaml": "local:\n  outdir: x\n"},
        ["--track", "local"],
        "environment variable INSIDELLMS_TRACK_CONFIG: {path}/bad.yaml: backend 'local': "
        "unknown key 'outdir'; valid keys: output_dir"),
    "wrong type in a backend section": (
        {}, {}, {"bad.yaml": "tensorboard:\n  flush_secs: '5'\n"},
        ["--track", "local", "--track-config", "bad.yaml"],
        "--track-config: {path}/bad.yaml: backend 'tensorboard': 'flush_secs' must be a number, "
        "got '5'"),
    "empty --track-dir": (
        {}, {}, {}, ["--track", "local", "--track-dir="],
        "--track-dir: expected a path, got an empty value"),
    "blank --track-dir": (
        {}, {}, {}, ["--track", "local", "--track-dir", "  "],
        "--track-dir: expected a path, got an empty value"),
    "--track-dir naming a file": (
        {}, {}, {"taken": "not a directory"}, ["--track", "local", "--track-dir=taken"],
        "--track-dir: {path}/taken is a file, not a directory"),
    "track dir from the environment naming a file": (
        {}, {"INSIDELLMS_TRACK_DIR": "taken"}, {"taken": "x"}, ["--track", "local"],
        "environment variable INSIDELLMS_TRACK_DIR: {path}/taken is a file, not a directory"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_bad_value_is_a_usage_error_naming_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    keys, env, files, args, message = BAD_VALUES[case]
    ini(pytester, **keys)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name, text in files.items():
        pytester.path.joinpath(name).parent.mkdir(exist_ok=True)
        pytester.path.joinpath(name).write_text(text)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message.format(path=pytester.path) in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "experiments").exists()


def test_unknown_key_in_config_file_lists_the_valid_keys(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("bad.yaml").write_text("projcet: evals\n")
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local", "--track-config", "bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--track-config: *bad.yaml: unknown key 'projcet'; valid keys:*project*"])


# -- --track-strict and a missing SDK -----------------------------------------------------------------


def test_missing_sdk_disables_that_backend_with_a_warning_naming_the_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sys.modules[name] = None is how Python blocks an import; monkeypatch undoes it.
    monkeypatch.setitem(sys.modules, "wandb", None)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(
        "--track", "local,wandb", "-W", "default::pytest_insidellms.plugin.InsideLLMsTrackingWarning")
    result.assert_outcomes(passed=1, warnings=1)
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert ("InsideLLMsTrackingWarning: --track wandb: its SDK is not installed; install it "
            "with: pip install 'pytest-insidellms[wandb]' (backend disabled)") in out
    assert "wandb: 1 problem(s), first: SDK not installed" in out
    (run,) = session_runs(pytester.path / "experiments")
    assert run["final_state"]["status"] == "finished"
    assert not (pytester.path / "experiments" / "wandb").exists()


def test_missing_sdk_under_warnings_as_errors_still_runs_the_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(HIDE_WANDB)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest_subprocess("--track", "local,wandb", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "SDK not installed (pip install 'pytest-insidellms[wandb]')" in result.stdout.str()
    assert len(session_runs(pytester.path / "experiments")) == 1


@pytest.mark.parametrize("source", ["cli", "ini", "env"])
def test_track_strict_makes_a_missing_sdk_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    args = ["--track", "local,wandb"]
    if source == "cli":
        args.append("--track-strict")
    elif source == "ini":
        ini(pytester, insidellms_track_strict="true")
    else:
        monkeypatch.setenv("INSIDELLMS_TRACK_STRICT", "yes")
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("--track wandb: its SDK is not installed; install it with: "
            "pip install 'pytest-insidellms[wandb]'") in result.stderr.str()
    assert not (pytester.path / "experiments").exists()


def test_environment_turns_strict_off_over_the_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    ini(pytester, insidellms_track_strict="true")
    monkeypatch.setenv("INSIDELLMS_TRACK_STRICT", "0")
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local,wandb")
    assert result.ret == pytest.ExitCode.OK
    assert len(session_runs(pytester.path / "experiments")) == 1


# -- --no-track ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cli", "insidellms-cli", "env", "ini"])
def test_no_track_turns_off_tracking_that_the_ini_turns_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    keys = {"insidellms_track": "local"}
    args = []
    if how == "cli":
        args.append("--no-track")
    elif how == "insidellms-cli":
        args.append("--insidellms-no-track")
    elif how == "env":
        monkeypatch.setenv("INSIDELLMS_NO_TRACK", "1")
    else:
        keys["insidellms_no_track"] = "true"
    ini(pytester, **keys)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert "insidellms" not in without_plugin_list(result.stdout.str())
    assert not (pytester.path / "experiments").exists()


#: (ini keys, environment, arguments, whether the session is tracked)
TRACK_VERSUS_NO_TRACK = {
    "both on the command line": ({}, {}, ["--track", "local", "--no-track"], False),
    "command line --track over env no-track": (
        {}, {"INSIDELLMS_NO_TRACK": "1"}, ["--track", "local"], True),
    "command line --track over ini no-track": (
        {"insidellms_no_track": "true"}, {}, ["--track", "local"], True),
    "command line --no-track over a bad env value": (
        {}, {"INSIDELLMS_TRACK": "local;rm"}, ["--no-track"], False),
    "env track over ini no-track": (
        {"insidellms_no_track": "true"}, {"INSIDELLMS_TRACK": "local"}, [], True),
    "both in the environment": ({}, {"INSIDELLMS_TRACK": "local", "INSIDELLMS_NO_TRACK": "yes"},
                                [], False),
    "env no-track over ini track": (
        {"insidellms_track": "local"}, {"INSIDELLMS_NO_TRACK": "true"}, [], False),
    "both in the ini file": ({"insidellms_track": "local", "insidellms_no_track": "true"}, {},
                             [], False),
    "env no-track=off over ini no-track": (
        {"insidellms_track": "local", "insidellms_no_track": "true"},
        {"INSIDELLMS_NO_TRACK": "off"}, [], True),
    "empty env no-track is unset": (
        {"insidellms_track": "local", "insidellms_no_track": "true"},
        {"INSIDELLMS_NO_TRACK": ""}, [], False),
}


@pytest.mark.parametrize("case", list(TRACK_VERSUS_NO_TRACK), ids=list(TRACK_VERSUS_NO_TRACK))
def test_track_and_no_track_stronger_source_wins_and_no_track_on_a_tie(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    keys, env, args, tracked = TRACK_VERSUS_NO_TRACK[case]
    ini(pytester, **keys)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert (observe(result) is not None) is tracked
    assert len(session_runs(pytester.path / "experiments")) == int(tracked)


# -- a --track that belongs to someone else --------------------------------------------------------------

CLASHING_CONFTESTS = {
    "flag": """
def pytest_addoption(parser):
    parser.addoption("--track", action="store_true", help="someone else's --track")
""",
    "value": """
def pytest_addoption(parser):
    parser.addoption("--track", dest="their_track", help="someone else's --track")
    parser.addoption("--no-track", action="store_true", help="someone else's --no-track")
""",
}


@pytest.mark.parametrize("kind", list(CLASHING_CONFTESTS))
def test_clashing_track_option_falls_back_to_insidellms_track_with_a_warning(
    pytester: pytest.Pytester, kind: str
) -> None:
    pytester.makeconftest(CLASHING_CONFTESTS[kind])
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest(
        "--insidellms-track", "local",
        "-W", "default::pytest_insidellms.plugin.InsideLLMsTrackingWarning")
    result.assert_outcomes(passed=1, warnings=2 if kind == "value" else 1)
    warning = ("--track is already defined by another plugin or conftest; "
               "pytest-insidellms answers to --insidellms-track instead")
    assert warning in result.stdout.str()
    assert len(session_runs(pytester.path / "experiments")) == 1


@pytest.mark.parametrize("kind", list(CLASHING_CONFTESTS))
def test_clashing_track_option_keeps_its_owner_and_pytest_starts_under_warnings_as_errors(
    pytester: pytest.Pytester, kind: str
) -> None:
    conftest = CLASHING_CONFTESTS[kind] + """
def pytest_report_header(config):
    return f"their track: {config.getoption('%s')!r}"
""" % ("track" if kind == "flag" else "their_track")
    pytester.makeconftest(conftest)
    pytester.makepyfile(ONE_TEST)
    args = ["--track"] if kind == "flag" else ["--track", "theirs"]
    result = pytester.runpytest(*args)  # the test ini makes every warning an error
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["their track: True" if kind == "flag" else "their track: 'theirs'"])
    assert not (pytester.path / "experiments").exists()


# -- sessions that must not create a run ------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["--markers"], ["--collect-only"], ["-k", "nomatch"]],
                         ids=["help", "markers", "collect-only", "empty-selection"])
def test_session_without_test_reports_creates_no_run(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert "INTERNALERROR" not in result.stdout.str()
    assert not (pytester.path / "experiments").exists()


def test_markers_lists_the_experiment_marker(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.experiment(name=None, prefix=None, *"])


def test_help_documents_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    for flag in ("--track=BACKEND", "--insidellms-track=BACKEND", "--track-project=NAME",
                 "--track-dir=DIR", "--track-run-name=NAME", "--track-tags=TAGS",
                 "--track-notes=TEXT", "--track-config=FILE", "--track-strict", "--no-track"):
        assert flag in out, flag
    for key, _env, _flag in SPELLINGS.values():
        assert key in out, key
    for key in ("insidellms_track ", "insidellms_track_strict", "insidellms_no_track"):
        assert key in out, key


# -- zero cost when off, and the plugin can be disabled --------------------------------------------------

RECORD_MODULES = """
import json, sys

def pytest_unconfigure(config):
    with open("modules.json", "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def test_untracked_session_writes_nothing_and_imports_no_sdk_or_controller(
    pytester: pytest.Pytester,
) -> None:
    import json

    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile(ONE_TEST)
    before = {p.name for p in pytester.path.iterdir()}
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "insidellms" not in without_plugin_list(result.stdout.str())
    modules = set(json.loads(pytester.path.joinpath("modules.json").read_text()))
    assert "pytest_insidellms.plugin" in modules  # the check below means something
    for heavy in ("mlflow", "wandb", "tensorboardX", "torch", "tensorboard", "yaml",
                  "pytest_insidellms.session"):
        assert heavy not in modules, heavy
    created = {p.name for p in pytester.path.iterdir()} - before
    pytester_own = {"stdout", "stderr", "runpytest-0", "runpytest-current"}
    assert created - pytester_own <= {"modules.json", "__pycache__", ".pytest_cache"}


def test_p_no_insidellms_disables_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    # A subprocess: the plugin is loaded from its installed entry point, as for users.
    refused = pytester.runpytest_subprocess("-p", "no:insidellms", "--track", "local")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*unrecognized arguments: --track*"])
    assert not (pytester.path / "experiments").exists()
    markers = pytester.runpytest("-p", "no:insidellms", "--markers")
    assert "experiment" not in markers.stdout.str()
