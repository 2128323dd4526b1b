"""What a backend's config section may hold, read off its tracker's constructor.

Each named parameter is a setting whose annotation says what its value must be (``config`` is
the TrackingConfig, passed by the caller, never a setting). The annotations are the ones a
YAML file can meet: strings, numbers (an int is a fine float), booleans, paths (a string
will do), lists, mappings, literals, None and unions of these; anything else is accepted
unchecked rather than refused on a guess.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, Union

_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


@dataclass(frozen=True)
class SettingsSchema:
    """The settings of one backend: name -> annotation."""

    types: Mapping[str, Any]
    #: The constructor takes ``**kwargs`` nobody described: other keys pass unchecked.
    open: bool = False
    takes_config: bool = False

    @classmethod
    def of(cls, tracker: type, forwarded: Mapping[str, Any] | None = None) -> SettingsSchema:
        """The schema of ``tracker``'s constructor, plus the ``forwarded`` settings its
        ``**kwargs`` passes on (which closes the section to other keys)."""
        try:
            hints = typing.get_type_hints(tracker.__init__)  # type: ignore[misc]
        except Exception:  # an annotation that cannot be evaluated here: names only
            hints = {}
        settings: dict[str, Any] = {}
        is_open = takes_config = False
        for parameter in inspect.signature(tracker).parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                is_open = forwarded is None
            elif parameter.name == "config":
                takes_config = True
            elif parameter.kind is not parameter.VAR_POSITIONAL:
                settings[parameter.name] = hints.get(parameter.name, Any)
        settings.update(forwarded or {})
        return cls(settings, is_open, takes_config)

    def check(self, settings: Mapping[str, Any], where: str) -> dict[str, Any]:
        """``settings`` as a plain dict, or ValueError for an unknown key (listing the valid
        ones) or TypeError for a value of the wrong type, both starting with ``where``."""
        checked: dict[str, Any] = {}
        for key, value in settings.items():
            name = str(key)
            if name not in self.types:
                if not self.open:
                    raise ValueError(f"{where}: unknown key {name!r}; valid keys: "
                                     f"{', '.join(sorted(self.types))}")
            elif not accepts(self.types[name], value):
                raise TypeError(f"{where}: {name!r} must be {describe(self.types[name])}, "
                                f"got {value!r}")
            checked[name] = value
        return checked


def accepts(hint: Any, value: Any) -> bool:
    """Whether ``value`` (as YAML gives it) fits annotation ``hint``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is Union or origin is types.UnionType:
        return any(accepts(arm, value) for arm in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    kind = origin or hint
    if not isinstance(kind, type):
        return True  # a TypeVar, a NewType ...: nothing to check it against
    if _is_path(kind):
        return isinstance(value, (str, os.PathLike))
    if issubclass(kind, str):
        return isinstance(value, str)
    if issubclass(kind, (Sequence, Set)):
        item = next(iter(typing.get_args(hint)), Any)
        return isinstance(value, (list, tuple)) and all(accepts(item, v) for v in value)
    if issubclass(kind, Mapping):
        return isinstance(value, Mapping)
    try:
        return isinstance(value, kind)
    except TypeError:  # a protocol that cannot be checked at run time
        return True


def describe(hint: Any) -> str:
    """``hint`` for an error message: 'a number', 'a string or null', 'a list of strings'."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return "anything"
    if hint is None or hint is type(None):
        return "null"
    if origin is Union or origin is types.UnionType:
        arms = list(dict.fromkeys(describe(arm) for arm in typing.get_args(hint)))
        if "a path" in arms and "a string" in arms:
            arms.remove("a string")
        return " or ".join(arms)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in simple:
        return simple[hint]
    kind = origin or hint
    if not isinstance(kind, type):
        return "anything"
    if _is_path(kind):
        return "a path"
    if issubclass(kind, (Sequence, Set)) and not issubclass(kind, str):
        item = next(iter(typing.get_args(hint)), None)
        return f"a list of {_PLURALS.get(item, 'values') if isinstance(item, type) else 'values'}"
    if issubclass(kind, Mapping):
        return "a mapping"
    return f"a {kind.__name__}"


def _is_path(kind: type) -> bool:
    return kind is os.PathLike or issubclass(kind, PurePath)
