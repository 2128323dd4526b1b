"""Where a gate's baseline comes from: the text of ``--track-baseline`` parsed and resolved.

:func:`parse_baseline_spec` checks the syntax once, when the option is read;
:func:`resolve_baseline` finds the records at the end of the session. It returns a
:class:`Baseline`, or a :class:`MissingBaseline` when there is nothing to compare with yet (a
first run, a new branch: the caller applies ``--track-baseline-missing``), and raises
:class:`BaselineError` when something is there but cannot be read. The kinds:

- a path (relative to the root): a run directory or a ``records.jsonl``. A path that does not
  exist, or an empty directory, is missing; anything else that is not records is an error.
- ``local:latest[?branch=NAME]``: the newest completed session of the project under the track
  dir that has a records artifact. Only this project's runs: another project is another suite,
  whose cases would never pair.
- ``mlflow:latest[?branch=NAME]``: the same in MLflow experiment ``project``;
  ``mlflow:<run id>``: that run, whatever its status (the user named it).
- ``git:<ref>:<path>``: records committed to the repository at ``root``, read with ``git
  show``; ``<path>`` is relative to the repository's top (``./x`` to ``root``) and names a run
  directory or a ``.jsonl`` file. A ref that exists but lacks the file is missing (the
  baseline is not committed yet); git failing otherwise (no repository, an unknown ref, say a
  branch a shallow CI clone did not fetch) is an error.

"Completed" means a session run that ended ``finished`` or ``failed`` (the local and MLflow
status of a session with a failing test: for an eval suite that is the normal case, and its
failures are the data the gate compares) and whose records say ``run_completed``: a session
that was killed, interrupted, stopped by ``-x`` or still running holds a part of the suite
only. Newest means the latest end time, ties going to the greater run id. A session run is a
top-level run: module runs are nested under it. ``exclude_run_ids`` keep the current session
from being its own baseline; a session resolving its baseline before its run ends needs them
little (a running run never serves), and one resolving it at its start not at all. Run names
are never matched: they need not be unique. Nothing here imports pytest; mlflow is imported
inside the functions using it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, Union

from ..experiment_tracking.names import safe_id
from ..experiment_tracking.redaction import redact_text
from ..experiment_tracking.registry import embedded_mlflow_uri
from ..records import MANIFEST, RECORDS, case_key, read_records

__all__ = [
    "ACCEPTED_BASELINES",
    "COMPLETED_STATUSES",
    "Baseline",
    "BaselineError",
    "BaselineSpec",
    "GitBaseline",
    "LocalLatest",
    "MissingBaseline",
    "MlflowBaseline",
    "PathBaseline",
    "parse_baseline_spec",
    "resolve_baseline",
]

ACCEPTED_BASELINES: Final = (
    "a records directory or records.jsonl path, local:latest, local:latest?branch=NAME, "
    "mlflow:latest, mlflow:latest?branch=NAME, mlflow:<run id>, git:<ref>:<path>")
#: Session run statuses (the trackers' words) whose records may be a baseline.
COMPLETED_STATUSES: Final = frozenset({"finished", "failed"})
#: Where a session's run files are attached (session/records.py's ARTIFACT_NAME).
RECORDS_ARTIFACT: Final = "records"
_SCHEME: Final = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]+):")
_RUN_ID: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_GIT_TIMEOUT: Final = 30.0
_PARENT_TAG: Final = "mlflow.parentRunId"


# -- what a spec says ------------------------------------------------------------------------


@dataclass(frozen=True)
class PathBaseline:
    text: str
    path: str


@dataclass(frozen=True)
class LocalLatest:
    text: str
    branch: str | None = None


@dataclass(frozen=True)
class MlflowBaseline:
    """``run_id`` None: the latest session run (on ``branch`` when given)."""

    text: str
    run_id: str | None = None
    branch: str | None = None


@dataclass(frozen=True)
class GitBaseline:
    text: str
    ref: str
    path: str


BaselineSpec = Union[PathBaseline, LocalLatest, MlflowBaseline, GitBaseline]


@dataclass(frozen=True)
class Baseline:
    spec: str
    source: str
    records: list[dict[str, Any]]


@dataclass(frozen=True)
class MissingBaseline:
    spec: str
    reason: str


class BaselineError(Exception):
    """A baseline that is there but cannot be read, or a spec that is not one."""


def shown(text: str) -> str:
    """A spec or location as messages show it: credentials masked."""
    return redact_text(text)


# -- parsing ---------------------------------------------------------------------------------


def parse_baseline_spec(text: str, source: str) -> BaselineSpec:
    """``text`` checked and split; a :class:`BaselineError` naming ``source`` otherwise."""
    def error(why: str) -> BaselineError:
        return BaselineError(shown(f"{source}: {why} in baseline {text!r}; "
                                   f"accepted forms: {ACCEPTED_BASELINES}"))

    if not text.strip():
        raise error("nothing given")
    scheme = _SCHEME.match(text)
    if scheme is None:
        return PathBaseline(text, text)
    kind, rest = scheme.group(1), text[scheme.end():]
    if kind == "git":
        ref, colon, path = rest.partition(":")
        if not colon or not ref or not path.strip("/"):
            raise error("git needs git:<ref>:<path>")
        if ref.startswith("-"):
            raise error(f"git ref {ref!r} starts with '-'")
        return GitBaseline(text, ref, path)
    if kind not in ("local", "mlflow"):
        raise error(f"unknown scheme {kind!r} (write ./{text} for a path)")
    target, mark, query = rest.partition("?")
    branch = _branch(query, error) if mark else None
    if target == "latest":
        return LocalLatest(text, branch) if kind == "local" else MlflowBaseline(text, None, branch)
    if kind == "mlflow" and _RUN_ID.match(target):
        if mark:
            raise error("a run id takes no query")
        return MlflowBaseline(text, target)
    expected = "latest" if kind == "local" else "latest or a run id"
    raise error(f"{kind}: expects {expected}, got {target!r}")


def _branch(query: str, error: Callable[[str], BaselineError]) -> str:
    # Not parse_qsl: it would read the "+" of a branch name as a space.
    key, equals, name = query.partition("=")
    if key != "branch" or not equals or not name.strip() or "&" in name:
        raise error(f"the query must be branch=NAME, got {query!r}")
    return name


# -- resolving -------------------------------------------------------------------------------


def resolve_baseline(spec: BaselineSpec, *, track_dir: Path, project: str, root: Path,
                     mlflow_uri: str | None = None,
                     exclude_run_ids: Collection[str] = ()) -> Baseline | MissingBaseline:
    """The records ``spec`` names (see the module docstring for each kind).

    ``mlflow_uri`` None: ``MLFLOW_TRACKING_URI``, else the embedded store under ``track_dir``,
    as a tracked session picks it (a config file's ``tracking_uri`` is the caller's to pass).
    """
    if isinstance(spec, PathBaseline):
        return _from_path(spec, root / spec.path)
    if isinstance(spec, LocalLatest):
        return _local_latest(spec, track_dir / safe_id(project), frozenset(exclude_run_ids))
    if isinstance(spec, GitBaseline):
        return _from_git(spec, root)
    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or embedded_mlflow_uri(
        track_dir, create=False)
    return _from_mlflow(spec, uri, project, frozenset(exclude_run_ids))


def _load_records(spec: str, path: Path) -> list[dict[str, Any]]:
    """The records of ``path``, each with what pairing reads (a case key and a status)."""
    try:
        records = read_records(path)
        for number, record in enumerate(records, start=1):
            try:
                case_key(record)
            except (KeyError, TypeError):
                raise ValueError(f"{path}: record {number} has no custom.replicate_key") from None
            if not isinstance(record.get("status"), str):
                raise ValueError(f"{path}: record {number} has no status")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BaselineError(f"baseline {shown(spec)!r}: not readable records: {exc}") from None
    return records


def _from_path(spec: PathBaseline, path: Path) -> Baseline | MissingBaseline:
    if not path.exists():
        return MissingBaseline(shown(spec.text), f"{path} does not exist")
    if path.is_dir():
        if not (path / RECORDS).exists() and not any(path.iterdir()):
            return MissingBaseline(shown(spec.text), f"{path} is empty")
        path = path / RECORDS
    return Baseline(shown(spec.text), str(path), _load_records(spec.text, path))


# -- local:latest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _LocalCandidate:
    run_dir: Path
    ended_at: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return self.ended_at, self.run_dir.name


def _local_latest(spec: LocalLatest, project_dir: Path,
                  excluded: frozenset[str]) -> Baseline | MissingBaseline:
    skipped = _Skipped()
    candidates = []
    run_dirs = sorted(project_dir.iterdir()) if project_dir.is_dir() else []
    for run_dir in run_dirs:
        if not (run_dir / "metadata.json").is_file() or run_dir.name in excluded:
            continue
        state = _json_file(run_dir / "final_state.json")  # written when the run ended
        if not isinstance(state, dict) or state.get("status") not in COMPLETED_STATUSES:
            skipped.add("unfinished")
            continue
        params = _json_file(run_dir / "params.json")
        if spec.branch is not None and (
                not isinstance(params, dict) or params.get("git_branch") != spec.branch):
            skipped.add("on another branch")
            continue
        try:
            ended_at = datetime.fromisoformat(str(state["ended_at"]))
        except (KeyError, ValueError):
            skipped.add("unfinished")
            continue
        if ended_at.tzinfo is None:  # the tracker writes an offset; read a time without one as UTC
            ended_at = ended_at.replace(tzinfo=timezone.utc)
        candidates.append(_LocalCandidate(run_dir, ended_at))
    for candidate in sorted(candidates, key=lambda c: c.order, reverse=True):
        records_dir = candidate.run_dir / "artifacts" / RECORDS_ARTIFACT
        if not (records_dir / RECORDS).is_file():
            skipped.add("without records")
        elif not _completed(_json_file(records_dir / MANIFEST)):
            skipped.add("with a partial run")
        else:
            return Baseline(shown(spec.text), f"local run {candidate.run_dir}",
                            _load_records(spec.text, records_dir / RECORDS))
    return MissingBaseline(shown(spec.text), skipped.reason(
        "no completed session with records", spec.branch, f"under {project_dir}"))


class _Skipped:
    """Why session runs were passed over, for the reason of a missing baseline."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, why: str) -> None:
        self.counts[why] = self.counts.get(why, 0) + 1

    def reason(self, what: str, branch: str | None, where: str) -> str:
        on = f" on branch {branch!r}" if branch is not None else ""
        text = f"{what}{on} {where}"
        if self.counts:
            text += " (passed over: " + ", ".join(
                f"{n} {why}" for why, n in sorted(self.counts.items())) + ")"
        return text


