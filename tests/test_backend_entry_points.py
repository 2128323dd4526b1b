"""Backends from other packages, through the ``pytest_insidellms.backends`` entry-point group.

Each test installs real distributions, the way pip leaves them (``<name>-0.dist-info/`` with
METADATA and entry_points.txt beside the module), into a temporary directory put on the
PYTHONPATH of a fresh interpreter: entry points are read once per process, so only a new
process sees a new set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_insidellms import LocalFileTracker, TrackingConfig

GROUP = "pytest_insidellms.backends"

NOTEBOOK_MODULE = '''
from pathlib import Path

from pytest_insidellms.experiment_tracking import BackendSpec, LocalFileTracker


class NotebookTracker(LocalFileTracker):
    """Local files, one level deeper: a shelf per team."""

    backend_name = "notebook"

    def __init__(self, output_dir, config=None, shelf: str = "main", pages: int = 1):
        super().__init__(Path(output_dir) / shelf, config)
        self.pages = pages

    def run_location(self, run_id=None):
        # LocalFileTracker's answers for open runs only; sync asks once a run has ended.
        return str(self.run_path(run_id or self.active_run_id))


class JotterTracker(LocalFileTracker):
    backend_name = "jotter"


def notebook_defaults(tracking, track_dir):
    return {"output_dir": track_dir / "notebook"}


SPEC = BackendSpec("notebook", "notebook_backend:NotebookTracker", defaults=notebook_defaults)
NOT_A_BACKEND = 42
'''

DISTRIBUTIONS = {
    "insidellms_notebook": {"notebook": "notebook_backend:SPEC",
                            "jotter": "notebook_backend:JotterTracker"},
    "insidellms_broken": {"broken": "no_such_module_for_tests:SPEC",
                          "misnamed": "notebook_backend:SPEC",
                          "wrongtype": "notebook_backend:NOT_A_BACKEND"},
}
ALL_NAMES = ["local", "mlflow", "wandb", "tensorboard",
             "broken", "jotter", "misnamed", "notebook", "wrongtype"]

#: Run before anything else in a probe: records every read of the group, and gives ``say``,
#: which prints one JSON value per line for the test to read (pytest prints too).
RECORD_READS = """
import importlib.metadata, json, sys
_real = importlib.metadata.entry_points
READS = []
def _recording(**params):
    if params.get("group") == "pytest_insidellms.backends":
        READS.append(params["group"])
    return _real(**params)
