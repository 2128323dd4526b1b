"""What a test may return: an ExperimentResult (see test_capture.py) or a mapping of numbers."""

from __future__ import annotations

import pytest
from local_runs import only_session


def test_a_returned_mapping_of_numbers_is_logged_under_the_tests_prefix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_dicts="""
        import numpy as np
        import pytest

        @pytest.mark.parametrize("model", ["small", "large"])
        def test_scores(model):
            return {"accuracy": 0.9 if model == "large" else 0.7, "n": np.int64(10)}
    """)
    result = pytester.runpytest("--track", "local")  # the inner ini: warnings are errors
    result.assert_outcomes(passed=2)
    m = only_session(pytester.path / "experiments").modules["test_dicts.py"].metrics
    assert m["test_scores/large/accuracy"] == 0.9 and m["test_scores/small/accuracy"] == 0.7
    assert m["test_scores/large/n"] == 10
    untracked = pytester.runpytest()
    untracked.assert_outcomes(passed=2)  # never reaches pytest, tracked or not


@pytest.mark.parametrize("value", ["{'label': 'x'}", "{'ok': True}", "[0.5]", "{}"])
def test_anything_else_returned_keeps_pytests_behaviour(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile(test_other=f"""
        def test_returns():
            return {value}
    """)
    result = pytester.runpytest("--track", "local", "-W", "default")
    result.stdout.fnmatch_lines(["*PytestReturnNotNoneWarning*"])
