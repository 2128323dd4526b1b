"""The public API: explicit sorted ``__all__`` lists that match what the modules expose, and an
import that stays cheap (no backend SDK, no pytest)."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import pytest_insidellms
from pytest_insidellms import experiment_tracking, types

PUBLIC_MODULES = [pytest_insidellms, experiment_tracking, types]
HEAVY = ("mlflow", "wandb", "tensorboardX", "tensorboard", "torch")


def public_names(module: ModuleType) -> set[str]:
    """Names a reader of the module would take as its API: not private, not a submodule,
    and not something merely imported from elsewhere (``Any``, ``dataclass`` ...)."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        home = getattr(value, "__module__", None)
        if (isinstance(home, str) and not home.startswith("pytest_insidellms")
                and getattr(sys.modules.get(home), name, None) is value):
            continue
        names.add(name)
    return names


def isort_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(module: ModuleType) -> None:
    assert list(module.__all__) == sorted(set(module.__all__), key=isort_order)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_matches_what_the_module_exposes(module: ModuleType) -> None:
    exported = set(module.__all__) - {"__version__"}
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []
    assert public_names(module) == exported


def test_top_level_re_exports_are_the_library_objects() -> None:
    from pytest_insidellms import fixture, plugin

    assert pytest_insidellms.InsideLLMsTrackingWarning is plugin.InsideLLMsTrackingWarning
    assert pytest_insidellms.TrackerFixture is fixture.TrackerFixture
    for name in pytest_insidellms.__all__:
        if name in ("__version__", "InsideLLMsTrackingWarning", "TrackerFixture"):
            continue
        value = getattr(pytest_insidellms, name)
        source = experiment_tracking if hasattr(experiment_tracking, name) else types
        assert getattr(source, name) is value, name


def test_version_is_a_string_and_matches_the_distribution() -> None:
    assert isinstance(pytest_insidellms.__version__, str)
    assert importlib.metadata.version("pytest-insidellms") == pytest_insidellms.__version__


def test_plugin_is_registered_under_the_name_insidellms() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="pytest11")
               if e.value.startswith("pytest_insidellms")]
    assert (entry.name, entry.value) == ("insidellms", "pytest_insidellms.plugin")


def test_package_ships_py_typed() -> None:
    assert (Path(pytest_insidellms.__file__).parent / "py.typed").is_file()


def loaded_after(statement: str) -> list[str]:
    """Top-level modules in sys.modules after running ``statement`` in a fresh interpreter."""
    report = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    probe = f"import sys, json\n{statement}\n{report}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_package_imports_no_backend_sdk_and_not_pytest() -> None:
    loaded = loaded_after(
        "import pytest_insidellms\n"
        "from pytest_insidellms import create_tracker, LocalFileTracker, MultiTracker\n"
        "from pytest_insidellms.experiment_tracking import MLflowTracker, WandBTracker, "
        "TensorBoardTracker"
    )
    assert [m for m in HEAVY if m in loaded] == []
    assert "pytest" not in loaded and "_pytest" not in loaded


def test_using_the_local_backend_imports_no_backend_sdk(tmp_path: Path) -> None:
    loaded = loaded_after(
        "from pytest_insidellms import create_tracker\n"
        f"t = create_tracker('local', output_dir={str(tmp_path)!r})\n"
        "t.start_run('r'); t.log_metrics({'a': 1}); t.end_run()"
    )
    assert [m for m in HEAVY if m in loaded] == []


def test_loading_the_pytest_plugin_imports_no_backend_sdk() -> None:
    loaded = loaded_after("import pytest_insidellms.plugin")
    assert [m for m in HEAVY if m in loaded] == []


def test_importing_the_package_or_the_plugin_loads_no_other_part_of_it() -> None:
    # pytest imports the plugin in every run on a machine where it is installed.
    probe = ("import sys, json, pytest_insidellms.plugin\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pytest_insidellms'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded == ["pytest_insidellms", "pytest_insidellms.hookspecs",
                      "pytest_insidellms.options", "pytest_insidellms.plugin"]


def test_names_load_on_first_use_and_are_the_same_objects_after() -> None:
    first = pytest_insidellms.LocalFileTracker
    assert first is pytest_insidellms.LocalFileTracker is experiment_tracking.LocalFileTracker
    assert set(pytest_insidellms.__all__) <= set(dir(pytest_insidellms))
    with pytest.raises(AttributeError):
        pytest_insidellms.NotAThing  # noqa: B018
