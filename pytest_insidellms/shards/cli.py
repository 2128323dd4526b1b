"""``python -m pytest_insidellms merge SHARD_RECORDS_DIR ... --out DIR``.

Exit codes: 0 merged (and the gate, when asked, passed); 1 the shards do not make one run
(the message names the shard at fault) or the gate could not run (a bad rule, an unreadable
baseline); 2 the gate failed. A
backend that cannot take the group run is a printed problem, not an exit code: the merged
records are what CI keeps.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DESCRIPTION = (
    "Join the records of the shards of one logical run (written with --track-shard or a "
    "splitter, and --track-records) into one run directory, byte-identical to the one an "
    "unsharded session writes; optionally create a group run on each backend with the shards' "
    "runs under it, and gate the merged records against a baseline.")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``merge`` subcommand on ``commands`` (an argparse subparsers object)."""
    merge: argparse.ArgumentParser = commands.add_parser(
        "merge", help="join CI shards' records into one run (and one group run per backend)",
        description=DESCRIPTION)
    merge.add_argument("shards", nargs="+", type=Path, metavar="SHARD_RECORDS_DIR",
                       help="a shard's --track-records directory (with its shard.json)")
    merge.add_argument("--out", type=Path, required=True, help="the merged run directory")
    merge.add_argument("--to", dest="backends", default="", metavar="BACKENDS",
                       help="comma-separated backends that get a group run: local, mlflow, "
                            "wandb, tensorboard, or one an installed package registers")
    merge.add_argument("--track-dir", type=Path, default=None,
                       help="where the backends' embedded defaults live, as for pytest "
                            "--track-dir (default ./experiments)")
    merge.add_argument("--tracking-uri", help="MLflow tracking URI (else MLFLOW_TRACKING_URI, "
                                              "else the embedded sqlite store)")
    merge.add_argument("--baseline", metavar="SPEC",
                       help="the records to gate against (a run directory, ...)")
    merge.add_argument("--gate", action="append", default=[], metavar="RULE",
                       help="a regression-gate rule (repeatable)")
    merge.add_argument("--alpha", type=float, default=None,
                       help="the gate's significance level")
    return merge


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_insidellms")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["merge", *(sys.argv[1:] if argv is None else argv)]))


def run(args: argparse.Namespace) -> int:
    from ..experiment_tracking.registry import backend_names
    from ..records import scores_table, write_tracking
    from .backends import group_params, publish
    from .merge import MergeError, merge_shards

    names = [n for n in (part.strip() for part in args.backends.split(",")) if n]
    unknown = sorted(set(names) - set(backend_names()))
    if unknown:
        print(f"merge: --to: unknown backend(s) {', '.join(unknown)}; valid: "
              f"{', '.join(backend_names())}", file=sys.stderr)
        return 1
    if args.gate and not args.baseline:
        print("merge: --gate needs --baseline (the records to compare with)", file=sys.stderr)
        return 1
    out: Path = args.out.absolute()
    try:
        result = merge_shards(args.shards, out)
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 1
    print(f"merged {len(result.shards)} shard(s) of group {result.group} into {out} "
          f"({result.written.records} record(s), run id {result.run_id})")
    for shard in result.superseded:
        print(f"  left out: {shard.name}, superseded by a later attempt")
    for line in scores_table(result.written.summary):
        print(line)

    gate: GateOutcome | None = None
    if args.baseline:
        try:
            gate = _run_gate(out, args.baseline, list(args.gate), args.alpha,
                             project=result.shards[0].manifest.project,
                             track_dir=(args.track_dir or Path("experiments")).absolute(),
                             tracking_uri=args.tracking_uri)
        except GateUnavailable as exc:
            print(f"merge: --gate: {exc}", file=sys.stderr)
            return 1

    digest = hashlib.sha256((out / "records.jsonl").read_bytes()).hexdigest()
    params = {**group_params(result, digest), **_git_facts(), **(gate.params if gate else {})}
    outcomes = result.written.summary["summary"]["session"]["outcomes"]
    failed = bool(outcomes["failed"] or outcomes["error"]) or (gate is not None and not gate.passed)
    track_dir = (args.track_dir or Path("experiments")).absolute()
    runs = publish(result, names, track_dir=track_dir, params=params, failed=failed,
                   tracking_uri=args.tracking_uri) if names else []
    for group_run in runs:
        print(f"  {group_run.backend}: group run {group_run.run_id or '(none)'}"
              f"{f' at {group_run.location}' if group_run.location else ''}, "
              f"{len(group_run.linked)} shard run(s) linked")
        for problem in group_run.problems:
            print(f"  {group_run.backend}: problem: {problem}", file=sys.stderr)
    write_tracking(out, result.run_id, backends={
        r.backend: {"run_id": r.run_id, "location": r.location, "linked": r.linked,
                    "problems": r.problems} for r in runs},
        extra={"group": result.group, "records_sha256": digest,
               "shards": [_described(s) for s in result.shards],
               "superseded": [_described(s) for s in result.superseded]})
    if gate is not None and not gate.passed:
        print("merge: the gate failed", file=sys.stderr)
        return 2
    return 0


