"""Command-line options, ini keys and environment variables, resolved into :class:`Settings`.

Every setting has three spellings; the command line beats the environment, which beats the
ini file. A bad value is a usage error that names where it came from.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:  # imported by resolve() only when tracking is on: an untracked run pays nothing
    from .experiment_tracking.config import TrackingConfig
    from .shards.detect import ShardInfo

GROUP = "insidellms"
DEFAULT_PROJECT = "insideLLMs"


@dataclass(frozen=True)
class Option:
    """One setting: its CLI flag, ini key, environment variable and help text."""

    dest: str
    flag: str
    ini: str
    env: str
    help: str
    metavar: str | None = None

    def describe(self) -> str:
        return f"{self.flag} / ini {self.ini} / ${self.env}"


TRACK = Option(
    "insidellms_track", "--track", "insidellms_track", "INSIDELLMS_TRACK",
    "Track the session with these backends: local, mlflow, wandb, tensorboard, or one an "
    "installed package registers (repeatable, comma-separated).",
    "BACKEND",
)
PROJECT = Option(
    "insidellms_track_project", "--track-project", "insidellms_track_project",
    "INSIDELLMS_TRACK_PROJECT",
    f"Project: local directory level, MLflow experiment, W&B project (default {DEFAULT_PROJECT}).",
    "NAME",
)
DIR = Option(
    "insidellms_track_dir", "--track-dir", "insidellms_track_dir", "INSIDELLMS_TRACK_DIR",
    "Where tracking files go: local runs, the embedded MLflow store, TensorBoard logs, W&B "
    "offline files (default: experiments/ under the rootdir).",
    "DIR",
)
RUN_NAME = Option(
    "insidellms_track_run_name", "--track-run-name", "insidellms_track_run_name",
    "INSIDELLMS_TRACK_RUN_NAME", "Name of the session run (default: a UTC timestamp).", "NAME",
)
TAGS = Option(
    "insidellms_track_tags", "--track-tags", "insidellms_track_tags", "INSIDELLMS_TRACK_TAGS",
    "Comma-separated tags for every run of the session.", "TAGS",
)
NOTES = Option(
    "insidellms_track_notes", "--track-notes", "insidellms_track_notes", "INSIDELLMS_TRACK_NOTES",
    "Notes (description) for every run of the session.", "TEXT",
)
CONFIG = Option(
    "insidellms_track_config", "--track-config", "insidellms_track_config",
    "INSIDELLMS_TRACK_CONFIG",
    "YAML file with TrackingConfig fields and per-backend sections (mlflow:, wandb:, ...).",
    "FILE",
)
STRICT = Option(
    "insidellms_track_strict", "--track-strict", "insidellms_track_strict",
    "INSIDELLMS_TRACK_STRICT",
    "Make tracking failures (missing SDK, unreachable backend) a usage error / non-zero exit.",
)
NO_TRACK = Option(
    "insidellms_no_track", "--no-track", "insidellms_no_track", "INSIDELLMS_NO_TRACK",
    "Turn tracking (and records) off even if the ini file or environment turns them on.",
)
RECORDS = Option(
    "insidellms_track_records", "--track-records", "insidellms_track_records",
    "INSIDELLMS_TRACK_RECORDS",
    "Write the session as an insideLLMs run directory (records.jsonl, manifest.json, "
    "summary.json, report.html) into DIR, with or without --track.",
    "DIR",
)
TRIALS = Option(
    "insidellms_track_trials", "--track-trials", "insidellms_track_trials",
    "INSIDELLMS_TRACK_TRIALS",
    "Run each case of a test marked @pytest.mark.experiment K times (a marker's own trials= "
    "wins).",
    "K",
)
SHARD = Option(
    "insidellms_track_shard", "--track-shard", "insidellms_track_shard",
    "INSIDELLMS_TRACK_SHARD",
    "Run shard I of N (1-based, e.g. 2/3) of the collected tests, split by node id, as one "
    "part of a logical run (see --track-group; `merge` joins the parts). Detected from "
    "pytest-split, pytest-shard, GitLab, CircleCI and Buildkite when not given; none: not a "
    "shard.",
    "I/N",
)
SHARD_GROUP = Option(
    "insidellms_track_group", "--track-group", "insidellms_track_group",
    "INSIDELLMS_TRACK_GROUP",
    "The id every shard of one logical run shares (default: the CI run's id without its "
    "attempt).",
    "ID",
)
SHARD_OPTIONS = (SHARD, SHARD_GROUP)
VALUE_OPTIONS = (PROJECT, DIR, RUN_NAME, TAGS, NOTES, CONFIG, RECORDS, TRIALS, *SHARD_OPTIONS)
FLAG_OPTIONS = (STRICT,)
#: Options whose plain spelling other plugins are known to take; registered late, see below.
CONTESTED = (TRACK, NO_TRACK)


def backend_list(text: str) -> list[str]:
    """argparse type of --track: 'local,mlflow' -> ['local', 'mlflow']."""
    names = [name for name in re.split(r"[,\s]+", text.strip()) if name]
    if not names:
        raise argparse.ArgumentTypeError("expected a backend name, e.g. --track local")
    for name in names:
        if not re.fullmatch(r"[A-Za-z][\w\-.]*", name):
            raise argparse.ArgumentTypeError(f"{name!r} is not a backend name")
    return names


def _alias_help(option: Option) -> str:
    return (f"The same as {option.flag}; this spelling works also where another plugin or "
            f"conftest defines {option.flag}.")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "experiment tracking (pytest-insidellms)")
    group.addoption("--insidellms-track", dest=TRACK.dest, action="extend", type=backend_list,
                    metavar=TRACK.metavar, help=_alias_help(TRACK))
    group.addoption("--insidellms-no-track", dest=NO_TRACK.dest, action="store_true",
                    default=None, help=_alias_help(NO_TRACK))
    for option in VALUE_OPTIONS:
        group.addoption(option.flag, dest=option.dest, metavar=option.metavar, help=option.help)
    for option in FLAG_OPTIONS:
        group.addoption(option.flag, dest=option.dest, action="store_true", default=None,
                        help=option.help)
    for option in (TRACK, *VALUE_OPTIONS):
        parser.addini(option.ini, help=option.help, type="string")
    for option in (STRICT, NO_TRACK):
        parser.addini(option.ini, help=option.help, type="bool", default=False)


def add_contested_options(parser: pytest.Parser) -> list[str]:
    """Register ``--track`` and ``--no-track`` unless another plugin or conftest has.

    They are added only after every entry-point plugin and initial conftest registered its
    options, so a clash shows up here instead of crashing pytest; the ``--insidellms-*``
    spellings always work. Returns the flags left to their other owner.
    """
    group = parser.getgroup(GROUP)
    taken = []
    for option in CONTESTED:
        if _is_known(parser, option.flag):
            taken.append(option.flag)
        elif option is TRACK:
            group.addoption(TRACK.flag, dest=TRACK.dest, action="extend", type=backend_list,
                            metavar=TRACK.metavar, help=TRACK.help)
        else:
            group.addoption(option.flag, dest=option.dest, action="store_true", default=None,
                            help=option.help)
    return taken


def _is_known(parser: pytest.Parser, flag: str) -> bool:
    baseline = vars(parser.parse_known_args([]))
    try:
        probed = vars(parser.parse_known_args([flag]))
    except pytest.UsageError:
        return True  # someone's option that wants a value
    return probed != baseline


@dataclass(frozen=True)
class Settings:
    """Everything a tracked session needs to know, resolved from CLI, environment, ini and
    YAML."""

    tracking: TrackingConfig
    backends: tuple[str, ...] = ()
    track_dir: Path = Path("experiments")
    run_name: str = ""
    strict: bool = False
    #: Where ``backends`` came from (``--track``, an environment variable, an ini key), for
    #: error messages about a backend name.
    backends_source: str = TRACK.flag
    #: Where the run files go (``--track-records``); None: not written.
    records_dir: Path | None = None
    #: This session as one shard of a logical run (``--track-shard``, or detected).
    shard: ShardInfo | None = None

    @property
    def enabled(self) -> bool:
        """Tracking to backends is on (records alone leave it off)."""
        return bool(self.backends)


def resolve(config: pytest.Config) -> Settings | None:
    """Resolve all settings, or None when both tracking and records are off; raises
    pytest.UsageError naming the source of a bad value.

    Each setting is resolved on its own: command line, then environment, then ini file. When
    --no-track and --track (or --track-records) are both in effect, the one from the stronger
    source wins, and --no-track on a tie: ``INSIDELLMS_NO_TRACK=1 pytest --track local``
    tracks. Records alone (no backend) give settings with no ``backends``.
    """
    no_track, no_track_level = _flag_and_level(config, NO_TRACK)
    if no_track and no_track_level == _CLI:
        return None  # before reading the other sources: nothing there can matter
    backends, backends_source, track_level = _backends(config)
    if no_track and no_track_level >= track_level:
        backends = []
    records_value = _value(config, RECORDS)
    if records_value is not None and no_track and no_track_level >= _level(records_value[1]):
        records_value = None
    if not backends and records_value is None:
        return None

    from .experiment_tracking.config import TrackingConfig

    tracking = TrackingConfig(project=DEFAULT_PROJECT)
    config_file = _value(config, CONFIG)
    if config_file is not None:
        tracking = _tracking_config(config, *config_file)

    project = _value(config, PROJECT)
    if project is not None:
        if not project[0].strip():
            raise pytest.UsageError(f"{project[1]}: the project name must not be empty")
        tracking.project = project[0]
    tags = _value(config, TAGS)
    if tags is not None:
        tracking.tags = [t.strip() for t in tags[0].split(",") if t.strip()]
    notes = _value(config, NOTES)
    if notes is not None:
        tracking.notes = notes[0]

    track_dir_value = _value(config, DIR)
    track_dir = (
        _path(config, *track_dir_value) if track_dir_value else config.rootpath / "experiments"
    )
    if track_dir.is_file():
        raise pytest.UsageError(f"{track_dir_value[1] if track_dir_value else DIR.flag}: "
                                f"{track_dir} is a file, not a directory")
    shard = resolve_shard(config, tracked=True)
    run_name_value = _value(config, RUN_NAME)
    run_name = run_name_value[0] if run_name_value else _timestamp_name() + (
        f"_shard{shard.index}of{shard.total}" if shard else "")
    if not run_name.strip():
        raise pytest.UsageError(f"{run_name_value[1] if run_name_value else ''}: empty run name")
    return Settings(
        backends=tuple(dict.fromkeys(backends)),
        track_dir=track_dir,
        run_name=run_name,
        strict=_flag(config, STRICT),
        tracking=tracking,
        backends_source=backends_source,
        records_dir=None if records_value is None else _records_dir(config, *records_value),
        shard=shard,
    )


def _records_dir(config: pytest.Config, text: str, source: str) -> Path:
    path = _path(config, text, source)
    if path.is_file():
        raise pytest.UsageError(f"{source}: {path} is a file, not a directory")
    return path


#: The options pytest-split (splits, group) and pytest-shard (shard_id, num_shards) store.
_SPLITTER_DESTS: Final = ("splits", "group", "shard_id", "num_shards")


def resolve_shard(config: pytest.Config, *, tracked: bool) -> ShardInfo | None:
    """This session's shard, or None; raises pytest.UsageError naming the source of a bad
    value. An untracked session only honours ``--track-shard`` (it selects tests); a tracked
    one also detects a splitter's options and the CI's parallelism, and needs a group."""
    shard = _value(config, SHARD)
    if shard is None and not tracked:
        return None  # before importing anything: the common untracked session
    from .shards.detect import ShardError, detect_shard

    splitter = {dest: config.getoption(dest, None) for dest in _SPLITTER_DESTS}
    try:
        return detect_shard(shard=shard, group=_value(config, SHARD_GROUP), splitter=splitter,
                            env=os.environ if tracked else {}, need_group=tracked)
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None


#: More trials than this is a typo, not an eval (each one is a test item in memory).
MAX_TRIALS: Final = 1000


def resolve_trials(config: pytest.Config) -> int:
    """``--track-trials``: how many times each marked case runs (1 when unset), tracked or
    not; raises pytest.UsageError naming the source of a bad value."""
    found = _value(config, TRIALS)
    if found is None:
        return 1
    text, source = found
    count = trial_count(int(text)) if re.fullmatch(r"\s*[0-9]+\s*", text) else None
    if count is None:
        raise pytest.UsageError(f"{source}: expected a whole number of trials from 1 to "
                                f"{MAX_TRIALS}, got {text!r}")
    return count


def trial_count(value: object) -> int | None:
    """``value`` if it is a valid trial count (an int from 1 to MAX_TRIALS), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TRIALS:
        return None
    return value


