"""btlake's exceptions.

Every error a user can cause is a :class:`BtlakeError` whose message is the one line the CLI
prints and the HTTP API returns, so there is exactly one place that decides what a user reads.

An error about one input names it by its neutral parameter name (``run_id``, ``as_of``,
``where``), never in a front end's words: the core writes ``BtlakeError("bad {param}: ...",
param="where")``; ``str()`` reads "bad where: ...", the CLI words it "bad --where: ..." and the
HTTP API names its query parameter, each through :meth:`BtlakeError.worded`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from btlake_pipelines.settings import current

#: Where a message names its parameter; see :meth:`BtlakeError.worded`.
PARAM = "{param}"


class BtlakeError(Exception):
    """An error the user can act on; its message is shown as is, without a traceback."""

    #: The input the error is about, by its neutral name (``run_id``), or None.
    param: str | None = None

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        if param is not None:
            self.param = param

    def __str__(self) -> str:
        return self.worded(str)

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with the parameter named by ``name(param)`` where it says ``{param}``
        (the CLI passes a function giving ``--run-id``); a message without a parameter is
        returned as it is. Only the first ``{param}`` is the name: text quoted after it (a
        user's input) is never rewritten."""
        text = super().__str__()
        return text.replace(PARAM, name(self.param), 1) if self.param else text


class NotFoundError(BtlakeError):
    """An unknown run, table or version."""


class QueryError(BtlakeError):
    """A bad predicate, filter value or option in a read or search."""


class RetentionError(BtlakeError):
    """A time-travel request for a version that maintenance has already vacuumed."""


class TagExistsError(BtlakeError):
    """A lake tag of that name exists already (tags are immutable)."""


@dataclass
class BundleRefused(BtlakeError):
    """A bundle broke a rule of the contract; it goes to quarantine with this reason.

    The fields are the machine-readable part of ``reason.json``: which rule, where, and a few
    offending rows (0-based row numbers of the table file as received).
    """

    bundle: str
    rule: str
    message: str
    table: str | None = None
    column: str | None = None
    rows: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ".".join(p for p in (self.table, self.column) if p)
        loc = f" [{where}]" if where else ""
        sample = f" (rows {', '.join(map(str, self.rows[:5]))})" if self.rows else ""
        return f"{self.rule}{loc}: {self.message}{sample}"

    def reason(self) -> dict[str, Any]:
        """The JSON-ready reason stored in ``reason.json`` and ``ingest_log``."""
        return {
            "rule": self.rule,
            "table": self.table,
            "column": self.column,
            "message": self.message,
            "rows": self.rows[:10],
            "values": [_jsonable(v) for v in self.values[:10]],
        }


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def redact(text: str) -> str:
    """Text safe to show a user: no terminal escape codes from library errors, no credential
    values, no user-info in URLs. Every message that leaves btlake goes through here.

    The credentials are those of the settings in force: the object store's keys and the API
    tokens."""
    settings = current()
    text = _USERINFO.sub(r"\1***@", _ANSI.sub("", str(text)))
    for value in (*settings.store.secrets(), settings.api_token, settings.api_read_token):
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def is_store_failure(exc: BaseException) -> bool:
    """An error of the storage service (network, credentials, throttling), not of a bundle:
    such errors stop a batch and leave its bundles in landing instead of quarantining them."""
    return isinstance(exc, BtlakeError) and isinstance(exc, OSError)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return str(value)
