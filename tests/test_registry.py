"""The backend registry: one BackendSpec per backend, read by create_tracker, config sections,
sync and the plugin. Entry-point backends are in test_backend_entry_points.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pytest_insidellms import (
    LocalFileTracker,
    MLflowTracker,
    TensorBoardTracker,
    TrackingConfig,
    WandBTracker,
)
from pytest_insidellms.experiment_tracking import BACKENDS, BackendSpec, backend, backend_names
from pytest_insidellms.experiment_tracking.spool import SpoolingTracker

BUILTIN = ("local", "mlflow", "wandb", "tensorboard")


@pytest.fixture(autouse=True)
def no_backend_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- the built-in specs -----------------------------------------------------------------------


def test_the_built_in_backends_come_first_in_a_fixed_order() -> None:
    assert backend_names()[:4] == BUILTIN
    assert tuple(BACKENDS) == BUILTIN
    assert all(BACKENDS[name] is backend(name) for name in BUILTIN)
    with pytest.raises(TypeError):
        BACKENDS["mine"] = BACKENDS["local"]  # type: ignore[index]


#: name -> (tracker class, SDK modules, pip requirement, remote)
FACTS = {
    "local": (LocalFileTracker, (), None, False),
    "mlflow": (MLflowTracker, ("mlflow",), "pytest-insidellms[mlflow]", True),
    "wandb": (WandBTracker, ("wandb",), "pytest-insidellms[wandb]", True),
    "tensorboard": (TensorBoardTracker, ("tensorboardX", "torch"),
                    "pytest-insidellms[tensorboard]", False),
}


@pytest.mark.parametrize("name", BUILTIN)
def test_each_built_in_spec_names_its_class_sdk_extra_and_whether_it_is_spooled(
    name: str,
) -> None:
    cls, sdk, requirement, remote = FACTS[name]
    spec = backend(name)
    assert (spec.name, spec.tracker_class(), spec.sdk, spec.requirement, spec.remote) == (
        name, cls, sdk, requirement, remote)
    assert spec.sdk_available()  # the test environment has every SDK


@pytest.mark.parametrize(("name", "hidden"), [("mlflow", ["mlflow"]), ("wandb", ["wandb"]),
                                              ("tensorboard", ["tensorboardX", "torch"])])
def test_a_hidden_sdk_is_unavailable_and_create_names_what_to_install(
    name: str, hidden: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)  # how Python itself blocks an import
    spec = backend(name)
    assert not spec.sdk_available()
    with pytest.raises(ImportError) as raised:
        spec.create()
    assert str(raised.value) == (
        f"{' or '.join(hidden)} is required for the {name} backend; install it with: "
        f"pip install 'pytest-insidellms[{name}]'")


def test_checking_an_sdk_imports_nothing() -> None:
    probe = (
        "import sys\n"
        "from pytest_insidellms.experiment_tracking import backend\n"
        "print([backend(n).sdk_available() for n in ('mlflow', 'wandb', 'tensorboard')])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'mlflow', 'wandb', 'tensorboardX', 'torch', 'tensorboard'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.splitlines() == ["[True, True, True]", "[]"]


# -- embedded defaults ------------------------------------------------------------------------


def test_local_and_tensorboard_defaults_live_under_the_track_dir(tmp_path: Path) -> None:
    tracking = TrackingConfig(project="my evals/v2")
    assert backend("local").default_kwargs(tracking, tmp_path) == {
        "config": tracking, "output_dir": tmp_path}
    # The project becomes one safe directory level, as LocalFileTracker names it.
    tensorboard_kwargs = backend("tensorboard").default_kwargs(tracking, tmp_path)
    project_dir = LocalFileTracker(tmp_path, tracking).project_dir.name
    assert tensorboard_kwargs == {"config": tracking,
                                  "log_dir": tmp_path / "tensorboard" / project_dir}


def test_mlflow_defaults_to_an_embedded_store_unless_a_uri_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking = TrackingConfig(project="p")
    assert backend("mlflow").default_kwargs(tracking, tmp_path / "td") == {
        "config": tracking, "experiment_name": "p",
        "tracking_uri": f"sqlite:///{tmp_path / 'td' / 'mlflow.db'}",
        "artifact_location": str(tmp_path / "td" / "mlartifacts")}
    from_file = TrackingConfig(project="p", backends={"mlflow": {"tracking_uri": "http://h:1"}})
    assert backend("mlflow").default_kwargs(from_file, tmp_path) == {
        "config": from_file, "experiment_name": "p", "tracking_uri": "http://h:1"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:2")
    assert backend("mlflow").default_kwargs(tracking, tmp_path) == {
        "config": tracking, "experiment_name": "p"}


@pytest.mark.parametrize(("environment", "section", "mode"), [
    ({}, {}, "offline"),
    ({"WANDB_API_KEY": "k"}, {}, "online"),
    ({"WANDB_MODE": "disabled"}, {}, None),
    ({"WANDB_API_KEY": "k"}, {"mode": "offline"}, "offline"),
])
def test_wandb_is_offline_unless_a_key_or_a_mode_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
    section: dict[str, str], mode: str | None,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    tracking = TrackingConfig(project="p", backends={"wandb": section})
    kwargs = backend("wandb").default_kwargs(tracking, tmp_path)
    assert kwargs.pop("mode", None) == mode
    assert kwargs == {"config": tracking, "project": "p", "dir": str(tmp_path)}


def test_session_trackers_of_remote_backends_are_spooled_under_the_track_dir(
    tmp_path: Path,
) -> None:
    tracking = TrackingConfig(project="p")
    local = backend("local").session_tracker(tracking, tmp_path)
    assert type(local) is LocalFileTracker and local.output_dir == tmp_path
    spooled = backend("mlflow").session_tracker(tracking, tmp_path)
    assert isinstance(spooled, SpoolingTracker)
    assert spooled.spool.output_dir == tmp_path / "spool" / "mlflow"
    run_id = spooled.start_run("session")
    spooled.log_metrics({"accuracy": 0.5}, run_id=run_id)
    spooled.end_run(run_id=run_id)
    spooled.flush()
    assert isinstance(spooled.remote, MLflowTracker)  # built on the delivery thread
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("p")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert (run.info.run_name, run.data.metrics) == ("session", {"accuracy": 0.5})


# -- settings ---------------------------------------------------------------------------------


def test_settings_are_the_constructor_parameters_except_config() -> None:
    assert set(backend("local").settings) == {"output_dir"}
    assert set(backend("mlflow").settings) == {"tracking_uri", "experiment_name",
                                               "artifact_location", "flush_interval"}
    assert set(backend("tensorboard").settings) == {"log_dir", "flush_secs", "writer"}
    # WandBTracker's **init_kwargs go to wandb.init: the keywords it does not set itself.
    assert {"project", "entity", "mode", "dir", "settings", "save_code"} <= set(
        backend("wandb").settings)


@pytest.mark.parametrize(("name", "settings"), [
    ("tensorboard", {"flush_secs": 5, "log_dir": "runs", "writer": "tensorboardX"}),
    ("tensorboard", {"flush_secs": 0.5, "log_dir": Path("runs")}),
    ("mlflow", {"tracking_uri": None, "flush_interval": 1}),
    ("wandb", {"job_types": ["a", "b"], "settings": {"console": "off"}, "save_code": False}),
    ("local", {}),
])
def test_settings_of_the_right_type_pass_unchanged(name: str, settings: dict[str, Any]) -> None:
    assert backend(name).check_settings(settings, "f.yaml") == settings


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("mlflow", {"trackinguri": "x"},
     "f.yaml: backend 'mlflow': unknown key 'trackinguri'; valid keys: artifact_location, "
     "experiment_name, flush_interval, tracking_uri"),
    ("wandb", {"entitty": "team"}, "f.yaml: backend 'wandb': unknown key 'entitty'; valid keys: "),
    ("local", {"config": {}}, "f.yaml: backend 'local': unknown key 'config'; valid keys: "
                              "output_dir"),
])
def test_an_unknown_setting_is_a_value_error_listing_the_valid_keys(
    name: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        backend(name).check_settings(settings, "f.yaml")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("tensorboard", {"flush_secs": "5"}, "'flush_secs' must be a number, got '5'"),
    ("tensorboard", {"flush_secs": True}, "'flush_secs' must be a number, got True"),
    ("tensorboard", {"log_dir": 3}, "'log_dir' must be a path, got 3"),
    ("mlflow", {"tracking_uri": 5000}, "'tracking_uri' must be a string or null, got 5000"),
    ("wandb", {"job_types": "session"}, "'job_types' must be a list of strings, got 'session'"),
    ("wandb", {"job_types": [1]}, "'job_types' must be a list of strings, got [1]"),
    ("wandb", {"save_code": "yes"}, "'save_code' must be true or false, got 'yes'"),
    ("wandb", {"settings": ["x"]}, "'settings' must be a mapping, got ['x']"),
])
def test_a_setting_of_the_wrong_type_is_a_type_error_naming_it(
    name: str, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError) as raised:
        backend(name).check_settings(settings, "f.yaml")
    assert str(raised.value) == f"f.yaml: backend {name!r}: {message}"


class Minimal(LocalFileTracker):
    """A tracker that takes no config and passes its extra keywords on."""

    def __init__(self, output_dir: str, retries: int = 0, **client_options: Any) -> None:
        super().__init__(output_dir)
        self.retries, self.client_options = retries, client_options


def test_a_spec_built_from_a_class_creates_it_and_keeps_open_keywords_open(
    tmp_path: Path,
) -> None:
    spec = BackendSpec("minimal", Minimal,
                       defaults=lambda tracking, track_dir: {"output_dir": str(track_dir)})
    assert spec.sdk_available() and not spec.remote
    assert spec.default_kwargs(TrackingConfig(), tmp_path) == {"output_dir": str(tmp_path)}
    checked = spec.check_settings({"retries": 2, "timeout": "anything"}, "f.yaml")
    assert checked == {"retries": 2, "timeout": "anything"}
    with pytest.raises(TypeError, match="'retries' must be an integer, got 2.5"):
        spec.check_settings({"retries": 2.5}, "f.yaml")
    tracker = spec.create(output_dir=str(tmp_path), retries=3, timeout=9)
    assert isinstance(tracker, Minimal)
    assert (tracker.retries, tracker.client_options) == (3, {"timeout": 9})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "9lives", "tracker": Minimal}, "backend name '9lives' must match"),
    ({"name": "x", "tracker": "no_colon.Tracker"}, "is not 'module:Class'"),
    ({"name": "x", "tracker": Minimal, "sdk": "langfuse"}, "sdk must be a tuple"),
])
def test_a_malformed_spec_is_refused_when_it_is_made(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        BackendSpec(**kwargs)


def test_a_spec_whose_class_path_is_no_tracker_says_so() -> None:
    spec = BackendSpec("odd", "pytest_insidellms.experiment_tracking.config:TrackingConfig")
    with pytest.raises(TypeError, match="is <class .*TrackingConfig'>, not an ExperimentTracker"):
        spec.create()


def test_an_sdk_missing_from_a_third_party_spec_names_its_requirement() -> None:
    spec = BackendSpec("langfuse", Minimal, sdk=("no_such_sdk_for_tests",),
                       requirement="langfuse-insidellms>=1")
    assert spec.install_command == "pip install 'langfuse-insidellms>=1'"
    with pytest.raises(ImportError, match=r"^no_such_sdk_for_tests is required for the "
                                          r"langfuse backend; install it with: pip install "
                                          r"'langfuse-insidellms>=1'$"):
        spec.create(output_dir=".")
