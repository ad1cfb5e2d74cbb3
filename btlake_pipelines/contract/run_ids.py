"""Run-id rules: a run id names a folder in landing, archive and quarantine, so it must be
safe as a single path segment on every file system and object store before anything uses it."""

from __future__ import annotations

import re

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,127}")
RUN_ID_RULE = "1 to 128 characters of A-Z a-z 0-9 . _ -, not starting with '.'"


def is_valid_run_id(value: object) -> bool:
    return isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) is not None


def printable(name: str, limit: int = 160) -> str:
    """A folder name made safe to print on one terminal line: control and non-ASCII
    characters escaped, very long names cut, so a hostile name cannot forge output."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
