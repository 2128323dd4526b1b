"""Secret redaction for params, tags and notes.

A param is redacted whole when its *name* looks like a secret (``api_key``, ``OPENAI_API_KEY``,
``auth_token``, ``password``, ``Authorization`` ...). In every string value, substrings that look
like a credential (provider key formats, bearer tokens, JWTs, URLs with a password) are
replaced. Metrics are numbers and are never redacted. Extra patterns come from
``TrackingConfig.redact_patterns``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from ..types import JSON_SCALARS

if TYPE_CHECKING:
    from .config import TrackingConfig

REDACTED = "***REDACTED***"

#: Name fragments that mark a secret, matched against the name with separators removed.
_SECRET_NAME = re.compile(
    r"apikey|secret|password|passwd|passphrase|authorization|accesskey|privatekey|credential"
    r"|sessionkey|clientkey|bearer|cookie",
)
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
#: Whole words (split on separators and camelCase) that mark a secret.
_SECRET_WORDS = frozenset({"token", "auth", "pwd", "pat", "dsn", "key"})
_SECRET_WORD_HINT = re.compile("|".join(sorted(_SECRET_WORDS)))
#: Words that, beside "key", name ordinary settings: sort_key, cache_key, and the column
#: mappings of eval datasets (input_key, label_key ...).
_KEY_NEUTRAL = frozenset({
    "sort", "primary", "foreign", "cache", "partition", "hot", "dict", "group", "input", "output",
    "label", "answer", "target", "prompt", "response", "question", "context", "text", "column",
    "field", "metric", "result", "join", "lookup", "index", "hash", "id", "name",
})
#: Words that, beside "token", name a count or limit rather than a credential (token_count).
_TOKEN_NEUTRAL = frozenset({
    "count", "counts", "limit", "limits", "budget", "usage", "length", "len", "max", "min",
    "total", "num", "per", "rate", "cost",
})

#: Prefix formats must start a word: "risk-assessment-suite" holds "sk-" but is no key.
_START = r"(?<![A-Za-z0-9])"
_SECRET_VALUES = (
    _START + r"sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}",  # OpenAI, Anthropic
    _START + r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub
    _START + r"github_pat_[A-Za-z0-9_]{20,}",
    _START + r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
    _START + r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    _START + r"(?:AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key id
    _START + r"AIza[0-9A-Za-z_\-]{35}",  # Google
    _START + r"hf_[A-Za-z0-9]{20,}",  # Hugging Face
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"(?i:bearer)\s+[A-Za-z0-9._~+/\-]{12,}=*",  # Authorization header values
    # Basic credentials are base64: a capital or digit after the first character tells them
    # from prose such as "basic multiplication/division".
    r"(?i:basic)\s+[A-Za-z0-9+/](?=[A-Za-z0-9+/]*[A-Z0-9])[A-Za-z0-9+/]{11,}={0,2}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)
#: A literal piece of every pattern above and of _URL_PASSWORD: text without any of them has
#: nothing to redact, which a search for these finds out much faster than the patterns do.
_SECRET_VALUE_HINT = re.compile(
    r"sk-|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|AKIA|ASIA|AIza|hf_|eyJ|-----BEGIN|://"
    r"|(?i:bearer|basic)"
)
# The scheme starts at a word boundary and is short (RFC 3986 schemes are), so the search
# stays linear: an unbounded scheme made a 1 MB word take hours.
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://[^/\s:@]{1,256}:)"
    r"[^/\s@]{1,1024}(?P<at>@)")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if _SECRET_NAME.search(_alnum(lowered)):
        return True
    if not _SECRET_WORD_HINT.search(lowered):
        return False  # each word below is a piece of the lowered name: none of them can hit
    words = {w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)}
    hits = words & _SECRET_WORDS
    if hits == {"token"}:
        return not (words & _TOKEN_NEUTRAL)
    if hits == {"key"}:
        # "key" alone is too common (sort_key, cache_key); it counts only beside a provider-ish
        # word such as "openai_key" or "hf_key", never beside a neutral one.
        return not (words & _KEY_NEUTRAL) and len(words) > 1
    return bool(hits)


def _alnum(lowered: str) -> str:
    """``lowered`` without what _NOT_ALNUM matches (a bytes translation for ASCII text, ten
    times faster than the substitution)."""
    if lowered.isascii():
        return lowered.encode("ascii").translate(None, _NOT_ALNUM_BYTES).decode("ascii")
    return _NOT_ALNUM.sub("", lowered)


_NOT_ALNUM_BYTES: Final = bytes(c for c in range(128) if not chr(c).isdigit()
                                and not "a" <= chr(c) <= "z")


@lru_cache(maxsize=32)
def _value_pattern(extra: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in (*_SECRET_VALUES, *extra)))


def redact_text(text: str, extra_patterns: Iterable[str] = ()) -> str:
    """Replace credential-looking substrings of ``text``."""
    extra = tuple(extra_patterns)
    if not extra and not _SECRET_VALUE_HINT.search(text):
        return text
    text = _URL_PASSWORD.sub(rf"\g<scheme>{REDACTED}\g<at>", text)
    return _value_pattern(extra).sub(REDACTED, text)


def redact_value(value: Any, extra_patterns: Iterable[str] = ()) -> Any:
    """Redact every string inside plain JSON data, keys that name secrets included."""
    extra = tuple(extra_patterns)
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, list):
        return [redact_value(v, extra) for v in value]
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_name(k) and v not in (None, "") else redact_value(v, extra)
            for k, v in value.items()
        }
    return value


def redact_params(params: dict[str, Any], extra_patterns: Iterable[str] = ()) -> dict[str, Any]:
    extra = tuple(extra_patterns)
    if not extra and _nothing_to_redact(params):
        return dict(params)
    return redact_value(params, extra)  # type: ignore[no-any-return]


def _nothing_to_redact(params: dict[str, Any]) -> bool:
    """Whether no name is a secret's and no value holds one, for flat params, decided by one
    search per rule over all names (and all values) joined by newlines. Each name's (and each
    value's) text is a piece of the joined text, so a search that finds nothing there cannot
    find anything in one of them; a hit, real or across a join, takes the exact path."""
    values = params.values()
    if not {*map(type, values)} <= JSON_SCALARS:
        return False
    names = "\n".join(params).lower()
    if _SECRET_WORD_HINT.search(names) or _SECRET_NAME.search(_alnum(names)):
        return False
    text = "\n".join([v for v in values if type(v) is str])
    return _SECRET_VALUE_HINT.search(text) is None



def redact_config(config: TrackingConfig) -> TrackingConfig:
    extra = tuple(config.redact_patterns)
    return dataclasses.replace(
        config,
        tags=[redact_text(t, extra) for t in config.tags],
        notes=None if config.notes is None else redact_text(config.notes, extra),
    )
