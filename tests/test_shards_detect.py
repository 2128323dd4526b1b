"""Which shard a session is: the detection table, the split, and the options' errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pytest_insidellms.shards.detect import ShardError, ShardInfo, detect_shard, parse_shard
from pytest_insidellms.shards.select import selection, shard_of

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "9001", "GITHUB_JOB": "evals",
          "GITHUB_RUN_ATTEMPT": "3"}
GITLAB = {"GITLAB_CI": "true", "CI_PIPELINE_ID": "4242", "CI_JOB_NAME": "evals 2/3",
          "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3", "CI_JOB_ID": "777"}
CIRCLE = {"CIRCLECI": "true", "CIRCLE_WORKFLOW_ID": "wf-1", "CIRCLE_JOB": "evals",
          "CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "4", "CIRCLE_BUILD_NUM": "55"}
BUILDKITE = {"BUILDKITE": "true", "BUILDKITE_BUILD_ID": "b-9", "BUILDKITE_PARALLEL_JOB": "4",
             "BUILDKITE_PARALLEL_JOB_COUNT": "5", "BUILDKITE_RETRY_COUNT": "1"}


@pytest.mark.parametrize(("given", "expected"), [
    # the option itself, with a group
    ({"shard": ("2/3", "--track-shard"), "group": ("g", "--track-group")},
     ShardInfo(2, 3, "g", 1, "--track-shard", True)),
    # the option in CI: the group is the run without its attempt, the attempt apart
    ({"shard": ("1/2", "--track-shard"), "env": GITHUB},
     ShardInfo(1, 2, "9001-evals", 3, "--track-shard", True)),
    # pytest-split (1-based) and pytest-shard (0-based) only detect: they deselect
    ({"splitter": {"splits": 3, "group": 3}, "group": ("g", "--track-group")},
     ShardInfo(3, 3, "g", 1, "pytest-split --splits/--group", False)),
    ({"splitter": {"shard_id": 0, "num_shards": 2}, "env": GITHUB},
     ShardInfo(1, 2, "9001-evals", 3, "pytest-shard --shard-id/--num-shards", False)),
    # GitLab parallel: 1-based index, the " 2/3" suffix of the job name is not the group
    ({"env": GITLAB}, ShardInfo(2, 3, "4242-evals", 777, "GitLab CI (CI_NODE_INDEX/CI_NODE_TOTAL)",
                                True)),
    ({"env": CIRCLE}, ShardInfo(1, 4, "wf-1-evals", 55,
                                "CircleCI (CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL)", True)),
    ({"env": BUILDKITE}, ShardInfo(5, 5, "b-9", 2, "Buildkite (BUILDKITE_PARALLEL_JOB/"
                                                   "BUILDKITE_PARALLEL_JOB_COUNT)", True)),
    # an explicit group beats the CI's
    ({"env": GITLAB, "group": ("mine", "--track-group")},
     ShardInfo(2, 3, "mine", 777, "GitLab CI (CI_NODE_INDEX/CI_NODE_TOTAL)", True)),
])
def test_detection_table(given: dict[str, Any], expected: ShardInfo) -> None:
    assert detect_shard(**given) == expected


@pytest.mark.parametrize("given", [
    {},  # nothing at all
    {"env": GITHUB},  # a GitHub job that is no matrix shard
    {"env": {**GITLAB, "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1"}},  # no parallel:
    {"splitter": {"shard_id": 0, "num_shards": 1}},  # pytest-shard's defaults
    {"splitter": {"splits": None, "group": None}},
    {"shard": ("none", "--track-shard"), "env": GITLAB},  # opted out in a parallel job
])
def test_not_a_shard(given: dict[str, Any]) -> None:
    assert detect_shard(**given) is None


@pytest.mark.parametrize(("given", "words"), [
    ({"shard": ("2/3", "--track-shard")}, ["--track-shard", "--track-group"]),
    ({"splitter": {"splits": 2, "group": 1}}, ["pytest-split", "--track-group"]),
    ({"shard": ("0/3", "--track-shard"), "group": ("g", "x")}, ["--track-shard", "1..3"]),
    ({"shard": ("4/3", "environment variable INSIDELLMS_TRACK_SHARD"), "group": ("g", "x")},
     ["INSIDELLMS_TRACK_SHARD", "not one of 1..3"]),
    ({"shard": ("two", "ini option insidellms_track_shard")},
     ["insidellms_track_shard", "'two'"]),
    ({"shard": ("1/2", "--track-shard"), "group": ("has space", "--track-group")},
     ["--track-group", "'has space'"]),
    ({"shard": ("1/2", "--track-shard"), "splitter": {"splits": 2, "group": 1},
      "group": ("g", "x")}, ["--track-shard", "pytest-split", "give one"]),
    ({"env": {**GITLAB, "CI_NODE_INDEX": "x"}}, ["CI_NODE_INDEX", "'x'"]),
    ({"env": {**CIRCLE, "CIRCLE_NODE_INDEX": "4"}}, ["CircleCI", "not one of 0..3"]),
])
def test_bad_settings_name_their_source(given: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ShardError) as raised:
        detect_shard(**given)
    for word in words:
        assert word in str(raised.value)


def test_a_session_that_tracks_nothing_needs_no_group() -> None:
    assert detect_shard(shard=("1/2", "--track-shard"), need_group=False) == ShardInfo(
        1, 2, "", 1, "--track-shard", True)


def test_parse_shard() -> None:
    assert parse_shard(" 3 / 10 ", "x") == (3, 10)
    assert parse_shard("OFF", "x") is None


def test_the_split_is_a_hash_of_the_node_id_a_partition_and_stable_when_tests_are_added() -> None:
    ids = [f"tests/test_m{m}.py::test_case[{i}]" for m in range(4) for i in range(60)]
    for nodeid in ids[:20]:  # computed independently: the first 8 bytes of sha256, mod N
        expected = int(hashlib.sha256(nodeid.encode()).hexdigest()[:16], 16) % 3 + 1
        assert shard_of(nodeid, 3) == expected
    shards = [ShardInfo(i, 3, "g") for i in (1, 2, 3)]
    parts = [selection(ids, s) for s in shards]
    assert sorted(n for part in parts for n in part) == sorted(ids)  # each test exactly once
    assert all(len(part) > 40 for part in parts)  # 240 tests: no shard near empty
    grown = [*ids, *(f"tests/test_new.py::test_{i}" for i in range(50))]
    for shard, part in zip(shards, parts):
        assert [n for n in selection(grown, shard) if n in set(ids)] == part


def test_bad_option_values_exit_4_naming_their_source(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("--track-records=out", "--track-shard=3/2",
                                           "--track-group=g")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--track-shard: shard 3 is not one of 1..2" in result.stderr.str()
    monkeypatch.setenv("INSIDELLMS_TRACK_SHARD", "1/2")
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "BUILDKITE", "TF_BUILD",
                 "JENKINS_URL"):
        monkeypatch.delenv(name, raising=False)
    result = pytester.runpytest_subprocess("--track-records=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "environment variable INSIDELLMS_TRACK_SHARD makes this session" in (
        result.stderr.str())
    assert "--track-group" in result.stderr.str()
    pytester.makeini("[pytest]\ninsidellms_track_group = has space\n")
    result = pytester.runpytest_subprocess("--track-records=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini option insidellms_track_group: a group is" in result.stderr.str()
