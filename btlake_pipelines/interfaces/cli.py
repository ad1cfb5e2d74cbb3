"""``btlake``: the command line, a thin layer that parses options, calls the Python API and
formats what comes back. Errors are one line on stderr, never a traceback.

Exit codes: 0 success; 1 ``ingest`` quarantined at least one bundle; 2 bad input (options,
predicates, unknown tables or runs); 3 an unexpected failure (set ``BTLAKE_DEBUG=1`` for the
traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from btlake_pipelines.errors import BtlakeError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see 'btlake {self.prog.partition(' ')[2] or ''} --help')"
              .replace("btlake  --help", "btlake --help"), 2)


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--lake", default=default, metavar="URI",
                        help="lake root: a folder or s3://bucket/prefix (env BTLAKE_LAKE)")
    parser.add_argument("--landing", default=default, metavar="URI",
                        help="landing zone: a folder or s3://bucket/prefix (env BTLAKE_LANDING)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="btlake", description="btlake: a backtest data lake on Delta Lake.")
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, argparse.SUPPRESS)
        return p

    p = command("ingest", "ingest every complete bundle in landing now")
    p.add_argument("landing_dir", nargs="?", metavar="LANDING")

    p = command("runs", "search runs")
    p.add_argument("--strategy", metavar="GLOB")
    p.add_argument("--market", metavar="M")
    p.add_argument("--since", metavar="T")
    p.add_argument("--until", metavar="T")
    p.add_argument("--where", metavar="EXPR")
    p.add_argument("--order-by", metavar="COL")
    p.add_argument("--desc", action="store_true")
    p.add_argument("--limit", type=int, metavar="N")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--out", metavar="FILE")

    p = command("read", "read a slice of a table")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--run-id", action="append", metavar="ID")
    p.add_argument("--strategy", metavar="GLOB")
    p.add_argument("--market", action="append", metavar="M")
    p.add_argument("--symbol", action="append", metavar="S")
    p.add_argument("--start", metavar="T")
    p.add_argument("--end", metavar="T")
    p.add_argument("--columns", metavar="a,b,...")
    p.add_argument("--as-of", metavar="VERSION|TIMESTAMP")
    p.add_argument("--out", metavar="FILE")

    p = command("history", "a table's Delta versions")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = command("compare", "compare two runs")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = command("publish", "copy a bundle folder into landing safely (manifest last)")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--replace", action="store_true",
                   help="replace a bundle of the same name still waiting in landing")

    p = command("maintain", "compact, Z-order, checkpoint and vacuum past retention")
    p.add_argument("--table", action="append", metavar="TABLE")
    p.add_argument("--retention-hours", type=int, default=168)

    p = command("demo", "write realistic synthetic bundles (and real market data) to landing")
    p.add_argument("--runs", type=int, default=24, metavar="N")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-real-data", action="store_true",
                   help="skip the bundles converted from real market-data samples")

    p = command("serve", "serve the HTTP API and the lake browser")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run one command and leave with ``os._exit`` (see TRAPS: Arrow scan threads
    can abort a normal interpreter shutdown, which must never change the exit code)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        _exit(2)
    if getattr(args, "lake", None):
        os.environ["BTLAKE_LAKE"] = args.lake
    if getattr(args, "landing", None):
        os.environ["BTLAKE_LANDING"] = args.landing
    from btlake_pipelines.interfaces import commands

    try:
        code = getattr(commands, f"cmd_{args.command}")(args)
    except BtlakeError as exc:
        _fail(str(exc), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        _exit(0)
    except Exception as exc:
        if os.environ.get("BTLAKE_DEBUG"):
            import traceback

            traceback.print_exc()
        _fail(f"unexpected {type(exc).__name__}: {_one_line(str(exc))}", 3)
    _exit(code)


def _one_line(text: str, limit: int = 300) -> str:
    from btlake_pipelines.errors import redact

    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(message: str, code: int) -> NoReturn:
    print(f"btlake: error: {_one_line(message)}", file=sys.stderr)
    _exit(code)


def _exit(code: int) -> NoReturn:
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(ValueError):
        sys.stderr.flush()
    os._exit(code)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, default=str, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
