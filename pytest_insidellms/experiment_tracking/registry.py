"""The backend registry: each backend is described once, by a :class:`BackendSpec`.

``create_tracker``, the backend sections of a config file, the ``sync`` command and the pytest
plugin all read it: which class to build (imported on first use), which SDK makes it usable
(found with ``find_spec``, which imports nothing), what to ``pip install`` when it is missing,
whether its calls are spooled first (a remote backend can be down), its embedded defaults
under a track directory, and the settings its config section accepts (the constructor's
parameters, checked against their annotations).

Other packages add backends through the ``pytest_insidellms.backends`` entry-point group: the
entry point's name is the backend's name, its object a BackendSpec or a tracker class. The
group is read once, the first time a name that is not built in is looked up or the names are
listed, so importing the package or running pytest untracked never reads it. An entry point
is loaded only when its own name is looked up; one that fails is a :class:`BackendLoadError`
for that name alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from .base import ExperimentTracker
from .schema import SettingsSchema

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from .config import TrackingConfig

ENTRY_POINT_GROUP: Final = "pytest_insidellms.backends"
#: What ``--track`` accepts as a name; a spec must have one it can be asked for by.
NAME_PATTERN: Final = re.compile(r"[A-Za-z][\w\-.]*")

#: ``defaults(tracking, track_dir)``: constructor arguments for a tracked session.
Defaults = Callable[["TrackingConfig", Path], dict[str, Any]]


class BackendLoadError(ImportError):
    """An entry point of ``pytest_insidellms.backends`` gave no usable backend."""


@dataclass(frozen=True)
class BackendSpec:
    """Everything the package needs to know about one backend.

    - ``tracker``: the tracker class, or ``"module:Class"`` imported when first needed.
    - ``sdk``: modules of which any one makes the backend usable (none: always usable).
    - ``requirement``: what ``pip install`` gets the SDK (default: the first ``sdk`` module).
    - ``remote``: calls go through a local spool first, replayable with ``sync``.
    - ``defaults``: the constructor arguments of a tracked session, from its TrackingConfig
      and track directory; the config file's section for the backend overrides them.
    - ``forwarded_settings``: settings a constructor's ``**kwargs`` passes on, name -> type.
      Without them such a constructor's section accepts any other key unchecked.
    """

    name: str
    tracker: str | type[ExperimentTracker[Any]]
    sdk: tuple[str, ...] = ()
    requirement: str | None = None
    remote: bool = False
    defaults: Defaults | None = None
    forwarded_settings: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"backend name {self.name!r} must match {NAME_PATTERN.pattern}")
        if isinstance(self.tracker, str) and not re.fullmatch(r"[\w.]+:[\w.]+", self.tracker):
            raise ValueError(
                f"backend {self.name!r}: tracker {self.tracker!r} is not 'module:Class'")
        if isinstance(self.sdk, str) or not all(isinstance(m, str) and m for m in self.sdk):
            raise TypeError(f"backend {self.name!r}: sdk must be a tuple of module names, "
                            f"got {self.sdk!r}")

    def tracker_class(self) -> type[ExperimentTracker[Any]]:
        if not isinstance(self.tracker, str):
            return self.tracker
        module, _, attribute = self.tracker.partition(":")
        found: Any = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
        if not (isinstance(found, type) and issubclass(found, ExperimentTracker)):
            raise TypeError(f"backend {self.name!r}: {self.tracker} is {found!r}, "
                            "not an ExperimentTracker subclass")
        return found

    # -- availability -------------------------------------------------------------------------

    def sdk_available(self) -> bool:
        """Whether the SDK can be imported; imports nothing."""
        return not self.sdk or any(_findable(module) for module in self.sdk)

    @property
    def install_command(self) -> str:
        return f"pip install '{self.requirement or (self.sdk[0] if self.sdk else self.name)}'"

    def missing_sdk_message(self) -> str:
        return (f"{' or '.join(self.sdk)} is required for the {self.name} backend; "
                f"install it with: {self.install_command}")

    # -- construction ---------------------------------------------------------------------------

    def create(self, **kwargs: Any) -> ExperimentTracker[Any]:
        """Construct the tracker; an ImportError naming what to install if the SDK is missing."""
        if not self.sdk_available():
            raise ImportError(self.missing_sdk_message(), name=self.sdk[0])
        return self.tracker_class()(**kwargs)

    def default_kwargs(self, tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
        """Constructor arguments of a tracked session: ``config=tracking`` (if the constructor
        has a ``config`` parameter), the embedded defaults under ``track_dir``, then the
        config file's section for this backend."""
        kwargs: dict[str, Any] = {"config": tracking} if self._settings.takes_config else {}
        if self.defaults is not None:
            kwargs.update(self.defaults(tracking, track_dir))
        kwargs.update(tracking.backends.get(self.name, {}))
        return kwargs

    def session_tracker(self, tracking: TrackingConfig, track_dir: Path) -> ExperimentTracker[Any]:
        """The tracker a tracked session writes through: built from :meth:`default_kwargs`,
        behind a spool under ``track_dir`` if the backend is remote. A remote tracker is built
        on the spool's delivery thread: a server that is down when the session starts is an
        outage with every call spooled, not a backend lost for the session."""
        kwargs = self.default_kwargs(tracking, track_dir)
        if not self.remote:
            return self.create(**kwargs)
        from .spool import SpoolingTracker

        return SpoolingTracker(lambda: self.create(**kwargs), spool_dir(track_dir, self.name),
                               backend_name=self.name, config=tracking)

    # -- settings -----------------------------------------------------------------------------

    @property
    def settings(self) -> Mapping[str, Any]:
        """The keys its config section accepts, each with the type its value must have."""
        return self._settings.types

    def check_settings(self, settings: Mapping[str, Any], source: str) -> dict[str, Any]:
        """``settings`` as a plain dict; an unknown key raises ValueError listing the valid
        ones, a value of the wrong type TypeError. Messages start with ``source``."""
        return self._settings.check(settings, f"{source}: backend {self.name!r}")

    @cached_property
    def _settings(self) -> SettingsSchema:
        return SettingsSchema.of(self.tracker_class(), self.forwarded_settings)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # imported already, by something that left it no __spec__
        return True
    except ImportError:  # the parent package of a dotted name is missing
        return False


