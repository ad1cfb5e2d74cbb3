"""Naming rules: a run id names a folder in landing, archive and quarantine, so it must be
safe as a single path segment on every file system and object store before anything uses it.
Tag names (``versions/tags.py``, a manifest's ``inputs``) follow the same rule."""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,127}")
NAME_RULE = "1 to 128 characters of A-Z a-z 0-9 . _ -, not starting with '.'"
#: A run id is such a name.
RUN_ID_PATTERN, RUN_ID_RULE = NAME_PATTERN, NAME_RULE


def is_valid_name(value: object) -> bool:
    """Whether ``value`` is a valid run id or tag name."""
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def is_valid_run_id(value: object) -> bool:
    return is_valid_name(value)


def printable(name: str, limit: int = 160) -> str:
    """A folder name made safe to print on one terminal line: control and non-ASCII
    characters escaped, very long names cut, so a hostile name cannot forge output."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
