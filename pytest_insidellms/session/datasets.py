"""Declared datasets: name -> fingerprint, for the records' run id and the session params.

Declared by the ini file (``insidellms_track_datasets``, resolved into ``Settings.datasets``)
and by ``pytest_insidellms_datasets`` hooks. A path is fingerprinted by its content alone
(``sha256:`` of a file; of a directory's sorted relative names and their files' hashes), so
the same data gives the same fingerprint from any checkout, working directory or day. They
are resolved once, when first asked for, in the process that writes records and talks to
backends: under xdist that is the controller, so workers never disagree on them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from ..options import Settings
from .problems import ProblemSink

_RESOLVED: Final = pytest.StashKey[dict[str, str]]()
#: Session param names: ``dataset/qa`` -> ``sha256:...``.
PARAM_PREFIX: Final = "dataset/"


def declared_datasets(config: pytest.Config, settings: Settings,
                      problems: ProblemSink) -> dict[str, str]:
    """Every declared dataset's fingerprint, resolved on the first call. A dataset that
    cannot be read, or a hook that fails, is a problem of ``datasets`` (warned and in the
    summary), never a crash."""
    resolved = config.stash.get(_RESOLVED, None)
    if resolved is None:
        resolved = {}
        for name, path in settings.datasets:
            with problems.guard("datasets"):
                resolved[name] = fingerprint(path)
        for declared in problems.call_hook("pytest_insidellms_datasets", config=config):
            with problems.guard("datasets"):
                resolved.update(_checked(declared))
        config.stash[_RESOLVED] = resolved
    return dict(resolved)


def dataset_params(datasets: Mapping[str, str]) -> dict[str, str]:
    return {f"{PARAM_PREFIX}{name}": value for name, value in datasets.items()}


def fingerprint(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes, or of a directory's files (names relative to it,
    in sorted order, each with its content's hash)."""
    if path.is_dir():
        listing = hashlib.sha256()
        files = sorted((p for p in path.rglob("*") if p.is_file()),
                       key=lambda p: p.relative_to(path).as_posix())
        for file in files:
            listing.update(f"{file.relative_to(path).as_posix()}\0{_file_hash(file)}\n"
                           .encode("utf-8"))
        return f"sha256:{listing.hexdigest()}"
    return f"sha256:{_file_hash(path)}"


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(declared: Any) -> dict[str, str]:
    """A hook's answer as name -> fingerprint; raises TypeError or ValueError naming the
    bad entry."""
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise TypeError(f"pytest_insidellms_datasets must return a mapping of name to "
                        f"fingerprint or path, got {type(declared).__name__}")
    found = {}
    for name, value in declared.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"pytest_insidellms_datasets: dataset name {name!r} must be a "
                             "non-empty string")
        if isinstance(value, os.PathLike):
            found[name] = fingerprint(Path(value))
        elif isinstance(value, str) and value.strip():
            found[name] = value
        else:
            raise TypeError(f"pytest_insidellms_datasets: dataset {name!r}: expected a "
                            f"fingerprint string or a path, got {value!r}")
    return found
