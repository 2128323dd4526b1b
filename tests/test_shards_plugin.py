"""The plugin side of a shard: what it deselects, what it tells the backends, shard.json."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shlex
from pathlib import Path

import pytest
import yaml
from local_runs import only_session
from shard_sessions import CI_MARKERS, ROOT, clean_env, run_pytest
from test_examples import option

SUITE = """
import pytest

@pytest.mark.experiment(name="labels")
@pytest.mark.parametrize("case", range(12))
def test_label(case):
    assert case % 5 != 4

@pytest.mark.parametrize("n", range(6))
def test_plain(n):
    pass
"""
#: Every test id pytest collects from SUITE.
COLLECTED = [*(f"test_suite.py::test_label[{i}]" for i in range(12)),
             *(f"test_suite.py::test_plain[{n}]" for n in range(6))]
#: Writes what pytest_deselected received, whoever deselected it.
RECORD_DESELECTED = """
import json, os

def pytest_deselected(items):
    with open(os.environ["DESELECTED_LOG"], "a") as log:
        log.write(json.dumps([item.nodeid for item in items]) + "\\n")
"""


def expected_shard(nodeid: str, total: int) -> int:
    """The split, computed here from its definition: sha256 of the node id, first 8 bytes."""
    return int(hashlib.sha256(nodeid.encode()).hexdigest()[:16], 16) % total + 1


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in CI_MARKERS:
        monkeypatch.delenv(name, raising=False)
    for name in ("INSIDELLMS_TRACK_SHARD", "INSIDELLMS_TRACK_GROUP", "GITHUB_RUN_ATTEMPT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DESELECTED_LOG", str(pytester.path / "deselected.log"))
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeconftest(RECORD_DESELECTED)
    return pytester


def deselected(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "deselected.log"
    if not log.exists():
        return []
    ids = [i for line in log.read_text().splitlines() for i in json.loads(line)]
    log.unlink()
    return ids


def ran(result: pytest.RunResult) -> list[str]:
    return sorted(line.split(" ", 1)[0] for line in result.outlines
                  if line.startswith("test_suite.py::") and (" PASSED" in line
                                                             or " FAILED" in line))


def test_the_shard_runs_its_part_and_deselects_the_rest_as_pytest_does(
        suite: pytest.Pytester) -> None:
    mine = [n for n in COLLECTED if expected_shard(n, 3) == 2]
    result = suite.runpytest("-v", "--track-records=out", "--track-shard=2/3",
                             "--track-group=g")
    assert ran(result) == sorted(mine)
    assert sorted(deselected(suite)) == sorted(set(COLLECTED) - set(mine))
    result.stdout.fnmatch_lines([f"*{len(COLLECTED) - len(mine)} deselected*"])
    assert "insidellms: shard 2/3 of group g, attempt 1 (from --track-shard" in result.stdout.str()
    # an untracked session only splits: no group is needed
    untracked = suite.runpytest("-v", "--track-shard=2/3")
    assert ran(untracked) == sorted(mine)


def test_shard_json_and_the_run_id_of_the_whole_collection(suite: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    suite.runpytest("--track-records=whole")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "77")
    monkeypatch.setenv("GITHUB_JOB", "evals")
    for attempt in (1, 2):
        monkeypatch.setenv("GITHUB_RUN_ATTEMPT", str(attempt))
        suite.runpytest(f"--track-records=shard-a{attempt}", "--track-shard=1/2")
    whole = json.loads((suite.path / "whole" / "manifest.json").read_text())
    part = json.loads((suite.path / "shard-a1" / "manifest.json").read_text())
    assert part["run_id"] == whole["run_id"]  # hashed from every collected id
    shard = json.loads((suite.path / "shard-a1" / "shard.json").read_text())
    mine = sorted(n for n in COLLECTED if expected_shard(n, 2) == 1)
    assert {k: shard[k] for k in ("group", "index", "total", "attempt", "collected",
                                  "selected", "project", "run_id")} == {
        "group": "77-evals", "index": 1, "total": 2, "attempt": 1,
        "collected": sorted(COLLECTED), "selected": mine, "project": "insideLLMs",
        "run_id": whole["run_id"]}
    assert shard["collection_sha256"] == whole["custom"]["collected_sha256"]
    # deterministic but for the attempt
    again = (suite.path / "shard-a2" / "shard.json").read_text()
    assert again.replace('"attempt": 2', '"attempt": 1') == (
        suite.path / "shard-a1" / "shard.json").read_text()


def test_with_pytest_split_the_plugin_reads_the_shard_and_lets_pytest_split_deselect(
        suite: pytest.Pytester) -> None:
    untracked = suite.runpytest("-v", "--splits=3", "--group=3")
    split_ran, split_deselected = ran(untracked), deselected(suite)
    assert split_ran and split_deselected
    tracked = suite.runpytest("-v", "--splits=3", "--group=3", "--track-records=out",
                              "--track-group=g")
    assert ran(tracked) == split_ran
    assert deselected(suite) == split_deselected  # nothing deselected a second time
    shard = json.loads((suite.path / "out" / "shard.json").read_text())
    assert (shard["index"], shard["total"], shard["source"]) == (
        3, 3, "pytest-split --splits/--group")
    assert shard["selected"] == split_ran


def test_gitlab_parallel_is_detected_and_none_opts_out(suite: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"GITLAB_CI": "true", "CI_PIPELINE_ID": "31", "CI_JOB_NAME": "evals 3/3",
                        "CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3", "CI_JOB_ID": "900"}.items():
        monkeypatch.setenv(name, value)
    result = suite.runpytest("-v", "--track-records=out")
    assert ran(result) == sorted(n for n in COLLECTED if expected_shard(n, 3) == 3)
    shard = json.loads((suite.path / "out" / "shard.json").read_text())
    assert (shard["group"], shard["index"], shard["attempt"]) == ("31-evals", 3, 900)
    whole = suite.runpytest("-v", "--track-records=out2", "--track-shard=none")
    assert ran(whole) == sorted(COLLECTED)
    assert not (suite.path / "out2" / "shard.json").exists()


def test_every_run_of_the_shard_carries_it(suite: pytest.Pytester) -> None:
    suite.runpytest("--track=local", "--track-dir=td", "--track-shard=1/2", "--track-group=g9")
    session = only_session(suite.path / "td")
    assert {k: session.run.params[k] for k in ("shard_group", "shard_index", "shard_total",
                                               "shard_attempt")} == {
        "shard_group": "g9", "shard_index": 1, "shard_total": 2, "shard_attempt": 1}
    assert session.run.name.endswith("_shard1of2")
    for run in (session.run, *session.modules.values()):
        assert {"shard:1of2", "shard-group:g9"} <= set(run.data["metadata"]["tags"])


def test_under_xdist_the_workers_select_the_same_shard(suite: pytest.Pytester) -> None:
    suite.runpytest("--track-records=single", "--track-shard=2/3", "--track-group=g")
    suite.runpytest("-n", "2", "--track-records=workers", "--track-shard=2/3",
                    "--track-group=g")
    for name in ("records.jsonl", "summary.json", "manifest.json", "shard.json"):
        assert (suite.path / "workers" / name).read_bytes() == (
            suite.path / "single" / name).read_bytes(), name



# -- the CI recipes ---------------------------------------------------------------------------

RECIPES = ROOT / "examples" / "ci"


def recipe_commands(name: str) -> tuple[str, str]:
    """The recipe's shard command (pytest ...) and merge command."""
    loaded = yaml.safe_load((RECIPES / name).read_text())
    if "jobs" in loaded:  # GitHub Actions
        lines = [step.get("run", "") for job in loaded["jobs"].values() for step in job["steps"]]
    else:
        lines = [line for job in loaded.values() if isinstance(job, dict)
                 for line in job.get("script", [])]
    (shard,) = [line for line in lines if line.startswith("pytest ")]
    (merge,) = [line for line in lines if "pytest_insidellms merge" in line]
    return shard, merge


