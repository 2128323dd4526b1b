"""Hooks that conftest files and other plugins implement to extend pytest-insidellms.

All of them run in the process that talks to the backends: the single pytest process, or the
pytest-xdist controller. Under xdist, implement them in a plugin or in a conftest.py that pytest
loads at start-up (the rootdir's, or one in a directory named on the command line).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from .experiment_tracking import ExperimentTracker, TrackingConfig
    from .types import ExperimentResult


@pytest.hookspec(firstresult=True)
def pytest_insidellms_make_tracker(
    name: str, tracking: TrackingConfig, track_dir: Path, backend_settings: Mapping[str, Any],
    config: pytest.Config,
) -> ExperimentTracker[Any] | None:
    """Return a tracker for backend ``name``, or None to leave it to others.

    Called for every name given to ``--track``, before the built-in backends are considered,
    so it can provide a new backend (``--track langfuse``) or replace a built-in one. The
    tracker implements the :class:`~pytest_insidellms.ExperimentTracker` contract, or
    insideLLMs' (public ``start_run`` ... ``end_run``, one active run): such a tracker is
    driven through a ``ReferenceTrackerAdapter``. Return ``ReferenceTrackerAdapter(MyTracker)``
    (a class or factory) to give the session run and each module run their own instance.
    ``backend_settings`` is the backend's section of the ``--track-config`` file.

    A name the plugin does not know is asked for at configure time (an unknown name is a
    usage error); built-in names when the session run opens. An exception raised here
    disables that backend with a warning (a usage error with ``--track-strict``).
    """


@pytest.hookspec
def pytest_insidellms_result(
    result: ExperimentResult, nodeid: str, prefix: str, config: pytest.Config
) -> bool | None:
    """Called before each ExperimentResult is logged (returned by a test or built from a
    ``@pytest.mark.experiment`` aggregation). Modify ``result`` in place to enrich it; return
    False to drop it."""


@pytest.hookspec
def pytest_insidellms_session_params(config: pytest.Config) -> Mapping[str, Any] | None:
    """Return extra params for the session run (merged over the built-in ones).

    Called when the session run opens, at the first test report."""


@pytest.hookspec
def pytest_insidellms_datasets(config: pytest.Config) -> Mapping[str, str | os.PathLike[str]] | None:
    """Return the datasets the session evaluates on: name -> a fingerprint (a version or a
    hash, kept as given) or a path (a file or directory, fingerprinted by its content).

    Merged over the ini file's ``insidellms_track_datasets``. They define the session: the
    records' run id hashes them (new data, new run id) and the session run gets each as a
    ``dataset/<name>`` param. Called once, in the process that writes the records, when the
    session run opens or the records are written."""


@pytest.hookspec
def pytest_insidellms_session_tags(config: pytest.Config) -> Iterable[str] | None:
    """Return extra tags for every run of the session (added after ``--track-tags``).

    Called once at configure time, before any tracker is made."""
