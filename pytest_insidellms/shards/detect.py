"""Which shard a session is, and of which group: a pure function of what it was given.

Precedence: ``--track-shard I/N`` (or its ini key / environment variable), then a splitter's
own options (pytest-split ``--splits N --group G``, 1-based; pytest-shard ``--shard-id I
--num-shards N``, 0-based), then the CI's parallelism variables. Two sources that both shard
the session are an error, not a guess: the plugin would split what a splitter already split.

The group is what the shards of one logical run share: ``--track-group``, else the CI run's
identity *without* its attempt, so a re-run of one failed shard fills the same slot. The
attempt is kept apart: a number that is higher for a later try of the same shard (GitHub's run
attempt, Buildkite's retry count + 1; GitLab and CircleCI give a retried job a higher job
number, which orders tries the same way). The merge keeps the highest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: A group names W&B groups and MLflow params: short, printable, no spaces.
GROUP_PATTERN: Final = re.compile(r"[\w.:@+/-]{1,128}")
_SHARD_TEXT: Final = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")
#: ``--track-shard none``: this session is not a shard, whatever the CI says.
NOT_A_SHARD: Final = frozenset({"none", "off", "no", "0"})
#: More shards than this is a typo.
MAX_SHARDS: Final = 10_000


class ShardError(ValueError):
    """A bad shard setting; the message names where the value came from."""


@dataclass(frozen=True)
class ShardInfo:
    index: int  #: 1-based
    total: int
    group: str
    attempt: int = 1
    #: What said which shard this is (``--track-shard``, ``pytest-split --splits/--group``...).
    source: str = "--track-shard"
    #: The plugin deselects the other shards' tests; False when a splitter plugin does.
    selects: bool = True

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    def params(self) -> dict[str, Any]:
        """What every backend's session run of the shard carries."""
        return {"shard_group": self.group, "shard_index": self.index,
                "shard_total": self.total, "shard_attempt": self.attempt}

    def tags(self) -> list[str]:
        """Tags of every run of the shard (module runs included): W&B caps a tag at 64."""
        return [f"shard:{self.index}of{self.total}", f"shard-group:{self.group}"[:64]]


@dataclass(frozen=True)
class _Provider:
    name: str
    #: Present (non-empty) on this provider's machines.
    marker: str
    #: Variables whose values, joined, name the run without its attempt.
    identity: tuple[str, ...]
    index: str | None = None
    total: str | None = None
    #: 1 when ``index`` counts from 1.
    first_index: int = 0
    attempt: str | None = None
    #: Added to the attempt variable (Buildkite counts retries from 0).
    attempt_offset: int = 0


PROVIDERS: Final = (
    _Provider("GitHub Actions", "GITHUB_ACTIONS", ("GITHUB_RUN_ID", "GITHUB_JOB"),
              attempt="GITHUB_RUN_ATTEMPT"),
    _Provider("GitLab CI", "GITLAB_CI", ("CI_PIPELINE_ID", "CI_JOB_NAME"), "CI_NODE_INDEX",
              "CI_NODE_TOTAL", first_index=1, attempt="CI_JOB_ID"),
    _Provider("CircleCI", "CIRCLECI", ("CIRCLE_WORKFLOW_ID", "CIRCLE_JOB"), "CIRCLE_NODE_INDEX",
              "CIRCLE_NODE_TOTAL", attempt="CIRCLE_BUILD_NUM"),
    _Provider("Buildkite", "BUILDKITE", ("BUILDKITE_BUILD_ID", "BUILDKITE_STEP_KEY"),
              "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT",
              attempt="BUILDKITE_RETRY_COUNT", attempt_offset=1),
    _Provider("Azure Pipelines", "TF_BUILD", ("BUILD_BUILDID", "SYSTEM_PHASENAME"),
              "SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE", first_index=1,
              attempt="SYSTEM_JOBATTEMPT"),
    _Provider("Jenkins", "JENKINS_URL", ("BUILD_TAG",)),
)
#: GitLab names the jobs of ``parallel: N`` "eval 1/3", "eval 2/3"...: one group.
_PARALLEL_SUFFIX: Final = re.compile(r"\s+[0-9]+/[0-9]+\Z")


def parse_shard(text: str, source: str) -> tuple[int, int] | None:
    """``"2/3"`` -> (2, 3); ``none`` -> None; anything else a ShardError naming ``source``."""
    if text.strip().lower() in NOT_A_SHARD:
        return None
    match = _SHARD_TEXT.fullmatch(text)
    if match is None:
        raise ShardError(f"{source}: expected I/N (shard I of N, counted from 1, e.g. 2/3) "
                         f"or none, got {text!r}")
    return _checked(int(match[1]), int(match[2]), source, first=1)