def _completed(manifest: Any) -> bool:
    return isinstance(manifest, dict) and manifest.get("run_completed") is True


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- git:<ref>:<path> ------------------------------------------------------------------------


def _from_git(spec: GitBaseline, root: Path) -> Baseline | MissingBaseline:
    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True,
                                  timeout=_GIT_TIMEOUT, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BaselineError(f"baseline {shown(spec.text)!r}: cannot run git: {exc}") from None

    def failed(what: str, done: subprocess.CompletedProcess[bytes]) -> BaselineError:
        said = done.stderr.decode("utf-8", "replace").strip()
        return BaselineError(f"baseline {shown(spec.text)!r}: {what}"
                             + (f": {said}" if said else ""))

    repository = git("rev-parse", "--git-dir")
    if repository.returncode != 0:
        raise failed(f"{root} is not in a git repository", repository)
    resolved = git("rev-parse", "--verify", "--quiet", f"{spec.ref}^{{commit}}")
    if resolved.returncode != 0:
        raise BaselineError(f"baseline {shown(spec.text)!r}: git knows no commit {spec.ref!r} in "
                            f"{root} (in a shallow CI clone, fetch it first)")
    commit = resolved.stdout.decode().strip()
    path = spec.path if spec.path.endswith(".jsonl") else f"{spec.path.rstrip('/')}/{RECORDS}"
    if git("cat-file", "-e", f"{commit}:{path}").returncode != 0:
        return MissingBaseline(shown(spec.text), f"{spec.ref} ({commit[:12]}) has no {path}")
    shown_file = git("show", f"{commit}:{path}")
    if shown_file.returncode != 0:
        raise failed(f"git show {commit[:12]}:{path} failed", shown_file)
    with _scratch() as scratch:
        copy = scratch / RECORDS
        copy.write_bytes(shown_file.stdout)
        records = _load_records(spec.text, copy)
    return Baseline(shown(spec.text), f"git {commit}:{path}", records)


