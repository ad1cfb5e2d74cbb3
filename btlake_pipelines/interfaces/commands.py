"""The body of each ``btlake`` command: call the API, format the answer, return the exit code."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.interfaces.cli import print_json
from btlake_pipelines.interfaces.formatting import (
    compact,
    csv_text,
    printable_rows,
    text_table,
    write_table,
)


def _lake():
    from btlake_pipelines.app.lake import Lake

    return Lake()


class _Progress:
    """A one-line progress counter on a terminal; silent when stderr is not one."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.live:
            sys.stderr.write(f"\r{phase}: {done}/{total}   ")
            sys.stderr.flush()

    def done(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * 40 + "\r")


def cmd_ingest(args: argparse.Namespace) -> int:
    from btlake_pipelines.contract.run_ids import printable

    progress = _Progress()
    batch = _lake().ingest(args.landing_dir, progress=progress)
    progress.done()
    for r in batch.results:
        # the reason may quote bundle content (a column name, a value): escaped like the name
        detail = (f"quarantined: {printable(r.error or '', 600)}" if r.status == "quarantined"
                  else r.status)
        print(f"{printable(r.bundle)}  {detail}")
    print(batch.summary())
    return 1 if batch.quarantined else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from btlake_pipelines.query.search import runs_to_records

    frame, total = _lake().search(strategy=args.strategy, market=args.market, since=args.since,
                                  until=args.until, where=args.where, order_by=args.order_by,
                                  desc=args.desc, limit=args.limit)
    if args.out and args.out.lower().endswith((".parquet", ".arrow", ".csv")):
        kind = write_table(frame.to_arrow(), args.out)
        print(f"{total} run(s) matched; wrote {frame.height} to {args.out} ({kind})",
              file=sys.stderr)
        return 0
    records = runs_to_records(frame)
    if args.format == "json":
        text = json.dumps({"runs": records, "total": total}, default=str, ensure_ascii=False)
    elif args.format == "csv":
        text = _runs_csv(records)
    else:
        text = _runs_text(records, total, args.where or "", args.order_by or "")
    _emit(text, args.out)
    return 0


_KEY_METRICS = ("sharpe", "total_return", "max_drawdown")


def _runs_text(records: list[dict[str, Any]], total: int, where: str, order_by: str) -> str:
    """A readable table: key metrics as columns, params named in the query shown first."""
    import re

    mentioned = set(re.findall(r"(?:params|metrics)\.([A-Za-z0-9_.\-]+)", f"{where} {order_by}"))
    present = {k for r in records for k in r.get("metrics", {})}
    metric_cols = [m for m in (*_KEY_METRICS, *sorted(mentioned)) if m in present]
    metric_cols = list(dict.fromkeys(metric_cols))[:4]
    rows = []
    for r in records:
        params = r.get("params") or {}
        ordered = {**{k: params[k] for k in params if k in mentioned}, **params}
        row = {"run_id": r["run_id"], "strategy_id": r.get("strategy_id"),
               "created_at": r.get("created_at"),
               "markets": ",".join(r.get("markets") or []), "params": compact(ordered, 3)}
        row.update({m: _fmt(r.get("metrics", {}).get(m)) for m in metric_cols})
        rows.append(row)
    cols = ["run_id", "strategy_id", "created_at", "markets", *metric_cols, "params"]
    shown = f", showing {len(records)}" if len(records) < total else ""
    return text_table(rows, cols, max_width=48) + f"\n{total} run(s){shown}"


