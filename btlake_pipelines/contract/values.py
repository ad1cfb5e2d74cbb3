"""Value rules the manifest and its ``inputs`` share: market names and ISO-8601 timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

MARKET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:@+\-]{0,63}")
MARKET_RULE = ("1 to 64 characters of letters, digits, space and . _ : @ + -, starting with a "
               "letter or digit")


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime; no offset means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
