"""What a ``btlake`` command runs with: one :class:`Settings`, built from ``--lake`` /
``--landing`` and the environment and installed for the process (:func:`settings.use`), and
the :class:`Lake` over it.

``--lake`` and ``--landing`` are options of the group and of every command, so they go before
or after the command name; the value given last wins. The settings are built when a command
first asks for them, after all options are parsed (click runs the group before it parses the
command's own options).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from btlake_pipelines.settings import Settings, use

if TYPE_CHECKING:
    from btlake_pipelines.app.lake import Lake

F = TypeVar("F", bound=Callable[..., Any])

_LOCATIONS = (
    ("lake", "lake root: a folder or s3://bucket/prefix (env BTLAKE_LAKE)"),
    ("landing", "landing zone: a folder or s3://bucket/prefix (env BTLAKE_LANDING)"),
)
_PREFIX = "btlake."


def location_options(command: F) -> F:
    """Add ``--lake`` and ``--landing`` to ``command`` (the group or a command)."""
    for name, help_text in reversed(_LOCATIONS):
        command = click.option(f"--{name}", metavar="URI", help=help_text,
                               expose_value=False, callback=_remember)(command)
    return command


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:  # ctx.meta is shared by the group's and the command's contexts
        ctx.meta[_PREFIX + str(param.name)] = value


def settings() -> Settings:
    """This invocation's settings, built and installed on first use."""
    meta = click.get_current_context().meta
    found = meta.get(_PREFIX + "settings")
    if found is None:
        found = Settings.from_env(lake=meta.get(_PREFIX + "lake"),
                                  landing=meta.get(_PREFIX + "landing"))
        use(found)
        meta[_PREFIX + "settings"] = found
    return found


def lake() -> Lake:
    """The lake of this invocation's settings (imported here, not at start-up, so that
    ``--help`` and usage errors answer without loading Arrow and polars)."""
    from btlake_pipelines.app.lake import Lake

    meta = click.get_current_context().meta
    found = meta.get(_PREFIX + "lake_object")
    if found is None:
        found = meta[_PREFIX + "lake_object"] = Lake(settings=settings())
    return found