def _tracking_config(config: pytest.Config, text: str, source: str) -> TrackingConfig:
    from .experiment_tracking.config import TrackingConfig
    from .experiment_tracking.registry import BackendLoadError

    path = _path(config, text, source)
    try:
        return TrackingConfig.from_yaml(path)
    except FileNotFoundError:
        raise pytest.UsageError(f"{source}: config file not found: {path}") from None
    except IsADirectoryError:
        raise pytest.UsageError(f"{source}: {path} is a directory, not a config file") from None
    except OSError as exc:  # unreadable
        raise pytest.UsageError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, BackendLoadError) as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def _backends(config: pytest.Config) -> tuple[list[str], str, int]:
    """The backend names asked for, where they came from and how strong that source is."""
    cli = config.getoption(TRACK.dest, None)
    if cli:
        return list(cli), TRACK.flag, _CLI
    for text, source in _env_then_ini(config, TRACK):
        try:
            return backend_list(text), source, _ENV if source.startswith("env") else _INI
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
    return [], TRACK.flag, _UNSET


#: Options that name a file or directory: an empty command-line value is a mistake, not "".
_PATH_OPTIONS = (DIR, CONFIG, RECORDS)


def _value(config: pytest.Config, option: Option) -> tuple[str, str] | None:
    """The first value set for ``option`` and a description of where it came from."""
    cli = config.getoption(option.dest, None)
    if cli is not None:
        if option in _PATH_OPTIONS and not str(cli).strip():
            raise pytest.UsageError(f"{option.flag}: expected a path, got an empty value")
        return str(cli), option.flag
    return next(iter(_env_then_ini(config, option)), None)


