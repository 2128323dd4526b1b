"""The plugin's own split (``--track-shard``, or a CI's parallelism without a splitter).

A test's shard is a hash of its node id, so it depends on nothing else: every machine (and
every xdist worker) computes the same selection, and adding a test moves no other test to
another shard. The price is balance: shards differ in size by chance (for n tests and N
shards, about sqrt(n/N) tests either way), as pytest-shard's do. A splitter that balances by
duration (pytest-split) stays available; the plugin then only reads which shard it is.

:class:`ShardSelector` is registered as a pytest plugin object but imports no pytest: it
deselects through ``config.hook.pytest_deselected`` as pytest's own ``-k`` does, and feeds the
shard's tags and params to the session through the plugin's own hooks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .detect import ShardInfo

if TYPE_CHECKING:
    import pytest


def shard_of(nodeid: str, total: int) -> int:
    """The 1-based shard of the test ``nodeid`` among ``total``."""
    digest = hashlib.sha256(nodeid.encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def selection(nodeids: Iterable[str], shard: ShardInfo) -> list[str]:
    """The node ids of ``nodeids`` that ``shard`` runs, in their order."""
    return [n for n in nodeids if shard_of(n, shard.total) == shard.index]


class ShardSelector:
    def __init__(self, shard: ShardInfo) -> None:
        self.shard = shard

    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        # Not tryfirst: the full collection is read for the run id before anything deselects.
        if not self.shard.selects:
            return
        kept = set(selection([item.nodeid for item in items], self.shard))
        dropped = [item for item in items if item.nodeid not in kept]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.nodeid in kept]

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        shard = self.shard
        how = "split by node id hash" if shard.selects else "split by the splitter"
        group = f" of group {shard.group}" if shard.group else ""
        return [f"insidellms: shard {shard.label}{group}, attempt {shard.attempt} "
                f"(from {shard.source}; {how})"]

    def pytest_insidellms_session_tags(self, config: pytest.Config) -> Sequence[str]:
        return self.shard.tags()

    def pytest_insidellms_session_params(self, config: pytest.Config) -> dict[str, Any]:
        return self.shard.params()
