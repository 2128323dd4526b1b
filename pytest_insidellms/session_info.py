"""Params that let a tracked session be matched with its code, command and CI job.

Only named variables are read: the environment is never logged wholesale.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from .experiment_tracking.redaction import REDACTED, is_secret_name


def session_params(config: pytest.Config, version: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "pytest_command": command_line(config.invocation_params.args),
        "rootdir": str(config.rootpath),
        "plugin_version": version,
        "pytest_version": pytest.__version__,
        "python_version": platform.python_version(),
        "xdist_workers": _xdist_workers(config),
    }
    params.update(git_params(config.rootpath))
    url = ci_run_url(os.environ)
    if url:
        params["ci_run_url"] = url
    return params


def command_line(args: Sequence[str | os.PathLike[str]]) -> str:
    """The pytest command line, with the values of secret-named options masked.

    ``--api-key X``, ``--openai-key=X`` and ``-o api_token=X`` lose their values (a value
    after a secret-named flag is masked even if the flag takes none: better one path too
    many hidden than a key shown). Values that look like credentials anywhere else are
    masked by the trackers' redaction.
    """
    shown: list[str] = []
    previous = ""
    for arg in map(str, args):
        if previous in ("-o", "--override-ini") and "=" in arg:
            key, _, _ = arg.partition("=")
            shown.append(f"{key}={REDACTED}" if is_secret_name(key) else arg)
        elif arg.startswith("--") and "=" in arg:
            flag, _, _ = arg.partition("=")
            shown.append(f"{flag}={REDACTED}" if is_secret_name(flag[2:]) else arg)
        elif previous.startswith("--") and "=" not in previous and is_secret_name(previous[2:]) \
                and not arg.startswith("-"):
            shown.append(REDACTED)
        else:
            shown.append(arg)
        previous = arg
    return shlex.join(["pytest", *shown])


def _xdist_workers(config: pytest.Config) -> int:
    workers = config.getoption("numprocesses", None)
    if workers in (None, "auto", "logical"):
        return 0 if workers is None else -1
    try:
        return int(workers)
    except (TypeError, ValueError):
        return 0


def git_params(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    branch = git("rev-parse", "--abbrev-ref", "HEAD") or ""
    if branch in ("", "HEAD"):  # detached, as CI checks out: the CI knows the branch
        branch = ci_branch(os.environ) or branch
    return {"git_commit": commit, "git_branch": branch, "git_dirty": bool(status)}


#: Where CI services name the branch of a detached checkout (a pull request's own branch
#: first: GitHub's GITHUB_REF_NAME is then "123/merge").
_BRANCH_VARIABLES: Final = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME",
                            "CIRCLE_BRANCH", "BUILDKITE_BRANCH", "BRANCH_NAME", "GIT_BRANCH")


def ci_branch(env: os._Environ[str] | dict[str, str]) -> str | None:
    """The branch a CI job builds, for ``?branch=`` baselines of detached checkouts."""
    for name in _BRANCH_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value.removeprefix("origin/")
    return None


def ci_run_url(env: os._Environ[str] | dict[str, str]) -> str | None:
    """The web address of the CI job running this session, for the providers we recognise."""
    get = env.get
    if get("GITHUB_ACTIONS") == "true" and get("GITHUB_RUN_ID"):
        server = get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{get('GITHUB_REPOSITORY', '')}/actions/runs/{get('GITHUB_RUN_ID')}"
    if get("GITLAB_CI"):
        return get("CI_JOB_URL") or get("CI_PIPELINE_URL")
    if get("BUILDKITE"):
        return get("BUILDKITE_BUILD_URL")
    if get("CIRCLECI"):
        return get("CIRCLE_BUILD_URL")
    if get("JENKINS_URL"):
        return get("BUILD_URL")
    if get("TF_BUILD") and get("BUILD_BUILDID"):
        base = get("SYSTEM_COLLECTIONURI", "") + get("SYSTEM_TEAMPROJECT", "")
        return f"{base}/_build/results?buildId={get('BUILD_BUILDID')}"
    return None
