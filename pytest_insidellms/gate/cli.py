"""``python -m pytest_insidellms compare`` and ``bless``: the gate offline, on run directories.

``compare BASE CAND`` runs the same engine as the plugin on two records directories (or
``records.jsonl`` files) and exits 0 when the gate passes, 2 when it fails and 1 on an error
(unreadable input, a malformed record, a bad rule), the codes ``insidellms diff`` uses. Usage
errors exit 1 too, so 2 always means a failed gate. Without ``--gate`` the rule is
``pass_rate:drop<=0``: fail when the data shows the session's pass rate dropped.

``bless RECORDS DEST`` makes a session's run directory the committed baseline: it copies the
deterministic files (records.jsonl, summary.json, report.html, manifest.json; never
tracking.json, which changes every run) into DEST, creating it. Each file is replaced
atomically and the manifest, which marks a run directory complete, is removed first and
written last, so an interrupted bless leaves a directory that reads as incomplete, never a
mix that reads as whole. Other files in DEST (a README, .gitattributes) are left alone. A
source that is not a complete run directory (a file missing, an interrupted session, a
manifest that does not count its records) is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal, NoReturn

from ..records import FILES, read_records
from ..records.canonical import pretty_json, write_atomic
from .engine import GateSettings, evaluate
from .render import render_markdown, render_text, write_gate_files
from .rules import RuleError, parse_rules

__all__ = ["COMMANDS", "DEFAULT_RULES", "EXIT_ERROR", "EXIT_FAILED", "EXIT_PASSED",
           "BlessError", "bless", "bless_run_directory", "compare", "run"]

EXIT_PASSED: Final = 0
EXIT_ERROR: Final = 1
EXIT_FAILED: Final = 2
#: The commands this module runs, with their one-line help, for the dispatcher's listing.
COMMANDS: Final[Mapping[str, str]] = {
    "compare": "judge a candidate run directory against a baseline (exit 0 pass, 2 fail)",
    "bless": "copy a session's records over a committed baseline directory",
}
DEFAULT_RULES: Final = ("pass_rate:drop<=0",)
Format = Literal["text", "md", "json"]
_MANIFEST: Final = "manifest.json"
_RECORDS: Final = "records.jsonl"


class BlessError(ValueError):
    """The source cannot become a baseline; the message says why."""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1: exit 2 is kept for a failed gate."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def run(argv: Sequence[str]) -> int:
    """Parse ``argv`` (starting with the command's name) and run the command."""
    parser = _Parser(prog="python -m pytest_insidellms")
    commands = parser.add_subparsers(dest="command", required=True)
    compare_parser = commands.add_parser(
        "compare", help=COMMANDS["compare"],
        description="Run the regression gate on two run directories. Exit 0 when the gate "
                    "passes, 2 when it fails, 1 on an error.")
    compare_parser.add_argument("base", type=Path,
                                help="the baseline: a records directory or records.jsonl")
    compare_parser.add_argument("candidate", type=Path,
                                help="the candidate: a records directory or records.jsonl")
    compare_parser.add_argument("--gate", action="append", dest="rules", metavar="RULE",
                                help="a gate rule, repeatable (default: "
                                     f"{' '.join(DEFAULT_RULES)})")
    compare_parser.add_argument("--alpha", type=float, default=0.05,
                                help="one-sided level, Holm-adjusted over the rules; 0 "
                                     "compares raw point values (default 0.05)")
    compare_parser.add_argument("--seed", type=int, default=0,
                                help="seed of the paired bootstrap (default 0)")
    compare_parser.add_argument("--format", choices=("text", "md", "json"), default="text")
    compare_parser.add_argument("--out", type=Path, default=None,
                                help="also write gate.json and gate.md into this directory")
    bless_parser = commands.add_parser(
        "bless", help=COMMANDS["bless"],
        description="Copy a complete run directory's deterministic files over DEST.")
    bless_parser.add_argument("records", type=Path, help="the session's records directory")
    bless_parser.add_argument("dest", type=Path, help="the committed baseline directory")
    args = parser.parse_args(list(argv))
    if args.command == "bless":
        return bless(args.records, args.dest)
    return compare(args.base, args.candidate, args.rules or DEFAULT_RULES, alpha=args.alpha,
                   seed=args.seed, output_format=args.format, out_dir=args.out)


def compare(base: Path, candidate: Path, rules: Sequence[str] = DEFAULT_RULES, *,
            alpha: float = 0.05, seed: int = 0, output_format: Format = "text",
            out_dir: Path | None = None, stdout: IO[str] | None = None,
            stderr: IO[str] | None = None) -> int:
    """The ``compare`` command; returns its exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        settings = GateSettings(tuple(parse_rules(rules, "--gate")), alpha=alpha, seed=seed)
        baseline = load_records(base, "baseline")
        current = load_records(candidate, "candidate")
        verdict = evaluate(current, baseline, settings, baseline_label=str(base))
    except (RuleError, ValueError, OSError) as error:
        print(f"compare: {error}", file=err)
        return EXIT_ERROR
    if output_format == "json":
        out.write(pretty_json(verdict.to_json()))
    elif output_format == "md":
        out.write(render_markdown(verdict))
    else:
        out.write(render_text(verdict))
    if out_dir is not None:
        try:
            write_gate_files(out_dir, verdict)
        except OSError as error:
            print(f"compare: cannot write the gate files: {error}", file=err)
            return EXIT_ERROR
    return EXIT_PASSED if verdict.passed else EXIT_FAILED


def load_records(path: Path, side: str) -> list[dict[str, Any]]:
    """Records the engine can read, or ValueError/OSError naming the file and the line."""
    if not path.exists():
        raise FileNotFoundError(f"{side} {path} does not exist")
    if path.is_dir() and not (path / _RECORDS).is_file():
        raise FileNotFoundError(f"{side} {path} holds no {_RECORDS}")
    records = read_records(path)
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        problem = _record_problem(record)
        if problem is None:
            key = str(record["custom"]["replicate_key"])
            problem = f"case key {key!r} appears twice" if key in seen else None
            seen.add(key)
        if problem is not None:
            raise ValueError(f"{side} {path}: record {number}: {problem}")
    return records


def _record_problem(record: Mapping[str, Any]) -> str | None:
    if not isinstance(record.get("status"), str):
        return "no status"
    custom = record.get("custom")
    if not isinstance(custom, Mapping):
        return "no custom block (not written by pytest-insidellms?)"
    for name in ("replicate_key", "nodeid", "module", "outcome"):
        if not isinstance(custom.get(name), str):
            return f"no custom.{name}"
    if not isinstance(record.get("scores", {}) or {}, Mapping):
        return "scores is not an object"
    return None


def bless(source: Path, dest: Path, *, stdout: IO[str] | None = None,
          stderr: IO[str] | None = None) -> int:
    """The ``bless`` command; returns its exit status."""
    try:
        count = bless_run_directory(source, dest)
    except (BlessError, OSError) as error:
        print(f"bless: {error}", file=stderr or sys.stderr)
        return EXIT_ERROR
    print(f"blessed {count} records from {source} into {dest}", file=stdout or sys.stdout)
    return EXIT_PASSED


def bless_run_directory(source: Path, dest: Path) -> int:
    """Copy ``source``'s deterministic files over ``dest``; returns the number of records."""
    contents = _complete_run(source)
    if dest.exists() and not dest.is_dir():
        raise BlessError(f"{dest} exists and is not a directory")
    if dest.exists() and dest.resolve() == source.resolve():
        raise BlessError(f"{dest} is the source itself")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / _MANIFEST).unlink(missing_ok=True)
    for name in FILES:  # the manifest comes last
        write_atomic(dest / name, contents[name])
    manifest: dict[str, Any] = json.loads(contents[_MANIFEST])
    return int(manifest["record_count"])


def _complete_run(source: Path) -> dict[str, bytes]:
    if not source.is_dir():
        raise BlessError(f"{source} is not a run directory")
    absent = [name for name in FILES if not (source / name).is_file()]
    if absent:
        raise BlessError(f"{source} is not a complete run directory: no {', '.join(absent)}")
    contents = {name: (source / name).read_bytes() for name in FILES}
    try:
        manifest = json.loads(contents[_MANIFEST])
        records = read_records(source / _RECORDS)
    except (ValueError, UnicodeDecodeError) as error:
        raise BlessError(f"{source}: {error}") from None
    if not isinstance(manifest, dict):
        raise BlessError(f"{source}/{_MANIFEST} is not a JSON object")
    if manifest.get("run_completed") is not True:
        raise BlessError(f"{source} is an interrupted session (run_completed is not true): "
                         "an incomplete run would make a misleading baseline")
    if manifest.get("record_count") != len(records):
        raise BlessError(f"{source}: the manifest counts {manifest.get('record_count')!r} "
                         f"records, {_RECORDS} holds {len(records)}")
    return contents
