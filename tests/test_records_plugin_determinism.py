"""The four run files of one suite are byte-identical however the session ran it.

A reference session (one process, collection order, records only) and sessions that differ
from it in every way the promise names: worker count (``-n 2``, ``-n 4``), every ``--dist``
mode, reversed and shuffled test order (a seeded shuffle in every process, as pytest-randomly
does it), ``--track local`` into another track directory, another working directory, and
another day and time zone (the clock moved 400 days on, ``TZ`` set). Each variation is
covered by at least one run; a run combines several to keep the test fast. The files are
compared as bytes.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_insidellms.records import FILES

PROJECT = {
    "tox.ini": """
        [pytest]
        filterwarnings = error
        asyncio_default_fixture_loop_scope = function
    """,
    "conftest.py": """
        import os
        import random
        import time

        ORDER = os.environ.get("SUITE_ORDER", "")
        SHIFT = float(os.environ.get("SUITE_CLOCK_SHIFT", "0"))
        if SHIFT:  # another day, for everything that asks the time module
            _real_time, _real_ns = time.time, time.time_ns
            time.time = lambda: _real_time() + SHIFT
            time.time_ns = lambda: _real_ns() + int(SHIFT * 1e9)


        def pytest_collection_modifyitems(items):
            # The same order in every process, as xdist requires of its workers.
            if ORDER == "reverse":
                items.reverse()
            elif ORDER.startswith("shuffle"):
                random.Random(ORDER).shuffle(items)
    """,
    "evals/test_marked.py": """
        import pytest

        SCHEDULE = {"steady": [1, 1, 1], "flaky": [1, 0, 1], "gone": [0, 0, 0]}


        @pytest.mark.experiment(name="labels", model_name="toy", params={"t": 0.5})
        @pytest.mark.parametrize("case", range(12))
        def test_label(case):
            assert case % 5 != 4, f"case {case} is mislabelled"


        @pytest.mark.experiment(name="repeats", trials=3)
        @pytest.mark.parametrize("case", list(SCHEDULE))
        def test_repeated(case, request):
            assert SCHEDULE[case][request.node.callspec.params["insidellms_trial"]]


        def test_long_failure():
            expected = {f"key{i}": "x" * 20 for i in range(30)}
            actual = {**expected, "key7": "y" * 20}
            assert actual == expected
    """,
    "evals/test_returns.py": """
        from pytest_insidellms import (ExperimentResult, ModelInfo, ProbeCategory, ProbeResult,
                                       ResultStatus)


        def test_batch(tracker):
            tracker.log_metrics({"fixture_only": 1.0})
            results = [ProbeResult({"q": f"{i}+{i}", "tags": {"b", "a"}}, str(2 * i),
                                   metadata={"score": (i % 3) / 2, "n": i})
                       for i in range(6)]
            results.append(ProbeResult({"q": "1/0"}, status=ResultStatus.ERROR, error="nan"))
            return ExperimentResult("batch", ModelInfo("m", "acme", "m-1"), "arith",
                                    ProbeCategory.LOGIC, results)
    """,
    "evals/sub/test_plain.py": """
        import pytest


        class TestPlain:
            @pytest.mark.parametrize("n", range(5))
            def test_n(self, n):
                assert n != 3

            @pytest.mark.skip(reason="not today")
            def test_skipped(self):
                pass

            @pytest.mark.xfail(reason="known", strict=False)
            def test_xfailed(self):
                assert False


        @pytest.fixture
        def broken():
            raise OSError("fixture could not open data.json")


        def test_setup_error(broken):
            pass
    """,
}
DAY = 24 * 60 * 60
#: Each run differs from the reference in what its id says.
RUNS = {
    "n2-load-reversed": (["-n", "2", "--dist", "load"], {"SUITE_ORDER": "reverse"}, False),
    "n4-loadscope-shuffled-tracked-elsewhere-another-day": (
        ["-n", "4", "--dist", "loadscope", "--track", "local", "--track-dir={tmp}/track-b"],
        {"SUITE_ORDER": "shuffle-1", "SUITE_CLOCK_SHIFT": str(400 * DAY),
         "TZ": "Pacific/Auckland"}, False),
    "n2-loadfile-another-cwd": (["-n", "2", "--dist", "loadfile"], {}, True),
    "n2-worksteal-shuffled-tracked": (
        ["-n", "2", "--dist", "worksteal", "--track", "local", "--track-dir={tmp}/track-c"],
        {"SUITE_ORDER": "shuffle-2"}, False),
    "n0-reversed-another-cwd-another-day-tracked": (
        ["-n", "0", "--track", "local", "--track-dir={tmp}/track-d"],
        {"SUITE_ORDER": "reverse", "SUITE_CLOCK_SHIFT": str(-3 * DAY),
         "TZ": "America/Los_Angeles"}, True),
}
#: What pytest reports for PROJECT, however it runs.
OUTCOME = "8 failed, 20 passed, 1 skipped, 1 xfailed, 1 error"


def write_project(root: Path) -> None:
    import textwrap

    for name, text in PROJECT.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def run_session(project: Path, out: Path, args: list[str], env: dict[str, str],
                from_subdirectory: bool) -> dict[str, bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INSIDELLMS_", "PYTEST_"))}
    cwd = project / "evals" / "sub" if from_subdirectory else project
    target = [str(project)] if from_subdirectory else []
    tmp = str(out.parent)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         f"--track-records={out}", *(a.replace("{tmp}", tmp) for a in args), *target],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=300,
        check=False)
    assert OUTCOME in process.stdout, process.stdout + process.stderr
    assert "problem(s)" not in process.stdout, process.stdout
    return {name: (out / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("records-project")
    write_project(root)
    return root


@pytest.fixture(scope="module")
def reference(project: Path) -> dict[str, bytes]:
    return run_session(project, project.parent / "reference", ["-n", "0"], {}, False)


@pytest.mark.parametrize("run", list(RUNS))
def test_the_run_files_are_byte_identical(project: Path, reference: dict[str, bytes],
                                          run: str) -> None:
    args, env, from_subdirectory = RUNS[run]
    files = run_session(project, project.parent / run, args, env, from_subdirectory)
    for name in FILES:
        if files[name] != reference[name]:
            diff = difflib.unified_diff(reference[name].decode().splitlines(),
                                        files[name].decode().splitlines(), lineterm="", n=0)
            pytest.fail(f"{name} differs ({run}):\n" + "\n".join(list(diff)[:12]))


def test_the_reference_holds_every_kind_of_case(reference: dict[str, bytes]) -> None:
    import json

    records = [json.loads(line) for line in reference["records.jsonl"].splitlines()]
    kinds = {r["custom"]["kind"] for r in records}
    outcomes = {r["custom"]["outcome"] for r in records}
    assert kinds == {"experiment", "result", "test"}
    assert outcomes == {"passed", "failed", "skipped", "xfailed", "error"}
    assert {r["custom"]["trial"] for r in records} == {0, 1, 2}
    assert len(records) == 12 + 9 + 1 + 7 + 5 + 2 + 1
    # The long assertion's message is kept whole, whichever process ran it.
    (long,) = [r for r in records if r["custom"]["nodeid"].endswith("test_long_failure")]
    assert long["error"].startswith("AssertionError: assert {") and "key7" in long["error"]
