"""Passwords out of everything dbops prints or logs.

Two lines of defence, both on raw text (whether it parses as a connection string or not):

- by shape: the password of a URL's user-info (``user:***@``, with or without a scheme, even
  unparseable), and the value of a ``password=`` / ``PGPASSWORD=`` / ``"password": "..."`` pair
  (conninfo strings, URL queries, env files, dict reprs) become ``***``;
- by value: every secret the run has met (the URL's password, an env_file's PASSWORD-, SECRET-
  and TOKEN-like variables, PGPASSWORD) is replaced wherever it appears, percent-encoded or not.

The output and the operation log pass every text through clean() last. A base module: every
layer may use it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
# a secret this short would garble every message it was replaced in, and hides little anyway;
# the shape rules above still redact it where it stands in a connection string
MIN_SCRUBBED = 4

_SECRET_NAME = r"\w*(?:password|passwd|pwd|secret|token)\w*"
_VALUE = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&#'\"]+"
# user:password@ anywhere: the user may be empty; the password runs to the last @ of the word
_USERINFO = re.compile(r"(?<![\w%.~+-])([\w%.~+-]*):(?!//)(\S+)@(?=\S)")
_KEY_EQUALS = re.compile(rf"(?i)\b({_SECRET_NAME})(\s*=\s*)({_VALUE})")
_QUOTED_KEY = re.compile(rf"(?i)(['\"]{_SECRET_NAME}['\"]\s*:\s*)({_VALUE})")
_SECRET_VARIABLE = re.compile(rf"(?i)^{_SECRET_NAME}$|_KEY$")
# what examples and hints write where a password goes: left as they are
_PLACEHOLDERS = frozenset({"password", "pass", "secret", MASK, "...", "<password>"})

_known: set[str] = set()
_lock = threading.Lock()


def redact(text: str) -> str:
    """Redact by shape: user-info passwords and password-like key/value pairs."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}:{_mask(m.group(2))}@", text)
    text = _KEY_EQUALS.sub(lambda m: m.group(1) + m.group(2) + _mask(m.group(3)), text)
    return _QUOTED_KEY.sub(lambda m: m.group(1) + _mask(m.group(2)), text)


def _mask(value: str) -> str:
    bare = value.strip("'\"")
    if bare.lower() in _PLACEHOLDERS or bare.startswith("${") or not bare:
        return value
    return MASK


def secrets_in(value: str) -> tuple[str, ...]:
    """The passwords of one connection string as written (a URL, an unparseable one, a conninfo)."""
    return tuple(value[start:end].strip("'\"") for start, end in _password_spans(value) if end > start)


def redact_connection_string(value: str) -> str:
    """A connection string fit to show: its passwords (found by position, so a password holding
    spaces, '@' or '/' goes whole) replaced by ***, then the shape rules."""
    for start, end in sorted(_password_spans(value), reverse=True):
        if end > start:
            value = value[:start] + MASK + value[end:]
    return redact(value)


def _password_spans(value: str) -> list[tuple[int, int]]:
    spans = [m.span(3) for m in _KEY_EQUALS.finditer(value)]
    first = value.find("//")
    start = first + 2 if first != -1 else 0
    at = value.rfind("@")
    if at > start:
        colon = value.find(":", start, at)
        if colon != -1 and not any(s <= colon < e for s, e in spans):
            spans.append((colon + 1, at))
    return spans


def remember(*secrets: str | None) -> None:
    """Secrets this run has met: clean() replaces them wherever they appear."""
    with _lock:
        _known.update(s for s in secrets if s and len(s) >= MIN_SCRUBBED)


def remember_connection_string(value: str | None) -> None:
    if value:
        remember(*secrets_in(value))


def remember_variables(variables: dict[str, str]) -> None:
    """An env_file's (or the environment's) password-, secret- and token-like variables, and
    the passwords of the connection strings among its values."""
    for name, value in variables.items():
        if _SECRET_VARIABLE.search(name):
            remember(value)
        elif "@" in value or "=" in value:
            remember_connection_string(value)


def remember_environment() -> None:
    remember(os.environ.get("PGPASSWORD"))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret (as written, percent-encoded, percent-decoded) by ***."""
    for secret in secrets:
        for form in sorted({secret, quote(secret, safe=""), unquote(secret)}, key=len, reverse=True):
            if form:
                text = text.replace(form, MASK)
    return text


def clean(text: str) -> str:
    """The last pass before output: every known secret, then the shape rules."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    return redact(scrub(text, known)) if text else text


def clean_tree(value: object) -> object:
    """clean() on every string of a JSON-able document."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: clean_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v) for v in value]
    return value
