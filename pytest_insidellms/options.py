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
    from .gate.baseline import BaselineSpec
    from .gate.rules import Rule
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
#: Ini only (a mapping, one ``name = path`` a line): datasets the records' run id hashes.
DATASETS_INI: Final = "insidellms_track_datasets"
DATASETS_HELP: Final = (
    "Datasets the session evaluates on, one 'name = path' a line (paths from the ini file): "
    "each is fingerprinted by content into the records' run id and the session params.")
GATE = Option(
    "insidellms_track_gate", "--track-gate", "insidellms_track_gate", "INSIDELLMS_TRACK_GATE",
    "A regression-gate rule, e.g. '*/accuracy:drop<=0.02', 'pass_rate>=0.9', 'regressions<=0' "
    "(repeatable; ini: one per line; environment: separated by ';').",
    "RULE",
)
BASELINE = Option(
    "insidellms_track_baseline", "--track-baseline", "insidellms_track_baseline",
    "INSIDELLMS_TRACK_BASELINE",
    "What the gate compares with: a records directory or records.jsonl, local:latest, "
    "mlflow:latest, mlflow:RUN_ID, git:REF:PATH (latest takes ?branch=NAME).",
    "SPEC",
)
BASELINE_MISSING = Option(
    "insidellms_track_baseline_missing", "--track-baseline-missing",
    "insidellms_track_baseline_missing", "INSIDELLMS_TRACK_BASELINE_MISSING",
    "When the baseline does not exist yet: skip or warn (the comparative rules are skipped), "
    "or fail the gate (default: warn).",
    "skip|warn|fail",
)
ALPHA = Option(
    "insidellms_track_alpha", "--track-alpha", "insidellms_track_alpha", "INSIDELLMS_TRACK_ALPHA",
    "The gate's significance level (default 0.05); 0 compares raw point values.",
    "A",
)
EXIT = Option(
    "insidellms_track_exit", "--track-exit", "insidellms_track_exit", "INSIDELLMS_TRACK_EXIT",
    "What decides the exit status: tests (pytest alone), gate (failing cases of "
    "@pytest.mark.experiment tests are data), both (default).",
    "tests|gate|both",
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
VALUE_OPTIONS = (PROJECT, DIR, RUN_NAME, TAGS, NOTES, CONFIG, RECORDS, TRIALS, BASELINE,
                 BASELINE_MISSING, ALPHA, EXIT, *SHARD_OPTIONS)
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
    group.addoption(GATE.flag, dest=GATE.dest, action="append", metavar=GATE.metavar,
                    help=GATE.help)
    for option in (TRACK, *VALUE_OPTIONS):
        parser.addini(option.ini, help=option.help, type="string")
    parser.addini(GATE.ini, help=GATE.help, type="linelist")
    for option in (STRICT, NO_TRACK):
        parser.addini(option.ini, help=option.help, type="bool", default=False)
    parser.addini(DATASETS_INI, help=DATASETS_HELP, type="linelist", default=[])


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


BASELINE_MISSING_MODES: Final = ("skip", "warn", "fail")
EXIT_MODES: Final = ("tests", "gate", "both")


@dataclass(frozen=True)
class GateOptions:
    """The gate's settings, checked: rules parsed, the baseline spec's syntax checked."""

    rules: tuple[Rule, ...] = ()
    baseline: BaselineSpec | None = None
    #: Where the baseline spec came from, for messages about it.
    baseline_source: str = BASELINE.flag
    missing: str = "warn"
    alpha: float = 0.05
    exit: str = "both"


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
    #: The regression gate (``--track-gate``, ``--track-baseline``); None: no gate.
    gate: GateOptions | None = None
    #: Datasets the ini file declares: (name, path), fingerprinted when first needed.
    datasets: tuple[tuple[str, Path], ...] = ()
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
    gate_asked = _value(config, BASELINE) is not None or bool(_gate_rule_texts(config))
    if no_track and no_track_level >= track_level:
        gate_asked = False
    if not backends and records_value is None and not gate_asked:
        return None

    from .experiment_tracking.config import TrackingConfig

    tracking = TrackingConfig(project=DEFAULT_PROJECT)
    gate_section: tuple[Any, str] | None = None
    config_file = _value(config, CONFIG)
    if config_file is not None:
        tracking, gate_section = _config_file(config, *config_file)

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
        gate=_gate(config, gate_section) if gate_asked or gate_section else None,
        datasets=_datasets(config),
        shard=shard,
    )


def _datasets(config: pytest.Config) -> tuple[tuple[str, Path], ...]:
    source = f"ini {DATASETS_INI}"
    found: dict[str, Path] = {}
    for line in config.getini(DATASETS_INI):
        name, equals, text = (part.strip() for part in str(line).partition("="))
        if not equals or not name or not text:
            raise pytest.UsageError(f"{source}: expected 'name = path', got {line!r}")
        path = _path(config, text, source)
        if not path.exists():
            raise pytest.UsageError(f"{source}: dataset {name!r}: {path} does not exist")
        found[name] = path
    return tuple(found.items())


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


