"""A shard's session side: its W&B group, and ``shard.json`` beside its run files.

Tags and params reach every backend through the plugin's own hooks
(:class:`~pytest_insidellms.shards.select.ShardSelector`); only W&B needs a setting, since
its runs group by a ``group`` given when each run starts. A group set in the config file's
``wandb:`` section wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..options import Settings
from ..records import RecordsSession
from ..shards.manifest import build_shard_manifest, write_shard_manifest


def prepare(settings: Settings) -> None:
    """Before any tracker is built: the shard's W&B runs share the shard group."""
    if settings.shard is not None and settings.shard.group:
        settings.tracking.backends.setdefault("wandb", {}).setdefault("group",
                                                                       settings.shard.group)


def write_shard_file(directory: Path, settings: Settings, session: RecordsSession,
                     records: Iterable[Mapping[str, Any]]) -> Path | None:
    """``shard.json`` beside the run files, for a session that is a shard."""
    if settings.shard is None:
        return None
    return write_shard_manifest(directory, build_shard_manifest(settings.shard, session, records))
