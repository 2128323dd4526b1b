"""The name rules of the tracker library, in one place.

Three kinds of names cross from callers into backends, each with one rule:

* :func:`sanitize_key`: metric and param names, mapped onto the alphabet every backend accepts
  (MLflow's, the strictest);
* :func:`safe_id`: a run id or project turned into one directory name that cannot escape its
  parent;
* :func:`safe_relative_name`: an artifact name, checked (not rewritten) to be a relative path
  that stays inside the run.

And the rules one backend adds on top, kept here so that every rule turning a caller's name
into a backend's lives in one module: run directories valid on every OS
(:func:`safe_dir_name`, :func:`run_path_parts`), W&B's artifact names and types, projects and
tags (:func:`wandb_artifact_name`, :func:`wandb_artifact_type`, :func:`check_wandb_project`,
:func:`clean_wandb_tags`), text cut to a backend's length limit (:func:`cut_text`), and the
name a second artifact of a taken name gets in every backend (:func:`numbered_name`).

A rewritten name that must be cut keeps a hash of the original (:func:`shorten`), so distinct
names stay distinct.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Container, Iterable
from pathlib import PurePosixPath
from typing import Any, Final

KEY_MAX_LENGTH: Final = 250
ID_MAX_LENGTH: Final = 120

_KEY_FORBIDDEN = re.compile(r"[^\w.\- :/]")
_ID_FORBIDDEN = re.compile(r"[^A-Za-z0-9._\-]+")
_DRIVE = re.compile(r"^[A-Za-z]:")

_WINDOWS_INVALID = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_DEVICES: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
)
DIR_NAME_MAX_LENGTH: Final = 100

WANDB_NAME_MAX_LENGTH: Final = 128
WANDB_TAG_MAX_LENGTH: Final = 64
_WANDB_PROJECT_FORBIDDEN: Final = frozenset("/\\#?%:")
_WANDB_ARTIFACT_FORBIDDEN = re.compile(r"[^A-Za-z0-9_.\-]+")


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


def joins_cleanly(prefix: str, *name_groups: Iterable[str]) -> bool:
    """True when ``sanitize_key(prefix + name)`` is ``prefix + name`` for every name given:
    the prefix is clean followed by a word character, and each name is clean, starts with a
    word character and fits. Then no rule can fire across the join (no ``//``, ``..`` or
    ``/./`` can form there), so a caller logging many names under one prefix checks the
    prefix once and only the names it does not know to be clean."""
    room = KEY_MAX_LENGTH - len(prefix)
    if prefix and (room < _LONGEST_FIXED_NAME or not _is_clean_key(prefix + "x")):
        return False
    for names in name_groups:
        for name in names:
            if name in FIXED_RESULT_NAMES:
                continue
            if not (_is_clean_key(name) and _WORD_START.match(name) and len(name) <= room):
                return False
    return True


#: The names ``flatten_experiment_result`` writes itself, all clean and starting with a letter.
FIXED_RESULT_NAMES: Final = frozenset({
    "success_rate", "total_count", "success_count", "error_count", "timeout_count",
    "rate_limited_count", "skipped_count", "duration_seconds", "accuracy", "precision",
    "recall", "f1_score", "mean_latency_ms", "total_tokens", "error_rate", "experiment_id",
    "model_name", "model_provider", "model_id", "probe_name", "probe_category",
})
_LONGEST_FIXED_NAME: Final = max(map(len, FIXED_RESULT_NAMES))
_WORD_START = re.compile(r"\w")


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


# -- names one backend adds rules to -----------------------------------------------------------


def numbered_name(name: str, taken: Container[str]) -> str:
    """``name``, or ``stem_2.ext``, ``stem_3.ext``... if taken: the name every backend gives a
    second artifact logged under one name in one run (the earlier one is never replaced).
    ``name`` is a relative POSIX path; only its last part is numbered."""
    if name not in taken:
        return name
    folder, slash, leaf = name.rpartition("/")
    dot = leaf.rfind(".")
    stem, suffix = (leaf[:dot], leaf[dot:]) if dot > 0 else (leaf, "")
    for n in range(2, 10_000):
        candidate = f"{folder}{slash}{stem}_{n}{suffix}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no free artifact name near {name!r}")


def safe_dir_name(name: str) -> str:
    """A directory name valid on Windows, macOS and Linux, as close to ``name`` as possible.

    ``<>:"/\\|?*`` and control characters become ``_``; leading dots and spaces and trailing
    dots and spaces go; device names (``CON``, ``NUL``, ``COM1``...) get a ``_`` prefix; names
    are cut at 100 characters; an empty result becomes ``run``.
    """
    clean = _WINDOWS_INVALID.sub("_", name).lstrip(". ")
    clean = clean[:DIR_NAME_MAX_LENGTH].rstrip(". ")
    if not clean:
        return "run"
    if clean.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        clean = f"_{clean}"[:DIR_NAME_MAX_LENGTH]
    return clean


def run_path_parts(run_id: Any) -> list[str]:
    """The directory names a path-shaped run id (``session/test_a.py``) stands for, each made
    safe with :func:`safe_dir_name`; the id must be relative and free of ``..``."""
    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a string, got {type(run_id).__name__}")
    raw = [part for part in run_id.replace("\\", "/").split("/") if part not in ("", ".")]
    if not raw or ".." in raw:
        raise ValueError(f"run_id {run_id!r} must be a relative path without '..'")
    return [safe_dir_name(part) for part in raw]


def wandb_artifact_name(name: str) -> str:
    """W&B's artifact name rule: letters, digits, ``_ - .`` only, at most 128 characters.

    Other characters (the ``/`` of a nested name included) become ``_``; a longer name is
    cut and ends in a hash of the full name so distinct names stay distinct.
    """
    clean = _WANDB_ARTIFACT_FORBIDDEN.sub("_", name).strip("_") or "artifact"
    return shorten(clean, name, WANDB_NAME_MAX_LENGTH)


def wandb_artifact_type(kind: str, name: str) -> str:
    """An artifact type W&B accepts: same alphabet as names; the types W&B reserves for itself
    (``wandb-*``, ``job``, and ``run_table``/``code`` for names it generates) get a ``user-``
    prefix."""
    clean = _WANDB_ARTIFACT_FORBIDDEN.sub("_", kind).strip("_")[:WANDB_NAME_MAX_LENGTH] or "file"
    reserved = (
        clean.startswith("wandb-")
        or clean == "job"
        or (clean == "run_table" and name.startswith("run-"))
        or (clean == "code" and name.startswith("source-"))
    )
    return f"user-{clean}"[:WANDB_NAME_MAX_LENGTH] if reserved else clean


def check_wandb_project(project: Any) -> None:
    """Refuse a project name W&B would refuse (checked, not rewritten: it names a place)."""
    if not isinstance(project, str) or not project.strip():
        raise ValueError(f"W&B project must be a non-empty string, got {project!r}")
    bad = sorted(_WANDB_PROJECT_FORBIDDEN.intersection(project))
    if bad or len(project) > WANDB_NAME_MAX_LENGTH:
        raise ValueError(
            f"W&B project {project!r} is invalid: at most {WANDB_NAME_MAX_LENGTH} characters and"
            f" none of {' '.join(sorted(_WANDB_PROJECT_FORBIDDEN))}"
            + (f" (found {' '.join(bad)})" if bad else "")
        )


def clean_wandb_tags(tags: Iterable[str], warning: type[Warning]) -> list[str]:
    """W&B rejects empty tags and tags over 64 characters: drop the first, cut the second
    (with a ``warning``); duplicates go."""
    clean: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if len(tag) > WANDB_TAG_MAX_LENGTH:
            warnings.warn(
                f"W&B tags are at most {WANDB_TAG_MAX_LENGTH} characters; {tag[:20]!r}... was"
                " shortened",
                warning,
                stacklevel=4,
            )
            tag = tag[:WANDB_TAG_MAX_LENGTH]
        if tag and tag not in clean:
            clean.append(tag)
    return clean


def cut_text(text: str, limit: int, what: str, warning: type[Warning]) -> str:
    """``text`` cut to a backend's ``limit`` characters, with a ``warning`` naming ``what``
    when it had to be cut (a value is data: no hash is appended)."""
    if len(text) <= limit:
        return text
    warnings.warn(
        f"{what} has {len(text)} characters; truncated to the backend's limit of {limit}",
        warning,
        stacklevel=2,
    )
    return text[:limit]