# -- mlflow ----------------------------------------------------------------------------------


def _from_mlflow(spec: MlflowBaseline, uri: str, project: str,
                 excluded: frozenset[str]) -> Baseline | MissingBaseline:
    where = shown(uri)
    database = uri[len("sqlite:///"):].partition("?")[0] if uri.startswith("sqlite:///") else None
    if database is not None and not Path(database).exists():
        if spec.run_id is not None:
            raise BaselineError(f"baseline {shown(spec.text)!r}: Run not found: no MLflow store "
                                f"at {where}")
        return MissingBaseline(shown(spec.text), f"no MLflow store at {where}")
    runs = _MlflowRuns(uri, spec.text)
    if spec.run_id is not None:
        run = runs.get(spec.run_id)
        if run.info.run_id in excluded:
            raise BaselineError(f"baseline {shown(spec.text)!r}: run {spec.run_id} is this "
                                f"session's own run")
        records = runs.records(run.info.run_id)
        if records is None:
            raise BaselineError(f"baseline {shown(spec.text)!r}: MLflow run {spec.run_id} at "
                                f"{where} has no {RECORDS_ARTIFACT}/{RECORDS} artifact")
        return Baseline(shown(spec.text), f"mlflow run {run.info.run_id} ({where})", records)
    skipped = _Skipped()
    for run in runs.session_runs(project, spec.branch):
        if run.info.run_id in excluded:
            continue
        if run.info.status.lower() not in COMPLETED_STATUSES:
            skipped.add("unfinished")
            continue
        records = runs.records(run.info.run_id, completed_only=True)
        if records is None:
            skipped.add("without complete records")
            continue
        return Baseline(shown(spec.text), f"mlflow run {run.info.run_id} ({where})", records)
    return MissingBaseline(shown(spec.text), skipped.reason(
        "no completed session run with records", spec.branch,
        f"in MLflow experiment {project!r} at {where}"))


