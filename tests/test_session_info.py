"""The git facts a session run records, which ``?branch=`` baselines are matched by."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_insidellms.session_info import ci_branch, git_params


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("a", "utf-8")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    return tmp_path


def test_a_branch_checkout_records_its_branch(repo: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REF_NAME", "not-this")
    params = git_params(repo)
    assert params["git_branch"] == "main"
    assert params["git_commit"] == git(repo, "rev-parse", "HEAD")
    assert params["git_dirty"] is False


def test_a_detached_checkout_takes_the_branch_ci_names(repo: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "checkout", "-q", "--detach")
    for name in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "CIRCLE_BRANCH",
                 "BUILDKITE_BRANCH", "BRANCH_NAME", "GIT_BRANCH"):
        monkeypatch.delenv(name, raising=False)
    assert git_params(repo)["git_branch"] == "HEAD"  # nothing better known
    monkeypatch.setenv("CI_COMMIT_REF_NAME", "feature/x")
    assert git_params(repo)["git_branch"] == "feature/x"


def test_ci_branch_prefers_a_pull_requests_own_branch() -> None:
    env = {"GITHUB_REF_NAME": "12/merge", "GITHUB_HEAD_REF": "fix-prompt"}
    assert ci_branch(env) == "fix-prompt"
    assert ci_branch({"GITHUB_HEAD_REF": "", "GITHUB_REF_NAME": "main"}) == "main"
    assert ci_branch({"GIT_BRANCH": "origin/release"}) == "release"
    assert ci_branch({}) is None
