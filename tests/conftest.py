from __future__ import annotations

import contextlib
import os
from importlib.metadata import version

import pytest

# numpy refuses to load twice in one process, and pytester's in-process runs unload what an
# inner run imported: load it once out here so inner runs may use the tensorboard backend
# (tensorboardX imports numpy) more than once. The compat runs in .ci/run install no numpy.
with contextlib.suppress(ImportError):
    import numpy  # noqa: F401


def _inner_ini() -> str:
    lines = ["[pytest]", "filterwarnings = error"]
    # The loop-scope option exists from pytest-asyncio 0.24 on (0.23 is what pytest 8.0 gets);
    # newer releases warn when it is missing, older ones when it is present.
    major, minor = (int(part) for part in version("pytest-asyncio").split(".")[:2])
    if (major, minor) >= (0, 24):
        lines.append("asyncio_default_fixture_loop_scope = function")
    return "\n".join(lines) + "\n"


#: Written into every pytester project so the inner runs are as strict as ours.
INNER_INI = _inner_ini()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester project with strict warnings and no tracking settings from our environment."""
    ours = [name for name in os.environ if name.startswith("INSIDELLMS_")]
    for name in (*ours, "MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    pytester.makeini(INNER_INI)
    return pytester


@pytest.fixture(scope="session", autouse=True)
def mlflow_sqlite_ready(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Create one throwaway MLflow sqlite store before any test runs.

    pytester restores ``sys.modules`` when a test ends, dropping the SQLAlchemy and alembic
    modules that MLflow imported lazily during that test; a later store then fails inside
    SQLAlchemy ("'InternalTraversal' object is not callable"). Importing them here, outside
    any test, keeps one copy for the whole session.
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:  # the pytest-compatibility runs install no backend
        return
    store = tmp_path_factory.mktemp("mlflow-warm-up") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()
