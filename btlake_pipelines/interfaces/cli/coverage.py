"""``btlake coverage`` (CONTRACT section 10): which (market, symbol, day) the lake holds, and
the trading sessions missing, against each market's exchange calendar."""

from __future__ import annotations

import click

import btlake_pipelines.interfaces.cli.render as render
from btlake_pipelines.interfaces.cli.context import lake, location_options

#: Gaps listed in the table format (the JSON lists all).
MAX_LISTED_GAPS = 50


@click.command("coverage")
@click.option("--table", default="ticks", show_default=True, metavar="TABLE",
              help="market-data table: ticks, l2 or events")
@click.option("--market", multiple=True, metavar="M", help="repeatable")
@click.option("--symbol", multiple=True, metavar="S", help="repeatable")
@click.option("--start", metavar="DATE", help="first date (inclusive, YYYY-MM-DD)")
@click.option("--end", metavar="DATE", help="last date (inclusive, YYYY-MM-DD)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@location_options
def coverage(table: str, market: tuple[str, ...], symbol: tuple[str, ...], start: str | None,
             end: str | None, fmt: str) -> int:
    """Rows, first and last ts per market, symbol and date, and the gaps: trading sessions of
    the market's exchange calendar, between a symbol's first and last stored date, with no
    rows (markets without a calendar trade every day; BTLAKE_CALENDARS maps market codes)."""
    found = lake().coverage(table, market=list(market) or None, symbol=list(symbol) or None,
                            start=start, end=end)
    doc = found.to_json()
    if fmt == "json":
        render.print_json(doc)
        return 0
    print(f"{table}: {len(doc['coverage'])} (market, symbol, date)")
    render.show(render.table(doc["coverage"], ["market", "symbol", "date", "rows",
                                               "first_ts", "last_ts"]))
    gaps = doc["gaps"]
    shown = gaps[:MAX_LISTED_GAPS]
    more = f", first {len(shown)} shown (--format json lists all)" if len(gaps) > len(shown) \
        else ""
    print(f"gaps: {len(gaps)} missing session(s){more}")
    if shown:
        render.show(render.table(shown, ["market", "symbol", "date"]))
    return 0