def _env_then_ini(config: pytest.Config, option: Option) -> list[tuple[str, str]]:
    found = []
    env = os.environ.get(option.env)
    if env is not None and env.strip():
        found.append((env, f"environment variable {option.env}"))
    ini: Any = config.getini(option.ini)
    if ini:
        found.append((str(ini), f"ini option {option.ini}"))
    return found


def _level(source: str) -> int:
    """The strength of a source as :func:`_value` describes it."""
    if source.startswith("environment"):
        return _ENV
    return _INI if source.startswith("ini") else _CLI


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
#: The strength of a source, for settings that contradict each other (--track, --no-track).
_UNSET, _INI, _ENV, _CLI = range(4)


def _flag(config: pytest.Config, option: Option) -> bool:
    return _flag_and_level(config, option)[0]


def _flag_and_level(config: pytest.Config, option: Option) -> tuple[bool, int]:
    """A boolean setting and the strength of the source that set it. An empty environment
    variable counts as unset, as for the other settings."""
    if config.getoption(option.dest, None):
        return True, _CLI
    env = os.environ.get(option.env, "")
    if env.strip():
        word = env.strip().lower()
        if word in _TRUE:
            return True, _ENV
        if word in _FALSE:
            return False, _ENV
        raise pytest.UsageError(
            f"environment variable {option.env}={env!r}: expected one of 1/0, true/false, yes/no, on/off"
        )
    try:
        value = bool(config.getini(option.ini))
    except (ValueError, TypeError, pytest.UsageError) as exc:  # pytest's does not name the key
        raise pytest.UsageError(f"ini option {option.ini}: {exc}") from None
    return value, _INI if value else _UNSET


def _path(config: pytest.Config, text: str, source: str) -> Path:
    """Relative paths from an ini file are relative to it; others to the invocation dir."""
    path = Path(os.path.expanduser(text))
    if path.is_absolute():
        return path
    if source.startswith("ini") and config.inipath is not None:
        return config.inipath.parent / path
    return config.invocation_params.dir / path


def _timestamp_name() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%d_%H%M%S_") + f"{now.microsecond // 1000:03d}"
