"""Without --track a pytest run loads nothing of the package beyond the plugin and capture."""

from __future__ import annotations

import json

import pytest

RECORD = """
import json, sys

def pytest_unconfigure(config):
    with open("loaded.json", "w") as handle:
        json.dump(sorted(m for m in sys.modules if m.startswith("pytest_insidellms")), handle)
"""


def test_an_untracked_run_loads_only_the_plugin_and_capture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RECORD)
    pytester.makepyfile("""
        def test_plain():
            assert True

        def test_returns_a_number():
            return None
    """)
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=2)
    loaded = json.loads((pytester.path / "loaded.json").read_text())
    # capture wraps every test (a returned result never reaches pytest, tracked or not).
    assert loaded == ["pytest_insidellms", "pytest_insidellms.capture",
                      "pytest_insidellms.hookspecs", "pytest_insidellms.options",
                      "pytest_insidellms.plugin"]


def test_the_marker_and_the_fixture_still_work_untracked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.experiment(name="qa", params={"k": 1})
        def test_marked(tracker):
            assert not tracker.enabled
            tracker.log_metrics({"m": 1.0})
            with pytest.raises(TypeError):
                tracker.log_metrics({"m": "x"})
    """)
    pytester.runpytest().assert_outcomes(passed=1)
    assert not (pytester.path / "experiments").exists()
