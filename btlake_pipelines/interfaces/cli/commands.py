"""The ``btlake`` commands (CONTRACT section 3): each declares its options, calls one method of
the application layer and hands the result to :mod:`.render`; its return value is the exit
code. Option and argument names are the parameter names of ``Lake``, so an error about
``run_id`` is worded ``--run-id`` here (see ``main.option_wording``)."""

from __future__ import annotations

import click

import btlake_pipelines.interfaces.cli.render as render
from btlake_pipelines.app.warm import prepare_ingest
from btlake_pipelines.contract.run_ids import printable
from btlake_pipelines.interfaces.cli.context import lake, location_options, settings

TABLE_OR_JSON = click.Choice(["table", "json"])


@click.command("ingest")
@click.argument("landing_dir", metavar="LANDING", required=False)
@location_options
def ingest(landing_dir: str | None) -> int:
    """Ingest every complete bundle in landing now.

    Prints one line per bundle (its folder name, then ingested / unchanged / replaced /
    quarantined: reason) and a summary; exits 1 when a bundle was quarantined."""
    settings()  # installed before the ingesting child starts, so it starts with them
    prepare_ingest()  # its start overlaps the loading of Lake below
    with render.bar() as progress:  # the child's progress events, on a terminal only
        batch = lake().ingest(landing_dir, progress=progress)
    for r in batch.results:
        # the reason may quote bundle content (a column name, a value): escaped like the name
        status = (f"quarantined: {printable(r.error or '', 600)}" if r.status == "quarantined"
                  else r.status)
        print(f"{printable(r.bundle)}  {status}")
    print(batch.summary())
    return 1 if batch.quarantined else 0


@click.command("runs")
@click.option("--strategy", metavar="GLOB", help="strategy id glob, e.g. 'momentum*'")
@click.option("--market", metavar="M", help="runs that traded this market")
@click.option("--since", metavar="T", help="created at or after (ISO-8601)")
@click.option("--until", metavar="T", help="created before (ISO-8601)")
@click.option("--where", metavar="EXPR",
              help="predicate over run fields, e.g. \"metrics.sharpe > 1 and "
                   "params.lookback >= 20\"")
@click.option("--order-by", metavar="COL", help="field to sort by (default: newest first)")
@click.option("--desc", is_flag=True, help="sort descending")
@click.option("--limit", type=int, metavar="N", help="runs to show")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@click.option("--out", metavar="FILE",
              help=".parquet, .arrow or .csv: the runs' columns; else the formatted output")
@click.option("--as-of", metavar="VERSION|TIMESTAMP|tag:NAME",
              help="the runs as they were at a version of runs, a time or a tag")
@click.option("--stale", is_flag=True, help="only runs with an input whose data changed since")
@location_options
def runs(strategy: str | None, market: str | None, since: str | None, until: str | None,
         where: str | None, order_by: str | None, desc: bool, limit: int | None, fmt: str,
         out: str | None, as_of: str | None, stale: bool) -> int:
    """Search runs."""
    found = lake().find_runs(strategy=strategy, market=market, since=since, until=until,
                             where=where, order_by=order_by, desc=desc, limit=limit,
                             as_of=as_of, stale=stale)
    if out and out.lower().endswith(render.TABLE_FILES):
        kind = render.export(found.table, out)
        render.note(f"{found.total} run(s) matched; wrote {found.table.num_rows} to {out} "
                    f"({kind})")
        return 0
    records = found.records()
    if fmt == "json":
        render.print_json({"runs": records, "total": found.total}, out)
    elif fmt == "csv":
        render.emit(render.runs_csv(records), out)
    else:
        render.show(render.runs_table(records, found.total, where=where or "",
                                      order_by=order_by or ""), out)
    return 0


@click.command("read")
@click.argument("table", metavar="TABLE")
@click.option("--run-id", multiple=True, metavar="ID", help="runs to read (repeatable)")
@click.option("--strategy", metavar="GLOB", help="strategy id glob")
@click.option("--market", multiple=True, metavar="M", help="repeatable")
@click.option("--symbol", multiple=True, metavar="S", help="repeatable")
@click.option("--start", metavar="T", help="ts at or after (inclusive)")
@click.option("--end", metavar="T", help="ts before (exclusive)")
@click.option("--columns", metavar="a,b,...", help="columns to read")
@click.option("--as-of", metavar="VERSION|TIMESTAMP|tag:NAME",
              help="a Delta version (all digits), an ISO-8601 time (no offset = UTC) or "
                   "tag:NAME")
