"""CI shards: N pytest processes on N machines that make one logical run.

:mod:`.detect` tells which shard a session is (``--track-shard``, pytest-split, pytest-shard,
GitLab, CircleCI, Buildkite) and its group (the CI run without the attempt); :mod:`.select`
is the plugin's own deterministic split; :mod:`.manifest` is ``shard.json``, written beside a
shard's records; :mod:`.merge` checks that a set of shards belongs together and writes the
unsharded session's run files; :mod:`.backends` creates the group run on each backend and
links the shards' session runs under it; :mod:`.cli` is ``python -m pytest_insidellms
merge``. Nothing here imports pytest.
"""

from __future__ import annotations

from .detect import ShardError, ShardInfo, detect_shard, parse_shard

__all__ = ["ShardError", "ShardInfo", "detect_shard", "parse_shard"]