@pytest.mark.parametrize(("name", "env", "values", "downloaded"), [
    # download-artifact puts each artifact in <path>/<artifact name>/
    ("github-actions-sharded.yml", {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1",
                                    "GITHUB_JOB": "evals"}, {"${{ matrix.shard }}": "2"},
     "shards/eval-shard-2-attempt-1/{}"),
    # GitLab extracts every needed job's artifacts in place
    ("gitlab-ci-sharded.yml", {"GITLAB_CI": "true", "CI_PIPELINE_ID": "1",
                               "CI_JOB_NAME": "evals 2/3", "CI_NODE_INDEX": "2",
                               "CI_NODE_TOTAL": "3"}, {"$CI_NODE_INDEX": "2"}, "{}"),
])
def test_the_sharded_recipes_run_one_shard_each_and_merge_what_they_upload(
        name: str, env: dict[str, str], values: dict[str, str], downloaded: str,
        tmp_path: Path) -> None:
    shard, merge = recipe_commands(name)
    for old, new in values.items():
        shard = shard.replace(old, new)
    moved = {"evals/": "examples/evals", "--track-dir": f"--track-dir={tmp_path / 'runs'}",
             "--track-records": f"--track-records={tmp_path / 'records'}",
             "--junitxml": f"--junitxml={tmp_path / 'evals.xml'}"}
    args = [next((new for old, new in moved.items() if arg.split("=")[0] == old), arg)
            for arg in shlex.split(shard)[1:]]
    process = run_pytest(*args, "--collect-only", "-q", env=clean_env(**env))
    assert process.returncode == 0, process.stdout + process.stderr
    mine = sum(expected_shard(n, 3) == 2 for n in collected_ids())
    assert f"{mine}/30 tests collected ({30 - mine} deselected)" in process.stdout
    words = shlex.split(merge)
    assert words[:4] == ["python", "-m", "pytest_insidellms", "merge"] and "--out" in words
    records = option(shlex.split(shard), "--track-records")
    assert fnmatch.fnmatch(downloaded.format(records), words[4])


def collected_ids() -> list[str]:
    process = run_pytest("examples/evals", "--collect-only", "-q")
    return [line for line in process.stdout.splitlines() if "::" in line]