@click.option("--out", metavar="FILE", help="write .parquet, .csv or .arrow by extension")
@location_options
def read(table: str, run_id: tuple[str, ...], strategy: str | None,
         market: tuple[str, ...], symbol: tuple[str, ...], start: str | None, end: str | None,
         columns: str | None, as_of: str | None, out: str | None) -> int:
    """Read a slice of a table: a file with --out, else a preview and the row count."""
    names = [c.strip() for c in (columns or "").split(",") if c.strip()]
    data = lake().read(table, run_id=list(run_id) or None, strategy=strategy,
                       market=list(market) or None, symbol=list(symbol) or None, start=start,
                       end=end, columns=names or None, as_of=as_of)
    if out:
        kind = render.export(data, out)
        print(f"wrote {data.num_rows} row(s) to {out} ({kind})")
    else:
        render.show(render.preview(data))
    return 0


@click.command("history")
@click.argument("table", metavar="TABLE")
@click.option("--format", "fmt", type=TABLE_OR_JSON, default="table", show_default=True)
@location_options
def history(table: str, fmt: str) -> int:
    """A table's Delta versions, newest first."""
    versions = lake().history_records(table)
    if fmt == "json":
        render.print_json({"versions": versions})
    else:
        render.show(render.history_table(versions))
    return 0


@click.command("compare")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--format", "fmt", type=TABLE_OR_JSON, default="table", show_default=True)
@location_options
def compare(run_a: str, run_b: str, fmt: str) -> int:
    """Compare two runs: params and metrics side by side, trade and equity summaries."""
    doc = lake().compare(run_a, run_b)
    if fmt == "json":
        render.print_json(doc)
    else:
        render.show(render.comparison(doc))
    return 0


@click.command("publish")
@click.argument("folder", metavar="DIR")
@click.option("--replace", is_flag=True,
              help="replace a bundle of the same name still waiting in landing")
@location_options
def publish(folder: str, replace: bool) -> int:
    """Copy a bundle folder into landing safely (table files first, manifest last)."""
    print(f"published {lake().publish(folder, replace=replace)}")
    return 0


@click.command("maintain")
@click.option("--table", multiple=True, metavar="TABLE", help="default: every table")
@click.option("--retention-hours", type=int, default=168, show_default=True,
              help="vacuum files older than this")
@location_options
def maintain(table: tuple[str, ...], retention_hours: int) -> int:
    """Compact, Z-order, checkpoint and vacuum past retention."""
    with render.progress("maintaining") as step:
        reports = lake().maintain(tables=list(table) or None, retention_hours=retention_hours,
                                  progress=step)
    from btlake_pipelines.app.maintenance import maintenance_report  # loads deltalake

    print("\n".join(maintenance_report(reports)))
    return 0


@click.command("demo")
@click.option("--runs", type=int, default=24, show_default=True, metavar="N",
              help="synthetic backtest bundles")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--no-real-data", is_flag=True,
              help="skip the bundles converted from real market-data samples")
@location_options
def demo(runs: int, seed: int, no_real_data: bool) -> int:
    """Write realistic synthetic bundles (and real market data) to landing."""
    written = lake().write_demo(runs, seed=seed, real_data=not no_real_data)
    print(f"wrote {len(written)} bundle(s) to {settings().landing}")
    return 0


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@location_options
def serve(host: str, port: int) -> int:
    """Serve the HTTP API and the lake browser."""
    from btlake_pipelines.interfaces.http.server import serve as serve_http

    settings()  # installed: the server's Lake is built from them
    serve_http(host=host, port=port)
    return 0


COMMANDS = (ingest, runs, read, history, compare, publish, maintain, demo, serve)

from btlake_pipelines.interfaces.cli.coverage import coverage  # noqa: E402

COMMANDS += (coverage,)
