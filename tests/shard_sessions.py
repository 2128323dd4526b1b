"""Running ``examples/evals`` as CI shards, each in its own process and track directory, as if
on its own machine; and the merge command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = "examples/evals"
#: The four deterministic run files.
RUN_FILES = ("records.jsonl", "manifest.json", "summary.json", "report.html")
#: What a CI machine sets that would change which shard a session is.
CI_MARKERS = ("GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "BUILDKITE", "TF_BUILD", "JENKINS_URL")


def clean_env(**extra: str) -> dict[str, str]:
    prefixes = ("INSIDELLMS_", "MLFLOW_", "WANDB_", "PYTEST_", "GITHUB_", "CI_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(prefixes) and k not in CI_MARKERS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_pytest(*args: str, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=ROOT, env=env or clean_env(), capture_output=True, text=True, timeout=300,
        check=False)


def run_merge(*args: str | Path, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_insidellms", "merge", *map(str, args)],
        cwd=ROOT, env=env or clean_env(), capture_output=True, text=True, timeout=300,
        check=False)


def files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in RUN_FILES}


def checked(process: subprocess.CompletedProcess[str], *codes: int,
            ) -> subprocess.CompletedProcess[str]:
    assert process.returncode in codes, process.stdout + process.stderr
    return process