class _MlflowRuns:
    """Session runs and their records artifact, read with an ``MlflowClient``; every MLflow
    failure becomes a :class:`BaselineError` naming the spec."""

    def __init__(self, uri: str, spec: str) -> None:
        from ..experiment_tracking.mlflow import _MISSING_RUN_CODES, _quiet_schema_setup
        from ..experiment_tracking.sdk_env import ScopedClient, import_mlflow

        import_mlflow()  # telemetry off, and no minutes of retries on a dead server
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.uri, self.spec = uri, spec
        self._failures: tuple[type[Exception], ...] = (MlflowException, OSError)
        self._missing_codes: tuple[str, ...] = _MISSING_RUN_CODES
        with self.failing("cannot open the store"), _quiet_schema_setup():
            self.client: Any = ScopedClient(MlflowClient(tracking_uri=uri))

    @contextlib.contextmanager
    def failing(self, what: str, *, run_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except self._failures as exc:
            if run_id is not None and getattr(exc, "error_code", None) in self._missing_codes:
                what = f"Run not found: no run {run_id}"
            raise BaselineError(f"baseline {shown(self.spec)!r}: MLflow at {shown(self.uri)}: "
                                f"{what}: {shown(str(exc))}") from None

    def get(self, run_id: str) -> Any:
        with self.failing(f"reading run {run_id}", run_id=run_id):
            return self.client.get_run(run_id)

    def session_runs(self, experiment_name: str, branch: str | None) -> Iterator[Any]:
        """Top-level runs of the experiment that logged records, newest first."""
        with self.failing(f"finding experiment {experiment_name!r}"):
            experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return
        filters = ["params.records_run_id LIKE '%'"]
        if branch is not None and "'" not in branch:  # a quoted name is matched below only
            filters.append(f"params.git_branch = '{branch}'")
        token = None
        while True:
            with self.failing(f"searching experiment {experiment_name!r}"):
                page = self.client.search_runs(
                    [experiment.experiment_id], " and ".join(filters), max_results=100,
                    order_by=["attributes.end_time DESC", "attributes.run_id DESC"],
                    page_token=token)
            for run in page:
                if _PARENT_TAG in run.data.tags:
                    continue
                if branch is None or run.data.params.get("git_branch") == branch:
                    yield run
            token = page.token
            if not token:
                return

    def records(self, run_id: str, *, completed_only: bool = False) -> list[dict[str, Any]] | None:
        """The run's records; None when it has none (or, ``completed_only``, partial ones)."""
        with self.failing(f"listing the artifacts of run {run_id}"):
            listed = {a.path for a in self.client.list_artifacts(run_id, RECORDS_ARTIFACT)}
        wanted = f"{RECORDS_ARTIFACT}/{RECORDS}"
        if wanted not in listed:
            return None
        with _scratch() as scratch, self.failing(f"downloading {wanted} of run {run_id}"):
            if completed_only:
                manifest = f"{RECORDS_ARTIFACT}/{MANIFEST}"
                if manifest not in listed or not _completed(_json_file(Path(
                        self.client.download_artifacts(run_id, manifest, str(scratch))))):
                    return None
            path = Path(self.client.download_artifacts(run_id, wanted, str(scratch)))
            return _load_records(self.spec, path)


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="insidellms-baseline-") as scratch:
        yield Path(scratch)