def _fmt(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def _runs_csv(records: list[dict[str, Any]]) -> str:
    params = sorted({k for r in records for k in r.get("params", {})})
    metrics = sorted({k for r in records for k in r.get("metrics", {})})
    base = ["run_id", "strategy_id", "created_at", "engine_name", "engine_version",
            "code_version", "markets", "tags", "content_hash", "ingested_at"]
    rows = []
    for r in records:
        row = {c: r.get(c) for c in base}
        row["markets"] = ";".join(r.get("markets") or [])
        row["tags"] = ";".join(r.get("tags") or [])
        row.update({f"params.{k}": r["params"].get(k) for k in params})
        row.update({f"metrics.{k}": r["metrics"].get(k) for k in metrics})
        rows.append(row)
    return csv_text(rows, base + [f"params.{k}" for k in params] +
                    [f"metrics.{k}" for k in metrics]).rstrip("\n")


def _emit(text: str, out: str | None) -> None:
    if out:
        from pathlib import Path

        Path(out).write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def cmd_read(args: argparse.Namespace) -> int:
    table = _lake().read(args.table, run_id=args.run_id, strategy=args.strategy,
                         market=args.market, symbol=args.symbol, start=args.start,
                         end=args.end, columns=args.columns, as_of=args.as_of)
    if args.out:
        kind = write_table(table, args.out)
        print(f"wrote {table.num_rows} row(s) to {args.out} ({kind})")
        return 0
    preview = printable_rows(table.slice(0, 10))
    columns = [c for c in table.column_names]
    print(text_table(preview, columns, max_width=32))
    print(f"{table.num_rows} row(s)")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from btlake_pipelines.query.search import jsonable

    versions = jsonable(_lake().history(args.table).to_pylist())
    if args.format == "json":
        print_json({"versions": versions})
        return 0
    rows = [{**v, "runs": _runs_cell(v)} for v in versions]
    print(text_table(rows, ["version", "timestamp", "operation", "rows_added", "rows_removed",
                            "runs"], max_width=60))
    return 0


def _runs_cell(version: dict[str, Any]) -> str:
    runs = version.get("runs") or []
    count = version.get("run_count") or len(runs)
    shown = ", ".join(runs[:3])
    return shown + (f" (+{count - 3} more)" if count > 3 else "")


def cmd_compare(args: argparse.Namespace) -> int:
    doc = _lake().compare(args.run_a, args.run_b)
    if args.format == "json":
        print_json(doc)
        return 0
    a, b = doc["runs"]
    for section in ("params", "metrics"):
        rows = [{"name": k, a: v["a"], b: v["b"], "differs": "*" if v["differs"] else ""}
                for k, v in doc[section].items()]
        print(f"{section}:")
        print(text_table(rows, ["name", a, b, "differs"]) if rows else "  (none)")
        print()
    for part, summary in doc["summary"].items():
        keys = sorted(set(summary["a"]) | set(summary["b"]))
        rows = [{"name": k, a: summary["a"].get(k), b: summary["b"].get(k)} for k in keys]
        print(f"{part}:")
        print(text_table(rows, ["name", a, b]))
        print()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from btlake_pipelines.interfaces.publish import publish

    location = publish(args.folder, replace=args.replace)
    print(f"published {location}")
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    reports = _lake().maintain(tables=args.table, retention_hours=args.retention_hours,
                               progress=lambda t: print(f"maintaining {t} ...",
                                                        file=sys.stderr))
    for r in reports:
        print(f"{r.table}: version {r.version_before} -> {r.version_after}, "
              f"{r.files_removed} file(s) compacted into {r.files_added}, "
              f"{r.vacuumed} file(s) vacuumed")
    if not reports:
        print("no tables yet")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from btlake_pipelines.demo import write_demo_bundles, write_real_sample_bundles
    from btlake_pipelines.interfaces.publish import publish

    if args.runs < 0:
        raise BtlakeError("--runs must be >= 0")
    with tempfile.TemporaryDirectory(prefix="btlake-demo-") as tmp:
        from pathlib import Path

        folders = write_demo_bundles(Path(tmp), args.runs, seed=args.seed)
        if not args.no_real_data:
            folders += write_real_sample_bundles(Path(tmp))
        for folder in folders:
            publish(folder, replace=True)
    from btlake_pipelines.settings import landing_uri

    print(f"wrote {len(folders)} bundle(s) to {landing_uri()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from btlake_pipelines.interfaces.http.server import serve

    serve(host=args.host, port=args.port)
    return 0
