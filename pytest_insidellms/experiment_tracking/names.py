"""The name rules of the tracker library, in one place.

Three kinds of names cross from callers into backends, each with one rule:

* :func:`sanitize_key`: metric and param names, mapped onto the alphabet every backend accepts
  (MLflow's, the strictest);
* :func:`safe_id`: a run id or project turned into one directory name that cannot escape its
  parent;
* :func:`safe_relative_name`: an artifact name, checked (not rewritten) to be a relative path
  that stays inside the run.

A rewritten name that must be cut keeps a hash of the original (:func:`shorten`), so distinct
names stay distinct.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from typing import Any, Final

KEY_MAX_LENGTH: Final = 250
ID_MAX_LENGTH: Final = 120

_KEY_FORBIDDEN = re.compile(r"[^\w.\- :/]")
_ID_FORBIDDEN = re.compile(r"[^A-Za-z0-9._\-]+")
_DRIVE = re.compile(r"^[A-Za-z]:")


def sanitize_key(key: Any) -> str:
    """Map a metric or param name to the portable alphabet every backend accepts.

    Characters outside letters, digits, ``_ - . : /`` and space become ``_``; repeated
    slashes collapse; leading and trailing slashes go; ``..`` becomes ``_``, and so does a
    path segment that is just ``.``; names over 250 characters are shortened with a hash of
    the full name so they stay distinct. MLflow treats names as paths and rejects any name
    that a path normalisation would change, hence the slash and dot rules.
    """
    if not isinstance(key, str):
        raise TypeError(f"metric and param names must be strings, got {type(key).__name__}")
    if _is_clean_key(key):
        return key
    clean = _KEY_FORBIDDEN.sub("_", key.strip())
    clean = re.sub(r"/{2,}", "/", clean).strip("/")
    clean = re.sub(r"\.{2,}", "_", clean)
    clean = "/".join("_" if part == "." else part for part in clean.split("/"))
    if not clean:
        raise ValueError(f"metric and param names must not be empty (got {key!r})")
    return shorten(clean, key, KEY_MAX_LENGTH)


def _is_clean_key(key: str) -> bool:
    """True when sanitize_key would return ``key`` unchanged (most names; checked without the
    regular-expression rewrites, as every logged name is checked once)."""
    return (
        0 < len(key) <= KEY_MAX_LENGTH
        and _KEY_FORBIDDEN.search(key) is None
        and key.strip() == key
        and key[0] != "/"
        and key[-1] != "/"
        and "//" not in key
        and ".." not in key
        and key != "."
        and not key.startswith("./")
        and not key.endswith("/.")
        and "/./" not in key
    )


def safe_id(text: str) -> str:
    """A filesystem-safe, non-escaping directory name for a run id or project."""
    clean = _ID_FORBIDDEN.sub("_", text).strip("._") or "run"
    return clean[:ID_MAX_LENGTH]


def safe_relative_name(name: Any) -> str:
    """An artifact name that stays inside its directory: relative, no ``..``, ``/`` separators."""
    if not isinstance(name, str):
        raise TypeError(f"artifact name must be a string, got {type(name).__name__}")
    posix = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or posix.is_absolute() or ".." in parts or _DRIVE.match(name):
        raise ValueError(f"artifact name {name!r} must be a relative path without '..'")
    return "/".join(parts)


def shorten(clean: str, original: str, limit: int) -> str:
    """``clean`` cut to ``limit`` characters, ending in a hash of ``original`` when cut."""
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha1(original.encode("utf-8")).hexdigest()[:10]
    return f"{clean[: limit - 11]}-{digest}"