def _config_file(config: pytest.Config, text: str,
                 source: str) -> tuple[TrackingConfig, tuple[Any, str] | None]:
    """The ``--track-config`` file: its TrackingConfig and its ``gate:`` section (the
    plugin's, not the tracker library's), with the section's description for messages."""
    import yaml

    from .experiment_tracking.config import TrackingConfig
    from .experiment_tracking.registry import BackendLoadError

    path = _path(config, text, source)
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise pytest.UsageError(f"{source}: config file not found: {path}") from None
    except IsADirectoryError:
        raise pytest.UsageError(f"{source}: {path} is a directory, not a config file") from None
    except OSError as exc:  # unreadable
        raise pytest.UsageError(f"{source}: cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise pytest.UsageError(f"{source}: {path}: not valid YAML: {exc}") from None
    gate = None
    if isinstance(data, dict) and "gate" in data:
        data = dict(data)
        gate = (data.pop("gate"), f"gate: section of {path}")
    try:
        return TrackingConfig.from_dict({} if data is None else data, source=str(path)), gate
    except (ValueError, TypeError, BackendLoadError) as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def _gate_rule_texts(config: pytest.Config) -> tuple[list[str], str] | None:
    cli = config.getoption(GATE.dest, None)
    if cli:
        return [str(rule) for rule in cli], GATE.flag
    env = os.environ.get(GATE.env, "")
    if env.strip():
        return ([r for r in (p.strip() for p in env.split(";")) if r],
                f"environment variable {GATE.env}")
    ini = [str(line).strip() for line in config.getini(GATE.ini) or () if str(line).strip()]
    return (ini, f"ini option {GATE.ini}") if ini else None


def _gate(config: pytest.Config, section: tuple[Any, str] | None) -> GateOptions:
    """The gate's settings: each from the command line, the environment, the ini file, then
    the config file's ``gate:`` section (a list of rules, or a mapping with ``rules``,
    ``baseline``, ``baseline_missing``, ``alpha`` and ``exit``)."""
    from .gate.baseline import BaselineError, parse_baseline_spec
    from .gate.rules import RuleError, parse_rules

    from_file: dict[str, tuple[str, str]] = {}
    file_rules: tuple[list[str], str] | None = None
    if section is not None:
        content, where = section
        if isinstance(content, (list, str)):
            content = {"rules": content}
        if not isinstance(content, dict):
            raise pytest.UsageError(f"{where}: expected a list of rules or a mapping with rules, "
                                    f"baseline, baseline_missing, alpha, exit")
        unknown = sorted(set(map(str, content)) - {"rules", "baseline", "baseline_missing",
                                                     "alpha", "exit"})
        if unknown:
            raise pytest.UsageError(f"{where}: unknown key {unknown[0]!r}; valid keys: rules, "
                                    f"baseline, baseline_missing, alpha, exit")
        rules = content.get("rules") or []
        rules = [rules] if isinstance(rules, str) else rules
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise pytest.UsageError(f"{where}: 'rules' must be a list of strings, got {rules!r}")
        file_rules = (rules, where) if rules else None
        from_file = {key: (str(value), f"{where} ({key})") for key, value in content.items()
                     if key != "rules" and value is not None}

    def setting(option: Option, key: str) -> tuple[str, str] | None:
        return _value(config, option) or from_file.get(key)

    texts = _gate_rule_texts(config) or file_rules
    try:
        rules = tuple(parse_rules(*texts)) if texts else ()
    except RuleError as exc:
        raise pytest.UsageError(str(exc)) from None
    baseline, baseline_source = None, BASELINE.flag
    found = setting(BASELINE, "baseline")
    if found is not None:
        baseline_source = found[1]
        try:
            baseline = parse_baseline_spec(found[0].strip(), found[1])
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    return GateOptions(
        rules=rules, baseline=baseline, baseline_source=baseline_source,
        missing=_choice(setting(BASELINE_MISSING, "baseline_missing"),
                        BASELINE_MISSING_MODES, "warn"),
        alpha=_alpha(setting(ALPHA, "alpha")),
        exit=_choice(setting(EXIT, "exit"), EXIT_MODES, "both"),
    )


def _choice(found: tuple[str, str] | None, choices: tuple[str, ...], default: str) -> str:
    if found is None:
        return default
    word = found[0].strip().lower()
    if word not in choices:
        raise pytest.UsageError(f"{found[1]}: expected one of {', '.join(choices)}, "
                                f"got {found[0]!r}")
    return word


def _alpha(found: tuple[str, str] | None) -> float:
    if found is None:
        return 0.05
    try:
        alpha = float(found[0])
    except ValueError:
        alpha = -1.0
    if not 0 <= alpha < 0.5:
        raise pytest.UsageError(f"{found[1]}: expected a significance level from 0 to below 0.5 "
                                f"(0.05; 0 compares raw values), got {found[0]!r}")
    return alpha


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
