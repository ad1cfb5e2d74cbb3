"""``btlake``: the command line, a thin layer over the application layer (``Lake``).

Click parses, :mod:`.commands` call ``Lake`` and :mod:`.render` formats. This module owns what
every command shares: how a failure reads and which exit code it gives. Errors are one line on
stderr (``btlake: error: ...``), never a traceback.

Exit codes: 0 success; 1 ``ingest`` quarantined at least one bundle; 2 bad input (options,
predicates, unknown tables or runs); 3 an unexpected failure (``BTLAKE_DEBUG=1`` prints the
traceback); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import click

from btlake_pipelines.errors import BtlakeError, redact
from btlake_pipelines.interfaces.cli.commands import COMMANDS
from btlake_pipelines.interfaces.cli.context import location_options
from btlake_pipelines.interfaces.cli.flight import flight
from btlake_pipelines.interfaces.cli.tags import COMMANDS as TAG_COMMANDS
from btlake_pipelines.settings import current


@click.group("btlake", context_settings={"help_option_names": ["-h", "--help"]})
@location_options
def btlake() -> None:
    """btlake: a backtest data lake on Delta Lake."""


for _command in (*COMMANDS, *TAG_COMMANDS):
    btlake.add_command(_command)
btlake.add_command(flight)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run one command and leave with ``os._exit`` (see TRAPS: Arrow scan threads can abort a
    normal interpreter shutdown, which must never change the exit code)."""
    args = list(sys.argv[1:] if argv is None else argv)
    ctx: click.Context | None = None
    try:
        ctx = btlake.make_context("btlake", args)
        with ctx:
            code = btlake.invoke(ctx)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        _exit(2)
    except click.exceptions.Exit as exc:  # --help
        _exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "btlake"
        _fail(f"{exc.format_message()} (see '{where} --help')", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), 2)
    except BtlakeError as exc:
        _fail(exc.worded(option_wording(ctx)), 2)
    except (KeyboardInterrupt, click.Abort):
        _fail("interrupted", 130)
    except BrokenPipeError:
        _exit(0)
    except Exception as exc:
        if current().debug:
            import traceback

            traceback.print_exc()
        _fail(f"unexpected {type(exc).__name__}: {exc}", 3)
    _exit(code if isinstance(code, int) else 0)


def option_wording(ctx: click.Context | None) -> Callable[[str], str]:
    """How this command line names a parameter of the application layer: as the option or
    argument of the command that ran (``run_id`` -> ``--run-id``, ``table`` -> ``TABLE``)."""
    command = btlake.get_command(ctx, ctx.invoked_subcommand) \
        if ctx is not None and ctx.invoked_subcommand else None
    params = {p.name: p for p in command.params} if command else {}

    def word(name: str) -> str:
        param = params.get(name)
        if isinstance(param, click.Option):
            return max(param.opts, key=len)
        if isinstance(param, click.Argument):
            return param.human_readable_name
        return "--" + name.replace("_", "-")

    return word


def _fail(message: str, code: int) -> NoReturn:
    text = " ".join(redact(message).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    print(f"btlake: error: {text}", file=sys.stderr)
    _exit(code)


def _exit(code: int) -> NoReturn:
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(ValueError):
        sys.stderr.flush()
    os._exit(code)
