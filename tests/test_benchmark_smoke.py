"""The benchmark script runs end to end at tiny sizes and prints every row of its table.

``benchmarks/run.py --smoke`` is run in subprocesses (the MLflow section, with its own
``mlflow server``, beside the other sections, so the whole check stays well under 30 s on two
cores). The figures mean nothing at these sizes; what is checked is that every configuration
ran, that the derived facts the table reports are there (no SDK imported with tracking off,
HTTP requests counted at the server), and that the machine, versions and command are recorded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run.py"

#: Every row of the table, by section (kept here on purpose: a row the script stops printing
#: fails this test).
ROWS = {
    "mlflow": ["3o0", "3a", "3b", "3s", "3c", "3d", "3e"],
    "other": ["1a", "1b", "1c", "1d", "2a", "2b", "2c", "2d", "2e", "2f", "2g", "2h",
              "4a", "4b", "4c", "5a", "5b", "5c", "5d", "6a", "6b"],
}
SECTIONS = {"mlflow": ["mlflow"], "other": ["off", "local", "backends", "xdist", "memory"]}


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INSIDELLMS_", "PYTEST_")) and k != "PYTHONWARNINGS"}
    processes = {
        part: subprocess.Popen(
            [sys.executable, str(SCRIPT), "--smoke",
             *(arg for section in sections for arg in ("--only", section))],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for part, sections in SECTIONS.items()
    }
    results = {}
    for part, process in processes.items():
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for other in processes.values():
                other.kill()
            raise
        assert process.returncode == 0, f"benchmarks/run.py ({part}) failed:\n{err[-4000:]}"
        results[part] = out
    return results


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        match = re.match(r"\| (\w+) \| (.*) \|$", line)
        if match and match.group(1) != "id":
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


@pytest.mark.parametrize("part", list(SECTIONS))
def test_smoke_run_prints_every_row_of_its_sections(outputs: dict[str, str], part: str) -> None:
    rows = table_rows(outputs[part])
    assert list(rows) == ROWS[part]
    measured = [row_id for row_id, cells in rows.items() if cells[2]]  # a wall time
    assert set(ROWS[part]) - set(measured) <= {"1c", "1d", "3s"}


def test_smoke_run_records_machine_versions_and_command(outputs: dict[str, str]) -> None:
    for output in outputs.values():
        assert re.search(r"^machine: \d+ cores, [\d.]+ GB RAM, ", output, re.MULTILINE)
        assert re.search(r"^python 3\.\d+.*pytest \d.*mlflow \d.*wandb \d.*tensorboardX \d",
                         output, re.MULTILINE)
        assert re.search(r"^command: .*benchmarks/run\.py --smoke --only", output, re.MULTILINE)
        assert "Targets (smoke sizes: verdicts mean nothing):" in output


def test_smoke_run_shows_that_tracking_off_imports_no_sdk(outputs: dict[str, str]) -> None:
    rows = table_rows(outputs["other"])
    assert rows["1c"][-1].endswith("SDKs imported: none")
    assert rows["1d"][-1].startswith("none of mlflow, wandb, tensorboardX")
    assert "[PASS] no SDK imported when tracking is off" in outputs["other"]


def test_smoke_run_counts_http_requests_at_the_server(outputs: dict[str, str]) -> None:
    rows = table_rows(outputs["mlflow"])
    for row_id in ("3a", "3c", "3d", "3e"):
        count = re.search(r"(\d+) HTTP requests", rows[row_id][-1])
        assert count is not None and int(count.group(1)) > 0, rows[row_id]
    # One request per logged value: far more than the plugin's batches.
    per_value = int(re.search(r"(\d+) HTTP requests", rows["3c"][-1]).group(1))  # type: ignore[union-attr]
    plugin = int(re.search(r"(\d+) HTTP requests", rows["3a"][-1]).group(1))  # type: ignore[union-attr]
    assert per_value > plugin