# -- the built-in backends -------------------------------------------------------------------


def spool_dir(track_dir: Path, backend_name: str) -> Path:
    return track_dir / "spool" / backend_name


def embedded_mlflow_uri(track_dir: Path, *, create: bool = True) -> str:
    """The embedded MLflow store under ``track_dir``; ``create=False`` for a reader, which
    must leave no directory behind."""
    if create:
        track_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(track_dir / 'mlflow.db').resolve()}"


def _local_defaults(tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    return {"output_dir": track_dir}


def _mlflow_defaults(tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"experiment_name": tracking.project}
    section = tracking.backends.get("mlflow", {})
    if not section.get("tracking_uri") and not os.environ.get("MLFLOW_TRACKING_URI"):
        kwargs["tracking_uri"] = embedded_mlflow_uri(track_dir)
        kwargs["artifact_location"] = str((track_dir / "mlartifacts").resolve())
    return kwargs


def _wandb_defaults(tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"project": tracking.project, "dir": str(track_dir)}
    if "mode" not in tracking.backends.get("wandb", {}) and not os.environ.get("WANDB_MODE"):
        # Offline needs no account and opens no connection; a key says the user wants uploads.
        kwargs["mode"] = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return kwargs


def _tensorboard_defaults(tracking: TrackingConfig, track_dir: Path) -> dict[str, Any]:
    from .local import safe_id

    return {"log_dir": track_dir / "tensorboard" / safe_id(tracking.project)}


#: The ``wandb.init`` keywords that WandBTracker passes on (it sets the others itself).
_WANDB_INIT_SETTINGS: Final[Mapping[str, Any]] = {
    "settings": Mapping[str, Any],
    "save_code": bool,
    "sync_tensorboard": bool,
    "tensorboard": bool,
    "monitor_gym": bool,
    "allow_val_change": bool,
    "force": bool,
    "resume_from": str,
    "fork_from": str,
    "config_exclude_keys": list[str],
    "config_include_keys": list[str],
}

_MODULE = "pytest_insidellms.experiment_tracking"
BUILTIN_SPECS: Final = (
    BackendSpec("local", f"{_MODULE}.local:LocalFileTracker", defaults=_local_defaults),
    BackendSpec("mlflow", f"{_MODULE}.mlflow:MLflowTracker", sdk=("mlflow",),
                requirement="pytest-insidellms[mlflow]", remote=True, defaults=_mlflow_defaults),
    BackendSpec("wandb", f"{_MODULE}.wandb:WandBTracker", sdk=("wandb",),
                requirement="pytest-insidellms[wandb]", remote=True, defaults=_wandb_defaults,
                forwarded_settings=_WANDB_INIT_SETTINGS),
    BackendSpec("tensorboard", f"{_MODULE}.tensorboard:TensorBoardTracker",
                sdk=("tensorboardX", "torch"), requirement="pytest-insidellms[tensorboard]",
                defaults=_tensorboard_defaults),
)


# -- lookup -----------------------------------------------------------------------------------


class _Registry:
    """The built-in specs, and the entry points once they have been read."""

    def __init__(self, builtins: tuple[BackendSpec, ...]) -> None:
        self.builtins = {spec.name: spec for spec in builtins}
        self._entry_points: dict[str, list[EntryPoint]] | None = None
        self._loaded: dict[str, BackendSpec] = {}

    def entry_points(self) -> dict[str, list[EntryPoint]]:
        if self._entry_points is None:
            from importlib import metadata

            found: dict[str, list[EntryPoint]] = {}
            for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
                if entry.name in self.builtins:
                    continue  # a built-in name always means the built-in backend
                same_name = found.setdefault(entry.name, [])
                # One distribution seen twice on sys.path is not a conflict.
                if all(e.value != entry.value for e in same_name):
                    same_name.append(entry)
            self._entry_points = found
        return self._entry_points

    def names(self) -> tuple[str, ...]:
        return (*self.builtins, *sorted(self.entry_points()))

    def knows(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.builtins or name in self.entry_points())

    def find(self, name: object) -> BackendSpec | None:
        if not isinstance(name, str):
            return None
        spec = self.builtins.get(name) or self._loaded.get(name)
        if spec is None and name in self.entry_points():
            spec = self._loaded[name] = _load(name, self.entry_points()[name])
        return spec


def _load(name: str, entries: list[EntryPoint]) -> BackendSpec:
    if len(entries) > 1:
        raise BackendLoadError(f"backend {name!r} is provided by several entry points of group "
                               f"{ENTRY_POINT_GROUP}: {'; '.join(map(_describe, entries))}")
    (entry,) = entries
    where = f"backend {name!r} ({_describe(entry)})"
    try:
        loaded = entry.load()
    except Exception as exc:
        raise BackendLoadError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, type) and issubclass(loaded, ExperimentTracker):
        return BackendSpec(name, loaded)
    if not isinstance(loaded, BackendSpec):
        raise BackendLoadError(
            f"{where} is {loaded!r}; expected a BackendSpec or an ExperimentTracker subclass")
    if loaded.name != name:
        raise BackendLoadError(f"{where} is a BackendSpec named {loaded.name!r}; "
                               "the entry point and the spec must have the same name")
    return loaded


def _describe(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    owner = f" of distribution {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"entry point {entry.name} = {entry.value}{owner}"


_REGISTRY: Final = _Registry(BUILTIN_SPECS)


def backend(name: str) -> BackendSpec:
    """The spec of backend ``name``: built in, or from an installed entry point. Raises
    ValueError (``Unknown backend``, listing the valid names) and :class:`BackendLoadError`
    when the entry point of that name is broken."""
    spec = _REGISTRY.find(name)
    if spec is None:
        raise ValueError(f"Unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    return spec


def find_backend(name: str) -> BackendSpec | None:
    """Like :func:`backend`, but None for a name nothing registers (a broken entry point of
    that name still raises BackendLoadError)."""
    return _REGISTRY.find(name)


def is_backend(name: str) -> bool:
    """Whether something registers ``name``, without loading an entry point's object."""
    return _REGISTRY.knows(name)


def backend_names() -> tuple[str, ...]:
    """Every backend name: the built-in ones, then those of entry points, sorted. Reads the
    entry points' names only; loads none of them."""
    return _REGISTRY.names()


def builtin_backends() -> Mapping[str, BackendSpec]:
    return MappingProxyType(_REGISTRY.builtins)
