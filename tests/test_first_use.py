"""What a new user sees first: the header, help texts, error messages (issue 12)."""

from __future__ import annotations

import sys

import pytest

from pytest_insidellms import ProbeCategory, ResultStatus

ONE_TEST = "def test_ok():\n    pass\n"


def test_the_header_names_only_the_backends_that_will_be_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sys.modules[name] = None is how Python blocks an import; monkeypatch undoes it.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--track", "local,mlflow", "-W", "ignore::pytest.PytestWarning")
    result.stdout.fnmatch_lines(["insidellms: tracking to local (project *"])
    alone = pytester.runpytest("--track", "mlflow", "-W", "ignore::pytest.PytestWarning")
    alone.stdout.fnmatch_lines(["insidellms: tracking off: no backend could be used*"])


def test_the_alias_help_says_what_it_is_an_alias_of(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    assert "--insidellms-track=BACKEND The same as --track;" in text
    assert "--insidellms-no-track The same as --no-track;" in text
    assert text.count("--insidellms-track") == 1  # --track's own help does not repeat it


@pytest.mark.parametrize("enum, value, valid", [
    (ProbeCategory, "factual", "logic, factuality, bias"),
    (ResultStatus, "ok", "success, error, timeout, rate_limited, skipped"),
])
def test_a_bad_enum_value_lists_the_valid_ones(enum: type, value: str, valid: str) -> None:
    with pytest.raises(ValueError, match=f"'{value}' is not a .*; expected one of {valid}"):
        enum(value)