def _git_facts() -> dict[str, Any]:
    """The branch and commit the group run is of, so that ``mlflow:latest?branch=`` finds
    merged runs too; a merge job without a checkout has the branch its CI names."""
    from ..session_info import ci_branch, git_params

    facts = git_params(Path.cwd())
    if facts.get("git_branch", "HEAD") == "HEAD":
        branch = ci_branch(os.environ)
        if branch:
            facts["git_branch"] = branch
    return facts


def _described(shard: Any) -> dict[str, Any]:
    return {"index": shard.manifest.index, "attempt": shard.manifest.attempt,
            "directory": str(shard.directory), "backends": shard.tracking.get("backends", {})}


# -- the gate ---------------------------------------------------------------------------------


class GateUnavailable(RuntimeError):
    """The gate cannot be evaluated: a bad rule or spec, an unreadable baseline."""


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    #: Params for the group runs (the verdict, its rules, the baseline).
    params: dict[str, Any] = field(default_factory=dict)


def _run_gate(out: Path, baseline: str, rules: list[str], alpha: float | None, *,
              project: str, track_dir: Path, tracking_uri: str | None) -> GateOutcome:
    """The merged records in ``out`` judged against ``baseline`` by the session's engine:
    the verdict printed, ``gate.json`` and ``gate.md`` written beside the records (and the
    Markdown appended to ``$GITHUB_STEP_SUMMARY`` when set). A missing
    baseline skips the comparative rules (as ``--track-baseline-missing warn`` does)."""
    from ..gate.baseline import (Baseline, BaselineError, MissingBaseline, parse_baseline_spec,
                                 resolve_baseline)
    from ..gate.cli import DEFAULT_RULES
    from ..gate.engine import GateSettings, evaluate
    from ..gate.render import append_step_summary, render_text, write_gate_files
    from ..gate.rules import RuleError, parse_rules
    from ..records import read_records

    try:
        parsed = tuple(parse_rules(rules or DEFAULT_RULES, "--gate"))
        settings = GateSettings(rules=parsed, alpha=0.05 if alpha is None else alpha)
        spec = parse_baseline_spec(baseline, "--baseline")
        found = resolve_baseline(spec, track_dir=track_dir, project=project, root=Path.cwd(),
                                 mlflow_uri=tracking_uri)
        verdict = evaluate(
            read_records(out), found.records if isinstance(found, Baseline) else None,
            settings, baseline_label=found.spec,
            missing=found.reason if isinstance(found, MissingBaseline) else None)
    except (RuleError, BaselineError, ValueError) as exc:
        raise GateUnavailable(str(exc)) from None
    print(render_text(verdict))
    write_gate_files(out, verdict)
    append_step_summary(verdict)  # as a gated session does
    return GateOutcome(verdict.passed, {
        "gate_verdict": "pass" if verdict.passed else "fail", "gate_alpha": settings.alpha,
        "gate_rules": [rule.label for rule in parsed], "gate_baseline": found.spec,
        **{name.replace("/", "_"): value for name, value in verdict.metrics().items()
           if name in ("gate/passed", "gate/rules_failed") or name.startswith("gate/cases/")}})
