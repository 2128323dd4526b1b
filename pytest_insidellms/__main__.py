"""``python -m pytest_insidellms sync SOURCE --to BACKEND`` (replay spooled or local runs) and
``merge SHARD_RECORDS_DIR ... --out DIR`` (join CI shards, see :mod:`.shards.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .experiment_tracking import TrackingConfig
from .experiment_tracking.base import ExperimentTracker
from .experiment_tracking.registry import backend, backend_names
from .experiment_tracking.redaction import redact_text
from .experiment_tracking.sync import sync_runs
from .gate import cli as gate_cli
from .shards.cli import add_parser as add_merge_parser
from .shards.cli import run as run_merge

#: Command-line flags of ``sync`` that set a constructor argument of the target backend.
OVERRIDES = {"tracking_uri": "--tracking-uri", "entity": "--entity", "mode": "--mode"}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] and arguments[0] in gate_cli.COMMANDS:  # they parse their own options
        return gate_cli.run(arguments)
    parser = argparse.ArgumentParser(prog="python -m pytest_insidellms")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in gate_cli.COMMANDS.items():  # listed in --help
        commands.add_parser(name, help=summary)
    sync = commands.add_parser(
        "sync", help="replay a spool (after an outage) or local runs into a backend",
        description="Replay a spool or local runs into a backend. Idempotent: running it "
                    "again sends nothing twice.")
    sync.add_argument("source", type=Path,
                      help="a run directory, or a directory holding runs (a spool, a project)")
    sync.add_argument("--to", dest="backend", required=True, choices=backend_names(),
                      help="a built-in backend or one an installed package registers")
    sync.add_argument("--track-dir", type=Path, default=None,
                      help="where the embedded defaults live, as for pytest --track-dir "
                           "(default: the directory holding spool/, else ./experiments)")
    sync.add_argument("--tracking-uri", help="MLflow tracking URI (else MLFLOW_TRACKING_URI, "
                                             "else the embedded sqlite store)")
    sync.add_argument("--entity", help="W&B entity")
    sync.add_argument("--mode", help="W&B mode (online, offline)")
    add_merge_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "merge":
        return run_merge(args)

    source: Path = args.source.resolve()
    if not source.exists():
        parser.error(f"{args.source} does not exist")
    track_dir = args.track_dir or _track_dir_of(source)
    overrides = {key: value for key, value in vars(args).items() if key in OVERRIDES and value}

    try:
        target = backend(args.backend)
        for key, value in overrides.items():
            target.check_settings({key: value}, OVERRIDES[key])
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    except ImportError as exc:  # a broken entry point
        print(f"sync failed: {exc}", file=sys.stderr)
        return 1

    def make_target(tracking: TrackingConfig) -> ExperimentTracker[Any]:
        kwargs = target.default_kwargs(tracking, track_dir)
        kwargs.update(overrides)
        if "tracking_uri" in overrides:
            kwargs.pop("artifact_location", None)
        return target.create(**kwargs)

    try:
        report = sync_runs(source, make_target)
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        print(redact_text(f"sync failed: {exc}"), file=sys.stderr)  # a URI's credentials
        return 1
    print(f"synced {source} into {args.backend}: {report.summary()}")
    for location in report.locations:
        print(f"  {location}")
    for path in report.missing_artifacts:
        print(f"  artifact no longer on disk, skipped: {path}", file=sys.stderr)
    return 0


def _track_dir_of(source: Path) -> Path:
    """A spool lives at <track-dir>/spool/<backend>/...; other runs default to ./experiments."""
    for parent in (source, *source.parents):
        if parent.name == "spool":
            return parent.parent
    return Path("experiments").resolve()


if __name__ == "__main__":
    sys.exit(main())
