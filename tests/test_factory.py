"""create_tracker (lazy backends, clear errors) and auto_track (one run per call)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_insidellms import (
    ExperimentResult,
    LocalFileTracker,
    ModelInfo,
    ProbeCategory,
    ProbeResult,
    ResultStatus,
    TrackingConfig,
    auto_track,
    create_tracker,
)
from pytest_insidellms.experiment_tracking import BACKENDS
from pytest_insidellms.experiment_tracking.base import import_sdk

# -- create_tracker -------------------------------------------------------------------------


def test_create_tracker_builds_a_local_tracker_with_its_arguments(tmp_path: Path) -> None:
    tracker = create_tracker("local", output_dir=tmp_path, config=TrackingConfig(project="p"))
    assert isinstance(tracker, LocalFileTracker)
    assert tracker.project_dir == tmp_path / "p"
    assert type(create_tracker()) is LocalFileTracker


def test_backend_registry_names_the_four_backends() -> None:
    assert list(BACKENDS) == ["local", "mlflow", "wandb", "tensorboard"]


@pytest.mark.parametrize("name", ["mlflw", "Local", "", None, ["local"]])
def test_unknown_backend_raises_value_error_listing_the_valid_names(name: Any) -> None:
    with pytest.raises(ValueError, match="valid backends: local, mlflow, wandb, tensorboard"):
        create_tracker(name)


@pytest.mark.parametrize("name", ["mlflw", "Local", ""])
def test_unknown_backend_message_starts_with_unknown_backend(name: str) -> None:
    with pytest.raises(ValueError) as raised:
        create_tracker(name)
    assert str(raised.value).startswith(f"Unknown backend {name!r}; valid backends: ")


def test_import_sdk_names_the_extra_when_the_module_is_missing() -> None:
    with pytest.raises(ImportError, match=r"pip install 'pytest-insidellms\[wandb\]'") as raised:
        import_sdk("no_such_sdk_module_for_tests", "wandb")
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    assert import_sdk("json", "x") is importlib.import_module("json")


# What to hide so that a backend's SDK cannot be imported, and the extra its error must name.
HIDDEN_SDKS = {
    "mlflow": (["mlflow"], "mlflow"),
    "wandb": (["wandb"], "wandb"),
    "tensorboard": (["tensorboardX", "torch", "torch.utils", "torch.utils.tensorboard"],
                    "tensorboard"),
}


REQUIRED = {"mlflow": "mlflow is required", "wandb": "wandb is required",
            "tensorboard": "tensorboardX or torch is required"}


@pytest.mark.parametrize("backend", list(HIDDEN_SDKS))
def test_missing_sdk_raises_import_error_naming_the_extra(
    backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    modules, extra = HIDDEN_SDKS[backend]
    for name in [m for m in sys.modules if m.split(".")[0] in {n.split(".")[0] for n in modules}]:
        monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: import fails
    monkeypatch.chdir(tmp_path)  # nothing a half-built backend writes lands in the repo
    with pytest.raises(ImportError, match=rf"pytest-insidellms\[{extra}\]") as raised:
        create_tracker(backend)
    # insideLLMs' wording, which ported code may match on: "<sdk> is required", then the extra.
    assert str(raised.value).startswith(REQUIRED[backend])
    assert str(raised.value).endswith(f"pip install 'pytest-insidellms[{extra}]'")
    assert list(tmp_path.iterdir()) == []  # refused before the tracker was constructed


# -- auto_track -----------------------------------------------------------------------------


@pytest.fixture
def tracker(tmp_path: Path) -> LocalFileTracker:
    return LocalFileTracker(output_dir=tmp_path / "experiments")


def test_each_call_is_its_own_finished_run(tracker: LocalFileTracker) -> None:
    @auto_track(tracker, experiment_name="baseline")
    def run_eval(n: int) -> dict[str, Any]:
        return {"accuracy": n / 10}

    assert [run_eval(n) for n in (1, 2, 3)] == [{"accuracy": 0.1}, {"accuracy": 0.2},
                                               {"accuracy": 0.3}]
    assert tracker.list_runs() == ["baseline", "baseline_2", "baseline_3"]
    assert tracker.open_run_ids == []
    for run_id, expected in zip(tracker.list_runs(), (0.1, 0.2, 0.3), strict=True):
        loaded = tracker.load_run(run_id)
        assert loaded["final_state"]["status"] == "finished"
        assert loaded["metrics"][0]["metrics"] == {"accuracy": expected}


def test_run_is_named_after_the_function_by_default(tracker: LocalFileTracker) -> None:
    @auto_track(tracker)
    def nightly_eval() -> None:
        assert tracker.active_run_id == "nightly_eval"

    nightly_eval()
    assert tracker.list_runs() == ["nightly_eval"]


def test_numeric_values_of_a_returned_dict_are_logged_but_not_bools(
    tracker: LocalFileTracker,
) -> None:
    @auto_track(tracker)
    def scores() -> dict[str, Any]:
        return {"acc": 0.9, "n": 12, "np_f": np.float32(0.5), "np_i": np.int64(4),
                "passed": True, "label": "gpt", "none": None, "nested": {"x": 1}}

    scores()
    assert tracker.load_run("scores")["metrics"][0]["metrics"] == {
        "acc": 0.9, "n": 12.0, "np_f": 0.5, "np_i": 4.0}


def test_returned_experiment_result_is_logged_with_log_experiment_result(
    tracker: LocalFileTracker,
) -> None:
    result = ExperimentResult(
        experiment_id="e1", model_info=ModelInfo(name="m", provider="p", model_id="m-1"),
        probe_name="probe", probe_category=ProbeCategory.BIAS,
        results=[ProbeResult(input=1), ProbeResult(input=2, status=ResultStatus.ERROR)])

    @auto_track(tracker)
    def evaluate() -> ExperimentResult:
        return result

    assert evaluate() is result
    loaded = tracker.load_run("evaluate")
    assert loaded["metrics"][0]["metrics"]["success_rate"] == 0.5
    assert loaded["metrics"][0]["metrics"]["error_count"] == 1.0
    assert loaded["params"]["probe_category"] == "bias"


def test_an_exception_ends_the_run_failed_and_is_re_raised(tracker: LocalFileTracker) -> None:
    @auto_track(tracker)
    def broken() -> None:
        tracker.log_metrics({"before_crash": 1})
        raise ValueError("model exploded")

    with pytest.raises(ValueError, match="model exploded"):
        broken()
    loaded = tracker.load_run("broken")
    assert loaded["final_state"]["status"] == "failed"
    assert loaded["metrics"][0]["metrics"] == {"before_crash": 1.0}


def test_keyboard_interrupt_ends_the_run_killed_and_is_re_raised(
    tracker: LocalFileTracker,
) -> None:
    @auto_track(tracker)
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert tracker.load_run("interrupted")["final_state"]["status"] == "killed"
    assert tracker.open_run_ids == []


def test_signature_name_and_docstring_are_kept(tracker: LocalFileTracker) -> None:
    def original(model: str, *, temperature: float = 0.0) -> dict[str, float]:
        """Evaluate a model."""
        return {"t": temperature}

    wrapped = auto_track(tracker)(original)
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert (wrapped.__name__, wrapped.__doc__) == ("original", "Evaluate a model.")
    assert wrapped("m", temperature=0.5) == {"t": 0.5}


def test_async_function_is_awaited_inside_its_own_run(tracker: LocalFileTracker) -> None:
    seen: list[str | None] = []

    @auto_track(tracker, experiment_name="async_eval")
    async def evaluate(delay: float) -> dict[str, float]:
        await asyncio.sleep(delay)
        seen.append(tracker.active_run_id)
        return {"latency": delay}

    assert inspect.iscoroutinefunction(evaluate)
    assert tracker.list_runs() == []  # nothing starts before the coroutine runs
    assert asyncio.run(evaluate(0)) == {"latency": 0.0}
    assert seen == ["async_eval"]
    loaded = tracker.load_run("async_eval")
    assert loaded["metrics"][0]["metrics"] == {"latency": 0.0}
    assert loaded["final_state"]["status"] == "finished"


def test_async_exception_ends_the_run_failed(tracker: LocalFileTracker) -> None:
    @auto_track(tracker)
    async def failing() -> None:
        raise RuntimeError("async boom")

    with pytest.raises(RuntimeError, match="async boom"):
        asyncio.run(failing())
    assert tracker.load_run("failing")["final_state"]["status"] == "failed"


def test_concurrent_async_calls_get_separate_runs(tracker: LocalFileTracker) -> None:
    @auto_track(tracker, experiment_name="parallel")
    async def evaluate(n: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"n": n}

    async def main() -> list[dict[str, int]]:
        return list(await asyncio.gather(*(evaluate(n) for n in range(5))))

    asyncio.run(main())
    runs = tracker.list_runs()
    assert len(runs) == 5
    assert sorted(tracker.load_run(r)["metrics"][0]["metrics"]["n"] for r in runs) == [
        0.0, 1.0, 2.0, 3.0, 4.0]


def test_decorated_pytest_tests_still_receive_fixtures(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    out = tmp_path / "tracked"
    pytester.makepyfile(test_decorated=f"""
        import pytest
        from pytest_insidellms import LocalFileTracker, auto_track

        TRACKER = LocalFileTracker(output_dir={str(out)!r})

        @pytest.fixture
        def model_name():
            return "gpt-test"

        @auto_track(TRACKER, experiment_name="sync_eval")
        def test_sync(model_name, tmp_path):
            assert model_name == "gpt-test" and tmp_path.is_dir()
            TRACKER.log_params({{"model": model_name}})

        @pytest.mark.parametrize("n", [1, 2])
        @auto_track(TRACKER, experiment_name="param_eval")
        def test_param(n, model_name):
            TRACKER.log_metrics({{"n": n}})

        @pytest.mark.asyncio
        @auto_track(TRACKER, experiment_name="async_eval")
        async def test_async(model_name):
            TRACKER.log_params({{"model": model_name}})

        @auto_track(TRACKER, experiment_name="failing_eval")
        def test_failing(model_name):
            assert model_name == "other"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=4, failed=1)
    reader = LocalFileTracker(output_dir=out)
    assert reader.list_runs() == ["async_eval", "failing_eval", "param_eval", "param_eval_2",
                                  "sync_eval"]
    assert reader.load_run("sync_eval")["params"] == {"model": "gpt-test"}
    assert reader.load_run("async_eval")["params"] == {"model": "gpt-test"}
    assert sorted(reader.load_run(r)["metrics"][0]["metrics"]["n"]
                  for r in ("param_eval", "param_eval_2")) == [1.0, 2.0]
    assert reader.load_run("failing_eval")["final_state"]["status"] == "failed"
    assert reader.load_run("sync_eval")["final_state"]["status"] == "finished"
