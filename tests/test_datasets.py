"""Declared datasets (the ini file's ``insidellms_track_datasets``, the
``pytest_insidellms_datasets`` hook) define the session: the records' run id hashes their
content fingerprints, and the session run gets each as a param."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from local_runs import only_session

from pytest_insidellms.records import FILES

INI = """
    [pytest]
    asyncio_default_fixture_loop_scope = function
    insidellms_track_datasets =
        qa = data/qa.jsonl
        corpus = data/corpus
"""
CONFTEST = """
    import pathlib

    def pytest_insidellms_datasets(config):
        return {"registry": "hf:squad@v2.0",
                "extra": pathlib.Path(config.rootpath, "data", "extra.txt")}
"""
TESTS = """
    import pytest

    @pytest.mark.experiment(name="qa")
    @pytest.mark.parametrize("case", range(4))
    def test_qa(case):
        assert case != 2
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_evals=TESTS)
    data = pytester.path / "data"
    (data / "corpus" / "sub").mkdir(parents=True)
    (data / "qa.jsonl").write_text('{"q": "2+2", "a": "4"}\n')
    (data / "corpus" / "a.txt").write_text("alpha")
    (data / "corpus" / "sub" / "b.txt").write_text("beta")
    (data / "extra.txt").write_text("extra")
    return pytester


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_fingerprints(root: Path) -> dict[str, str]:
    data = root / "data"
    listing = "".join(f"{name}\0{sha((data / 'corpus' / name).read_bytes())}\n"
                      for name in ("a.txt", "sub/b.txt"))
    return {"qa": f"sha256:{sha((data / 'qa.jsonl').read_bytes())}",
            "corpus": f"sha256:{sha(listing.encode())}",
            "registry": "hf:squad@v2.0",
            "extra": f"sha256:{sha(b'extra')}"}


def records(pytester: pytest.Pytester, out: str, *args: str) -> dict[str, bytes]:
    result = pytester.runpytest("--track-records", out, "-p", "no:randomly", *args)
    result.assert_outcomes(passed=3, failed=1)
    return {name: (pytester.path / out / name).read_bytes() for name in FILES}


def run_id(files: dict[str, bytes]) -> str:
    return str(json.loads(files["manifest.json"])["run_id"])


def test_same_data_gives_the_same_run_id_and_bytes_with_and_without_workers(
    project: pytest.Pytester,
) -> None:
    first = records(project, "out-a")
    again = records(project, "out-b")
    workers = records(project, "out-c", "-n", "2")
    assert first == again == workers
    manifest = json.loads(first["manifest.json"])
    assert manifest["custom"]["datasets"] == expected_fingerprints(project.path)


def test_changed_data_gives_a_new_run_id_and_moved_data_does_not(
    project: pytest.Pytester,
) -> None:
    before = run_id(records(project, "out-a"))
    qa = project.path / "data" / "qa.jsonl"
    qa.write_text('{"q": "2+2", "a": "5"}\n')
    changed = records(project, "out-b")
    assert run_id(changed) != before
    assert json.loads(changed["manifest.json"])["custom"]["datasets"]["qa"] == (
        f"sha256:{sha(qa.read_bytes())}")
    # Only content counts: the same bytes under another path give the run id back.
    qa.write_text('{"q": "2+2", "a": "4"}\n')
    qa.rename(project.path / "data" / "moved.jsonl")
    project.makeini(INI.replace("data/qa.jsonl", "data/moved.jsonl"))
    assert run_id(records(project, "out-c")) == before


def test_a_directory_fingerprint_follows_any_file_in_it(project: pytest.Pytester) -> None:
    before = run_id(records(project, "out-a"))
    (project.path / "data" / "corpus" / "sub" / "b.txt").write_text("beta!")
    assert run_id(records(project, "out-b")) != before


def test_the_session_run_gets_every_dataset_as_a_param(project: pytest.Pytester) -> None:
    project.runpytest("--track", "local", "-p", "no:randomly").assert_outcomes(
        passed=3, failed=1)
    params = only_session(project.path / "experiments").run.params
    assert {k: v for k, v in params.items() if k.startswith("dataset/")} == {
        f"dataset/{name}": value for name, value in expected_fingerprints(project.path).items()}


@pytest.mark.parametrize(("line", "message"), [
    ("qa data/qa.jsonl", "expected 'name = path'"),
    ("qa = data/nowhere.jsonl", "dataset 'qa': * does not exist"),
])
def test_a_bad_ini_declaration_is_a_usage_error(
    project: pytest.Pytester, line: str, message: str
) -> None:
    project.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                    f"insidellms_track_datasets =\n    {line}\n")
    result = project.runpytest("--track-records", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*insidellms_track_datasets: {message}*"])


def test_a_failing_hook_is_a_problem_and_changes_no_outcome(project: pytest.Pytester) -> None:
    project.makeconftest("""
        def pytest_insidellms_datasets(config):
            return {"qa": 3}
    """)
    result = project.runpytest("--track-records", "out", "-p", "no:randomly",
                               "-W", "ignore::pytest.PytestWarning")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*datasets: 1 problem(s)*expected a fingerprint string*"])
    manifest = json.loads((project.path / "out" / "manifest.json").read_text())
    assert set(manifest["custom"]["datasets"]) == {"qa", "corpus"}  # the ini's stay