importlib.metadata.entry_points = _recording
def say(value):
    print("=> " + json.dumps(value), flush=True)
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding two installed distributions that register backends."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "notebook_backend.py").write_text(NOTEBOOK_MODULE)
    for dist, entries in DISTRIBUTIONS.items():
        info = site / f"{dist}-0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0\n")
        (info / "entry_points.txt").write_text(
            f"[{GROUP}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()))
    return site


def environment(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("INSIDELLMS_") and k not in ("MLFLOW_TRACKING_URI", "WANDB_MODE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return env


def python(site: Path, code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *(["-c", textwrap.dedent(code)] if code else []),
                           *args], cwd=cwd, env=environment(site), capture_output=True,
                          text=True, timeout=120)


def probe(site: Path, code: str, cwd: Path) -> list[Any]:
    """Run ``code`` after RECORD_READS; returns what it ``say``-s."""
    done = python(site, RECORD_READS + textwrap.dedent(code), cwd)
    assert done.returncode == 0, done.stderr
    return [json.loads(line[3:]) for line in done.stdout.splitlines() if line.startswith("=> ")]


# -- create_tracker and the registry --------------------------------------------------------------


def test_create_tracker_builds_a_backend_another_package_registers(
    site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    names, tracker_type = probe(site, f"""
        from pytest_insidellms import TrackingConfig, create_tracker
        from pytest_insidellms.experiment_tracking import backend_names

        say(list(backend_names()))
        tracker = create_tracker("notebook", output_dir={str(out)!r}, shelf="team-a",
                                 config=TrackingConfig(project="p"))
        tracker.start_run("r1")
        tracker.log_metrics({{"accuracy": 0.75}})
        tracker.end_run()
        say(type(tracker).__name__)
    """, tmp_path)
    assert names == ALL_NAMES
    assert tracker_type == "NotebookTracker"
    run = LocalFileTracker(out / "team-a", TrackingConfig(project="p")).load_run("r1")
    assert run["metrics"][0]["metrics"] == {"accuracy": 0.75}
    assert run["final_state"]["status"] == "finished"


def test_a_tracker_class_as_entry_point_gets_a_spec_made_from_it(
    site: Path, tmp_path: Path
) -> None:
    (facts,) = probe(site, f"""
        from pathlib import Path
        from pytest_insidellms import TrackingConfig
        from pytest_insidellms.experiment_tracking import backend

        spec = backend("jotter")
        kwargs = spec.default_kwargs(TrackingConfig(project="p"), Path({str(tmp_path)!r}))
        say([spec.tracker_class().__name__, list(spec.sdk), spec.remote, sorted(kwargs),
             sorted(spec.settings)])
    """, tmp_path)
    # No defaults declared: only config=; the settings are its constructor's parameters.
    assert facts == ["JotterTracker", [], False, ["config"], ["output_dir"]]


@pytest.mark.parametrize(("name", "problem"), [
    ("broken", "failed to load: ModuleNotFoundError: No module named 'no_such_module_for_tests'"),
    ("misnamed", "is a BackendSpec named 'notebook'; the entry point and the spec must have "
                 "the same name"),
    ("wrongtype", "is 42; expected a BackendSpec or an ExperimentTracker subclass"),
])
def test_a_broken_entry_point_is_an_error_naming_it_and_leaves_the_others_working(
    site: Path, tmp_path: Path, name: str, problem: str
) -> None:
    message, others = probe(site, f"""
        from pytest_insidellms import create_tracker
        from pytest_insidellms.experiment_tracking import BackendLoadError

        try:
            create_tracker({name!r})
        except BackendLoadError as exc:
            say(str(exc))
        say([type(create_tracker(n, output_dir={str(tmp_path)!r})).__name__
             for n in ("local", "notebook", "jotter")])
    """, tmp_path)
    value = DISTRIBUTIONS["insidellms_broken"][name]
    assert message == (f"backend {name!r} (entry point {name} = {value} of distribution "
                       f"insidellms-broken 0) {problem}")
    assert others == ["LocalFileTracker", "NotebookTracker", "JotterTracker"]


def test_entry_points_are_read_once_and_only_for_a_name_that_is_not_built_in(
    site: Path, tmp_path: Path
) -> None:
    lines = probe(site, f"""
        import pytest_insidellms
        from pytest_insidellms import TrackingConfig, create_tracker
        from pytest_insidellms.experiment_tracking import backend, backend_names

        create_tracker("local", output_dir={str(tmp_path)!r})
        backend("mlflow").sdk_available()
        TrackingConfig.from_dict({{"project": "p", "tensorboard": {{"flush_secs": 1}}}})
        say([len(READS), "notebook_backend" in sys.modules])
        backend("notebook")
        say([len(READS), "notebook_backend" in sys.modules])
        backend("jotter"), backend_names(), backend("notebook")
        try:
            backend("nosuch")
        except ValueError as exc:
            say(str(exc))
        say(len(READS))
    """, tmp_path)
    assert lines == [[0, False], [1, True],
                     "Unknown backend 'nosuch'; valid backends: " + ", ".join(ALL_NAMES), 1]


def test_a_config_section_of_an_entry_point_backend_is_checked_against_its_constructor(
    site: Path, tmp_path: Path
) -> None:
    lines = probe(site, """
        from pytest_insidellms import TrackingConfig

        say(TrackingConfig.from_dict({"notebook": {"shelf": "x", "pages": 2}},
                                     source="f.yaml").backends)
        for section in ({"shelve": "x"}, {"pages": "2"}):
            try:
                TrackingConfig.from_dict({"notebook": section}, source="f.yaml")
            except (TypeError, ValueError) as exc:
                say(str(exc))
    """, tmp_path)
    assert lines == [
        {"notebook": {"shelf": "x", "pages": 2}},
        "f.yaml: backend 'notebook': unknown key 'shelve'; valid keys: output_dir, pages, shelf",
        "f.yaml: backend 'notebook': 'pages' must be an integer, got '2'",
    ]


# -- python -m pytest_insidellms sync -------------------------------------------------------------


@pytest.fixture
def local_run(tmp_path: Path) -> Path:
    tracker = LocalFileTracker(tmp_path / "runs", TrackingConfig(project="demo"))
    run_id = tracker.start_run("session")
    tracker.log_metrics({"loss": 0.5}, step=3)
    tracker.log_params({"model": "m"})
    tracker.end_run()
    return tracker.project_dir / run_id


def test_sync_replays_into_an_entry_point_backend(
    site: Path, tmp_path: Path, local_run: Path
) -> None:
    track_dir = tmp_path / "td"
    done = python(site, "", tmp_path, "-m", "pytest_insidellms", "sync", str(local_run),
                  "--to", "notebook", "--track-dir", str(track_dir))
    assert done.returncode == 0, done.stderr
    assert f"synced {local_run} into notebook: " in done.stdout
    # Where the spec's defaults put it: <track-dir>/notebook, shelf "main", the run's project.
    replayed = LocalFileTracker(track_dir / "notebook" / "main", TrackingConfig(project="demo"))
    (run_id,) = replayed.list_runs()
    run = replayed.load_run(run_id)
    assert run["metrics"] == [{"step": 3, "timestamp": run["metrics"][0]["timestamp"],
                               "metrics": {"loss": 0.5}}]
    assert run["params"] == {"model": "m"}


def test_sync_lists_entry_point_backends_and_reports_a_broken_one(
    site: Path, tmp_path: Path, local_run: Path
) -> None:
    unknown = python(site, "", tmp_path, "-m", "pytest_insidellms", "sync", str(local_run),
                     "--to", "nosuch")
    assert unknown.returncode == 2
    assert ("invalid choice: 'nosuch' (choose from " + ", ".join(map(repr, ALL_NAMES))
            in unknown.stderr.replace("\n", " ").replace("  ", " "))
    broken = python(site, "", tmp_path, "-m", "pytest_insidellms", "sync", str(local_run),
                    "--to", "broken")
    assert broken.returncode == 1
    assert broken.stderr.startswith(
        "sync failed: backend 'broken' (entry point broken = no_such_module_for_tests:SPEC of "
        "distribution insidellms-broken 0) failed to load")
    wrong_flag = python(site, "", tmp_path, "-m", "pytest_insidellms", "sync", str(local_run),
                        "--to", "notebook", "--entity", "team")
    assert wrong_flag.returncode == 2
    assert ("--entity: backend 'notebook': unknown key 'entity'; valid keys: output_dir, "
            "pages, shelf") in wrong_flag.stderr


# -- pytest --track -------------------------------------------------------------------------------

ONE_TEST = "def test_ok():\n    pass\n"


def test_plain_import_and_pytest_runs_without_such_a_backend_read_no_entry_point(
    site: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_one.py").write_text(ONE_TEST)
    lines = probe(site, """
        import pytest_insidellms
        say(len(READS))
        import pytest
        for args in ([], ["--track", "local"], ["--track", "local,tensorboard"]):
            code = pytest.main(["-q", "-p", "no:cacheprovider", *args])
            say([int(code), len(READS), "notebook_backend" in sys.modules])
    """, project)
    assert lines == [0, [0, 0, False], [0, 0, False], [0, 0, False]]
    assert (project / "experiments" / "insideLLMs").is_dir()  # the tracked runs did track


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, site: Path
            ) -> pytest.Pytester:
    """A pytester project of one passing test whose subprocess runs see ``site``."""
    monkeypatch.setenv("PYTHONPATH", environment(site)["PYTHONPATH"])
    pytester.makepyfile(ONE_TEST)
    return pytester


def test_pytest_track_uses_an_entry_point_backend_and_its_config_section(
    project: pytest.Pytester,
) -> None:
    project.path.joinpath("tracking.yaml").write_text("notebook:\n  shelf: nightly\n")
    result = project.runpytest_subprocess("--track", "notebook,local",
                                           "--track-config", "tracking.yaml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["insidellms: tracking to notebook, local *"])
    shelf = LocalFileTracker(project.path / "experiments" / "notebook" / "nightly")
    local = LocalFileTracker(project.path / "experiments")
    assert len(shelf.list_runs()) == len(local.list_runs()) == 1
    (session,) = [shelf.load_run(run_id) for run_id in shelf.list_runs()]
    assert session["final_state"]["status"] == "finished"
    assert session["metrics"][-1]["metrics"]["tests_passed"] == 1.0


def test_pytest_config_section_errors_for_an_entry_point_backend_are_usage_errors(
    project: pytest.Pytester,
) -> None:
    project.path.joinpath("bad.yaml").write_text("notebook:\n  pages: many\n")
    project.path.joinpath("broken.yaml").write_text("broken:\n  x: 1\n")
    bad = project.runpytest_subprocess("--track", "notebook", "--track-config", "bad.yaml")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert (f"--track-config: {project.path}/bad.yaml: backend 'notebook': 'pages' must be an "
            "integer, got 'many'") in bad.stderr.str()
    broken = project.runpytest_subprocess("--track", "local", "--track-config", "broken.yaml")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    assert ("--track-config: backend 'broken' (entry point broken = "
            "no_such_module_for_tests:SPEC of distribution insidellms-broken 0) failed to load"
            ) in broken.stderr.str()
    for result in (bad, broken):
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (project.path / "experiments").exists()


def test_pytest_track_with_a_broken_entry_point_is_a_usage_error_naming_it(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest_subprocess("--track", "local,broken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("--track: backend 'broken' (entry point broken = no_such_module_for_tests:SPEC of "
            "distribution insidellms-broken 0) failed to load") in result.stderr.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
