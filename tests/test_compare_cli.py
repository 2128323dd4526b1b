"""``python -m pytest_insidellms compare`` exits 0 on a passing gate, 2 on a failing one and 1
on an error; ``bless`` copies a complete run directory over a committed baseline."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gate_sessions import experiment_cases, flipped, model_answers

from pytest_insidellms.gate.cli import EXIT_ERROR, EXIT_FAILED, EXIT_PASSED, bless, compare
from pytest_insidellms.records import FILES, RecordsSession, write_records

BASE = model_answers(200, 0.85, seed=11)


def run_directory(path: Path, answers: list[bool], *, completed: bool = True) -> Path:
    cases = experiment_cases(answers)
    session = RecordsSession("cli-tests", [c.nodeid for c in cases], run_completed=completed)
    write_records(path, session, cases)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "base": run_directory(tmp_path / "base", BASE),
        "same": run_directory(tmp_path / "same", BASE),
        "one_flip": run_directory(tmp_path / "one_flip", flipped(BASE, 1)),
        "thirty": run_directory(tmp_path / "thirty", flipped(BASE, 30)),
    }


def python_m(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "pytest_insidellms", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_exit_codes_through_python_m(runs: dict[str, Path], tmp_path: Path) -> None:
    passing = python_m("compare", runs["base"], runs["same"], "--gate", "*/accuracy:drop<=0")
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.startswith("regression gate passed against")
    failing = python_m("compare", runs["base"], runs["thirty"] / "records.jsonl",
                       "--gate", "*/accuracy:drop<=0", "--gate", "regressions<=0")
    assert failing.returncode == 2, failing.stderr
    assert "cases: 200 common, 0 new, 0 removed, 30 pass->fail" in failing.stdout
    missing = python_m("compare", tmp_path / "nowhere", runs["same"])
    assert missing.returncode == 1 and "baseline" in missing.stderr
    assert "nowhere" in missing.stderr
    usage = python_m("compare", runs["base"])
    assert usage.returncode == 1 and "required" in usage.stderr


def test_one_flip_passes_the_default_rule_but_not_regressions(runs: dict[str, Path]) -> None:
    out = io.StringIO()
    assert compare(runs["base"], runs["one_flip"], stdout=out) == EXIT_PASSED
    assert "pass_rate:drop<=0" in out.getvalue()
    assert compare(runs["base"], runs["one_flip"], ["regressions<=0"],
                   stdout=io.StringIO()) == EXIT_FAILED


def test_a_bad_rule_is_an_error_naming_it(runs: dict[str, Path]) -> None:
    err = io.StringIO()
    assert compare(runs["base"], runs["same"], ["*/accuracy=>0.8"], stderr=err) == EXIT_ERROR
    assert "--gate: gate rule '*/accuracy=>0.8': write >= instead of =>" in err.getvalue()
    err = io.StringIO()
    assert compare(runs["base"], runs["same"], ["nope/accuracy>=0.8"],
                   stderr=err) == EXIT_ERROR
    assert "'nope/accuracy' matches no metric" in err.getvalue()
    assert compare(runs["base"], runs["same"], alpha=0.7, stderr=io.StringIO()) == EXIT_ERROR


def test_unreadable_records_are_an_error_naming_file_and_line(runs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    lines = (runs["base"] / "records.jsonl").read_text().splitlines()
    broken.write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    err = io.StringIO()
    assert compare(broken, runs["same"], stderr=err) == EXIT_ERROR
    assert f"{broken}:2: not JSON" in err.getvalue()
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"status": "success", "example_id": "1"}) + "\n")
    err = io.StringIO()
    assert compare(runs["base"], foreign, stderr=err) == EXIT_ERROR
    assert "candidate" in err.getvalue() and "record 1: no custom block" in err.getvalue()
    twice = tmp_path / "twice.jsonl"
    twice.write_text(lines[0] + "\n" + lines[0] + "\n")
    err = io.StringIO()
    assert compare(twice, runs["same"], stderr=err) == EXIT_ERROR
    assert "appears twice" in err.getvalue()


@pytest.mark.parametrize("output_format", ["text", "md", "json"])
def test_formats_and_gate_files(runs: dict[str, Path], tmp_path: Path,
                                output_format: str) -> None:
    out = io.StringIO()
    status = compare(runs["base"], runs["thirty"], ["*/accuracy:drop<=0"],
                     output_format=output_format,  # type: ignore[arg-type]
                     out_dir=tmp_path / "gate", stdout=out)
    assert status == EXIT_FAILED
    text = out.getvalue()
    if output_format == "json":
        assert json.loads(text)["passed"] is False
        assert text == (tmp_path / "gate" / "gate.json").read_text()
    elif output_format == "md":
        assert text == (tmp_path / "gate" / "gate.md").read_text(encoding="utf-8")
        assert "<details><summary>30 pass -&gt; fail</summary>" in text
    else:
        assert "qa/accuracy" in text and "FAIL" in text


def test_alpha_zero_and_the_seed_reach_the_engine(runs: dict[str, Path]) -> None:
    out = io.StringIO()
    assert compare(runs["base"], runs["one_flip"], ["*/accuracy:drop<=0"], alpha=0,
                   output_format="json", stdout=out) == EXIT_FAILED
    assert json.loads(out.getvalue())["alpha"] == 0
    out = io.StringIO()
    compare(runs["base"], runs["same"], seed=7, output_format="json", stdout=out)
    assert json.loads(out.getvalue())["seed"] == 7


# --- bless -----------------------------------------------------------------------------------

def test_bless_copies_the_deterministic_files_and_nothing_else(runs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    source = runs["thirty"]
    (source / "tracking.json").write_text("{}")
    dest = tmp_path / "repo" / "baselines" / "evals"
    done = python_m("bless", source, dest)
    assert done.returncode == 0, done.stderr
    assert "blessed 200 records" in done.stdout
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    # Blessing again replaces the files and leaves the user's own alone.
    (dest / "README.md").write_text("our baseline")
    assert bless(runs["base"], dest, stdout=io.StringIO()) == EXIT_PASSED
    assert (dest / "records.jsonl").read_bytes() == (runs["base"] / "records.jsonl").read_bytes()
    assert (dest / "README.md").read_text() == "our baseline"
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
    assert compare(dest, runs["same"], ["regressions<=0"], stdout=io.StringIO()) == EXIT_PASSED


def test_bless_refuses_what_is_not_a_complete_run_directory(runs: dict[str, Path],
                                                            tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    interrupted = run_directory(tmp_path / "interrupted", BASE, completed=False)
    partial = run_directory(tmp_path / "partial", BASE)
    (partial / "summary.json").unlink()
    miscounted = run_directory(tmp_path / "miscounted", BASE)
    records = (miscounted / "records.jsonl").read_text().splitlines()
    (miscounted / "records.jsonl").write_text("\n".join(records[:-1]) + "\n")
    cases = [(interrupted, "interrupted session"), (partial, "no summary.json"),
             (miscounted, "the manifest counts 200 records, records.jsonl holds 199"),
             (runs["base"] / "records.jsonl", "is not a run directory")]
    for source, message in cases:
        err = io.StringIO()
        assert bless(source, dest, stderr=err) == EXIT_ERROR
        assert message in err.getvalue()
    assert not dest.exists()
    err = io.StringIO()
    assert bless(runs["base"], runs["base"], stderr=err) == EXIT_ERROR
    assert "is the source itself" in err.getvalue()
    (tmp_path / "file").write_text("x")
    assert bless(runs["base"], tmp_path / "file", stderr=io.StringIO()) == EXIT_ERROR


def test_the_readme_shows_what_compare_prints(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, answers in (("main", BASE), ("pr", flipped(BASE, 12, improvements=1))):
        cases = experiment_cases(answers, experiment="closed_book_qa")
        write_records(Path(name), RecordsSession("demo", [c.nodeid for c in cases]), cases)
    out = io.StringIO()
    status = compare(Path("main/"), Path("pr/"),
                     ["*/accuracy:drop<=2%", "regressions<=5", "pass_rate>=0.8"], stdout=out)
    assert status == EXIT_FAILED
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert out.getvalue() in readme
