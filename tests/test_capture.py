"""Results returned by tests are logged, and pytest never sees them."""

from __future__ import annotations

import pytest
from local_runs import only_session

RESULT_FACTORY = """
from pytest_insidellms import (
    ExperimentResult, ModelInfo, ProbeCategory, ProbeResult, ProbeScore, ResultStatus,
)

def make_result(ok=3, errors=1, model=None):
    return ExperimentResult(
        experiment_id="qa-1",
        model_info=model or ModelInfo(name="toy", provider="local", model_id="toy-1"),
        probe_name="qa",
        probe_category=ProbeCategory.FACTUALITY,
        results=[ProbeResult(input=i, output=i) for i in range(ok)]
        + [ProbeResult(input="x", status=ResultStatus.ERROR) for _ in range(errors)],
        score=ProbeScore(accuracy=ok / (ok + errors)),
    )
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(RESULT_FACTORY + """
import pytest

@pytest.fixture
def result_factory():
    return make_result
""")
    return pytester


def test_returned_result_is_logged_under_the_test_name(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        def test_answers(result_factory):
            return result_factory(ok=3, errors=1)
    """)
    project.runpytest("--track", "local").assert_outcomes(passed=1)

    module = only_session(project.path / "experiments").modules["test_qa.py"]
    assert module.metrics["test_answers/success_rate"] == 0.75
    assert module.metrics["test_answers/total_count"] == 4
    assert module.metrics["test_answers/error_count"] == 1
    assert module.metrics["test_answers/accuracy"] == 0.75
    assert module.params["test_answers/model_name"] == "toy"
    assert module.params["test_answers/probe_category"] == "factuality"


def test_parametrized_cases_get_distinct_prefixes(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        import pytest

        @pytest.mark.parametrize("ok", [1, 2, 3], ids=["one", "two", "three words"])
        def test_answers(result_factory, ok):
            return result_factory(ok=ok, errors=0)
    """)
    project.runpytest("--track", "local").assert_outcomes(passed=3)

    metrics = only_session(project.path / "experiments").modules["test_qa.py"].metrics
    assert metrics["test_answers/one/total_count"] == 1
    assert metrics["test_answers/two/total_count"] == 2
    assert metrics["test_answers/three words/total_count"] == 3


def test_class_methods_and_staticmethods_are_captured(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        from conftest import make_result

        class TestSuite:
            def test_method(self, result_factory):
                return result_factory(ok=2, errors=0)

            @staticmethod
            def test_static():
                return make_result(ok=5, errors=0)
    """)
    project.runpytest("--track", "local").assert_outcomes(passed=2)

    metrics = only_session(project.path / "experiments").modules["test_qa.py"].metrics
    assert metrics["TestSuite/test_method/total_count"] == 2
    assert metrics["TestSuite/test_static/total_count"] == 5


def test_async_tests_under_pytest_asyncio_are_captured(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_async(result_factory):
            await asyncio.sleep(0)
            return result_factory(ok=4, errors=0)
    """)
    # In a subprocess: the pytest-asyncio releases pytest 8.0 gets leave an event loop
    # unclosed, which an in-process run would leak into whichever later test collects it.
    project.runpytest_subprocess("--track", "local").assert_outcomes(passed=1)

    metrics = only_session(project.path / "experiments").modules["test_qa.py"].metrics
    assert metrics["test_async/total_count"] == 4


def test_async_tests_under_anyio_are_captured(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        import anyio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_async(result_factory):
            await anyio.sleep(0)
            return result_factory(ok=6, errors=0)
    """)
    project.runpytest_subprocess("--track", "local").assert_outcomes(passed=1)  # as above

    metrics = only_session(project.path / "experiments").modules["test_qa.py"].metrics
    assert metrics["test_async/total_count"] == 6


def test_returning_a_result_passes_without_tracking_and_writes_nothing(
    project: pytest.Pytester,
) -> None:
    # The inner ini turns warnings into errors, so a PytestReturnNotNoneWarning would fail it.
    project.makepyfile(test_qa="""
        def test_answers(result_factory):
            return result_factory()
    """)
    project.runpytest().assert_outcomes(passed=1)
    assert not (project.path / "experiments").exists()


def test_other_return_values_keep_pytests_behaviour(project: pytest.Pytester) -> None:
    project.makepyfile(test_qa="""
        def test_returns_a_number():
            return 5
    """)
    result = project.runpytest("--track", "local")
    # pytest warns (an error under the strict ini) or, on 8.4.0, fails the test itself.
    result.assert_outcomes(failed=1)
    module = only_session(project.path / "experiments").modules["test_qa.py"]
    assert not any(key.startswith("test_returns_a_number/") for key in module.metrics)


def test_marker_names_a_returned_result_and_fills_missing_metadata(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_qa="""
        import pytest
        from pytest_insidellms import ModelInfo

        @pytest.mark.experiment(prefix="qa_v2/", model_name="filled", model_provider="acme",
                                params={"temperature": 0.2})
        def test_answers(result_factory):
            return result_factory(model=ModelInfo(name="", provider="", model_id="m-1"))
    """)
    project.runpytest("--track", "local").assert_outcomes(passed=1)

    module = only_session(project.path / "experiments").modules["test_qa.py"]
    assert module.metrics["qa_v2/total_count"] == 4
    assert module.params["qa_v2/model_name"] == "filled"
    assert module.params["qa_v2/model_provider"] == "acme"
    assert module.params["qa_v2/model_id"] == "m-1"  # set by the test: kept
    assert module.params["qa_v2/temperature"] == 0.2


def test_result_shaped_objects_from_other_libraries_are_captured(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_qa="""
        from dataclasses import dataclass, field
        from enum import Enum

        class Status(Enum):
            SUCCESS = "success"
            ERROR = "error"

        @dataclass
        class Model:
            name: str = "theirs"
            provider: str = "vendor"
            model_id: str = "v-1"

        @dataclass
        class Item:
            input: str
            status: Status = Status.SUCCESS

        @dataclass
        class TheirResult:
            experiment_id: str = "x"
            model_info: Model = field(default_factory=Model)
            probe_name: str = "p"
            probe_category: str = "logic"
            results: list = field(default_factory=lambda: [Item("a"), Item("b", Status.ERROR)])

        def test_theirs():
            return TheirResult()
    """)
    pytester.runpytest("--track", "local").assert_outcomes(passed=1)

    module = only_session(pytester.path / "experiments").modules["test_qa.py"]
    assert module.metrics["test_theirs/success_count"] == 1
    assert module.metrics["test_theirs/error_count"] == 1
    assert module.params["test_theirs/probe_category"] == "logic"