def detect_shard(*, shard: tuple[str, str] | None = None,
                 group: tuple[str, str] | None = None,
                 splitter: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None,
                 need_group: bool = True) -> ShardInfo | None:
    """The session's shard, or None when it is not one.

    ``shard`` and ``group``: ``--track-shard`` / ``--track-group`` values with their sources.
    ``splitter``: the option values pytest-split (``splits``, ``group``) and pytest-shard
    (``shard_id``, ``num_shards``) were given (absent or None when not installed or not
    given). ``need_group``: a shard whose group cannot be found is an error (a session that
    tracks nothing only needs its selection).
    """
    env = env or {}
    options = splitter or {}
    provider = _provider(env)
    found = _from_splitter(options)
    if shard is not None:
        position = parse_shard(*shard)
        if position is None:
            return None
        if found is not None:
            raise ShardError(f"{shard[1]} and {found[2]} both shard the session: give one "
                             f"(with {found[2]} the plugin only reads the shard, it does not "
                             "split again)")
        index, total, source, selects = *position, shard[1], True
    elif found is not None:
        index, total, source = found
        selects = False
    else:
        from_ci = _from_ci(provider, env) if provider is not None else None
        if from_ci is None:
            return None
        index, total, source = from_ci
        selects = True
    group_id = _group(group, provider, env, source, need_group)
    return ShardInfo(index, total, group_id, _attempt(provider, env), source, selects)


def _checked(index: int, total: int, source: str, *, first: int) -> tuple[int, int]:
    if not 1 <= total <= MAX_SHARDS:
        raise ShardError(f"{source}: the number of shards must be from 1 to {MAX_SHARDS}, "
                         f"got {total}")
    if not first <= index < total + first:
        raise ShardError(f"{source}: shard {index} is not one of {first}..{total - 1 + first}")
    return index - first + 1, total


def _from_splitter(options: Mapping[str, Any]) -> tuple[int, int, str] | None:
    splits, split_group = options.get("splits"), options.get("group")
    if splits is not None and split_group is not None:
        source = "pytest-split --splits/--group"
        index, total = _checked(_whole(split_group, source), _whole(splits, source), source,
                                first=1)
        return index, total, source
    shard_id, num_shards = options.get("shard_id"), options.get("num_shards")
    if num_shards is not None and _whole(num_shards, "pytest-shard --num-shards") > 1:
        source = "pytest-shard --shard-id/--num-shards"
        index, total = _checked(_whole(shard_id or 0, source), _whole(num_shards, source),
                                source, first=0)
        return index, total, source
    return None


def _whole(value: Any, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, str) and not value.strip().isdigit()):
        raise ShardError(f"{source}: expected a whole number, got {value!r}")
    return int(value)


def _provider(env: Mapping[str, str]) -> _Provider | None:
    return next((p for p in PROVIDERS if env.get(p.marker, "").strip()), None)


def _from_ci(provider: _Provider, env: Mapping[str, str]) -> tuple[int, int, str] | None:
    if provider.index is None or provider.total is None:
        return None
    index_text, total_text = env.get(provider.index, ""), env.get(provider.total, "")
    if not index_text.strip() or not total_text.strip():
        return None
    source = f"{provider.name} ({provider.index}/{provider.total})"
    total = _whole(total_text, f"environment variable {provider.total}")
    if total <= 1:
        return None  # GitLab and CircleCI set a total of 1 on jobs that do not run in parallel
    index = _whole(index_text, f"environment variable {provider.index}")
    index, total = _checked(index, total, source, first=provider.first_index)
    return index, total, source


def _group(given: tuple[str, str] | None, provider: _Provider | None, env: Mapping[str, str],
           shard_source: str, need_group: bool) -> str:
    if given is not None:
        text, source = given
        if not GROUP_PATTERN.fullmatch(text.strip()):
            raise ShardError(f"{source}: a group is 1 to 128 letters, digits or . _ - : @ + /, "
                             f"got {text!r}")
        return text.strip()
    if provider is not None:
        parts = [env.get(name, "").strip() for name in provider.identity]
        if parts[0]:
            parts[-1] = _PARALLEL_SUFFIX.sub("", parts[-1])
            words = [re.sub(r"[^\w.:@+/-]+", "-", p).strip("-") for p in parts if p]
            return "-".join(words)[:128]
    if not need_group:
        return ""
    raise ShardError(
        f"{shard_source} makes this session one shard of several, and no CI run identity was "
        "found to tell which shards belong together: give the same --track-group ID (ini "
        "insidellms_track_group, $INSIDELLMS_TRACK_GROUP) to every shard of the run, e.g. "
        "the pipeline's id")


def _attempt(provider: _Provider | None, env: Mapping[str, str]) -> int:
    if provider is None or provider.attempt is None:
        return 1
    text = env.get(provider.attempt, "").strip()
    return int(text) + provider.attempt_offset if text.isdigit() else 1
